//! The one code path that signs an upload: the image-meta fragment, the first render of the
//! page, `POST /api/presign` and `signpost presign` all come through [`Presigner`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::ser::SerializeMap;
use sha2::{Digest, Sha256};

use super::{
    ImageType, KeyPrefix, Limits, ObjectKey, UploadId, ValidUpload, encode_metadata, safe_file_name,
};
use crate::policy::{FieldValue, PostForm, Signer};

/// How long S3 stores (and s3s accepts) a SigV4 form after its `x-amz-date`.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// What S3 answers after a successful POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// 303 to `/uploaded?bucket=&key=&etag=`: the classic form post.
    Redirect,
    /// 201 with an XML body: uploads through XHR/fetch, scripts and `curl`.
    Created,
}

/// Where time (and the random part of ids) comes from. Fixed in tests, so that two code
/// paths can be compared field for field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    Fixed(DateTime<Utc>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Fixed(t) => *t,
        }
    }

    /// A fresh id; with a fixed clock, derived from `seed` so it is reproducible (the seed
    /// is only built then: the system clock's ids are random).
    pub fn upload_id<S: AsRef<[u8]>>(
        &self,
        at: DateTime<Utc>,
        seed: impl FnOnce() -> S,
    ) -> UploadId {
        match self {
            Self::System => UploadId::random(at),
            Self::Fixed(_) => {
                let digest = Sha256::digest(seed());
                let mut random = [0u8; 10];
                random.copy_from_slice(&digest[..10]);
                UploadId::new(at, random)
            }
        }
    }
}

/// A signed upload: where to post, the fields in order (the file goes after them), and
/// when to sign again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUpload {
    pub url: String,
    pub fields: Vec<(&'static str, FieldValue)>,
    pub expires_at: DateTime<Utc>,
    /// When a page should ask for a fresh signature: a minute (or a quarter of the lifetime)
    /// before the policy expires or the store's clock-skew window closes.
    pub resign_at: DateTime<Utc>,
}

impl SignedUpload {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The object key the form uploads to (its `key` field, which every form carries).
    pub fn key(&self) -> &str {
        self.field("key").unwrap_or_default()
    }

    /// The JSON answer of `POST /api/presign` and `signpost presign`.
    pub fn answer(&self) -> PresignAnswer<'_> {
        PresignAnswer {
            method: "POST",
            url: &self.url,
            fields: FormFields(&self.fields),
            headers: FormFields(&[]),
            key: self.key(),
            expires_at: crate::policy::time::iso8601_millis(self.expires_at),
        }
    }
}

/// `{"method","url","fields":{…in form order…},"headers","key","expires_at"}`: the shape
/// Uppy's `@uppy/aws-s3` (up to version 5) takes from `getUploadParameters`, and boto3's
/// `generate_presigned_post` returns.
#[derive(Debug, Serialize)]
pub struct PresignAnswer<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub fields: FormFields<'a>,
    pub headers: FormFields<'a>,
    pub key: &'a str,
    pub expires_at: String,
}

/// Form fields as a JSON object, in form order (the file goes after them).
#[derive(Debug)]
pub struct FormFields<'a>(pub &'a [(&'static str, FieldValue)]);

impl Serialize for FormFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Who an upload is signed for: its owner (pinned as `x-amz-meta-owner`), and the upload link
/// it goes through, if any (`x-amz-meta-link`, counted against the link's budget).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploader {
    pub owner: String,
    pub link: Option<String>,
    /// The most this upload may be, when less than the site's limit (a quota's rest, say).
    pub max_bytes: Option<u64>,
}

impl Uploader {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            link: None,
            max_bytes: None,
        }
    }

    /// Anonymous uploads.
    pub fn anonymous() -> Self {
        Self::new(crate::identity::ANONYMOUS)
    }

    fn sign_into(&self, form: &mut PostForm) {
        form.field("x-amz-meta-owner", encode_metadata(&self.owner));
        if let Some(link) = &self.link {
            form.field("x-amz-meta-link", link.as_str());
        }
    }
}

/// Everything needed to sign uploads for one bucket.
#[derive(Debug)]
pub struct Presigner {
    pub signer: Signer,
    pub bucket: String,
    /// The form's `action`: the bucket URL.
    pub form_url: String,
    /// Absolute URL of `/uploaded`.
    pub redirect_url: String,
    pub prefix: KeyPrefix,
    pub limits: Limits,
    pub ttl: Duration,
    pub acl: Option<String>,
}

impl Presigner {
    fn base_form(&self, now: DateTime<Utc>, key: String) -> PostForm {
        let ttl = chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::minutes(10));
        let mut form = PostForm::new(now + ttl);
        form.bucket(self.bucket.as_str());
        form.field("key", key);
        if let Some(acl) = &self.acl {
            form.field("acl", acl.as_str());
        }
        form
    }

    fn complete(&self, form: &mut PostForm, completion: Completion) {
        match completion {
            Completion::Redirect => {
                form.field("success_action_redirect", self.redirect_url.as_str())
            }
            Completion::Created => form.field("success_action_status", "201"),
        };
    }

    fn seal(&self, mut form: PostForm, now: DateTime<Utc>, uploader: &Uploader) -> SignedUpload {
        uploader.sign_into(&mut form);
        let max = uploader
            .max_bytes
            .map_or(self.limits.max_bytes, |m| m.min(self.limits.max_bytes));
        form.content_length_range(1, max);
        let expires_at = form.expiration();
        let signed = self.signer.sign(form, now);
        SignedUpload {
            url: self.form_url.clone(),
            fields: signed.fields,
            expires_at,
            resign_at: resign_at(now, expires_at),
        }
    }

    /// Sign an upload of this validated file. The key is the server's:
    /// `PREFIX + id + "/" + safe name`.
    pub fn presign(
        &self,
        upload: &ValidUpload,
        completion: Completion,
        clock: Clock,
        uploader: &Uploader,
    ) -> SignedUpload {
        let now = clock.now();
        let id = clock.upload_id(now, || {
            format!(
                "{}\0{}\0{:?}",
                upload.original_name, upload.image_type, upload.size
            )
        });
        self.presign_with(upload, completion, now, id, uploader)
    }

    /// [`Presigner::presign`] at a given time, with a given id.
    pub fn presign_with(
        &self,
        upload: &ValidUpload,
        completion: Completion,
        now: DateTime<Utc>,
        id: UploadId,
        uploader: &Uploader,
    ) -> SignedUpload {
        let name = safe_file_name(
            &upload.original_name,
            upload.image_type,
            self.limits.max_name,
        );
        let key = ObjectKey::new(&self.prefix, id, &name).into_string();
        let mut form = self.base_form(now, key);
        form.field("Content-Type", upload.image_type.mime());
        self.complete(&mut form, completion);
        form.field(
            "x-amz-meta-filename",
            encode_metadata(&upload.original_name),
        );
        if let Some((w, h)) = upload.dimensions {
            form.field("x-amz-meta-width", w.to_string());
            form.field("x-amz-meta-height", h.to_string());
        }
        if let Some(alt) = &upload.alt {
            form.field("x-amz-meta-alt", encode_metadata(alt));
        }
        self.seal(form, now, uploader)
    }

    /// The headers a multipart upload's create request is signed with: what a POST policy
    /// signs for the same file (exact type, name, dimensions, owner, link, ACL). S3 keeps
    /// them for the object the upload completes into.
    pub fn multipart_headers(
        &self,
        upload: &ValidUpload,
        uploader: &Uploader,
    ) -> Vec<(String, String)> {
        let mut headers = vec![
            (
                "Content-Type".to_owned(),
                upload.image_type.mime().to_owned(),
            ),
            (
                "x-amz-meta-filename".to_owned(),
                encode_metadata(&upload.original_name),
            ),
        ];
        if let Some((w, h)) = upload.dimensions {
            headers.push(("x-amz-meta-width".to_owned(), w.to_string()));
            headers.push(("x-amz-meta-height".to_owned(), h.to_string()));
        }
        if let Some(alt) = &upload.alt {
            headers.push(("x-amz-meta-alt".to_owned(), encode_metadata(alt)));
        }
        headers.push((
            "x-amz-meta-owner".to_owned(),
            encode_metadata(&uploader.owner),
        ));
        if let Some(link) = &uploader.link {
            headers.push(("x-amz-meta-link".to_owned(), link.clone()));
        }
        if let Some(acl) = &self.acl {
            headers.push(("x-amz-acl".to_owned(), acl.clone()));
        }
        headers
    }

    /// The form of the first render, before any file is chosen: it must upload without
    /// JavaScript, so the type comes from a `<select>` and the policy admits the allowed
    /// types' common prefix. The confirmation step checks the bytes against the stored type
    /// and deletes anything that is not a real image of it (SVG included).
    pub fn initial(&self, clock: Clock, uploader: &Uploader) -> SignedUpload {
        let now = clock.now();
        let id = clock.upload_id(now, || "initial");
        let default = self
            .limits
            .allowed
            .first()
            .copied()
            .unwrap_or(ImageType::Jpeg);
        let single = self.limits.allowed.len() == 1;
        // Without JavaScript the extension cannot follow the type: a neutral name, unless
        // only one type is allowed.
        let name = if single {
            format!("upload.{}", default.extensions()[0])
        } else {
            "upload".to_owned()
        };
        let key = ObjectKey::new(&self.prefix, id, &name).into_string();
        let mut form = self.base_form(now, key);
        if single {
            form.field("Content-Type", default.mime());
        } else {
            form.field_starting_with(
                "Content-Type",
                default.mime(),
                common_prefix(&self.limits.allowed),
            );
            // `starts-with image/` also admits image/svg+xml. The confirmation deletes any
            // file whose bytes are not the allowed image it claims to be, but a forger may
            // never come back to /uploaded: served as an attachment, an SVG stored this way
            // is never rendered (and so never runs) from the bucket's origin. `<img>` tags
            // still show real images.
            form.field("Content-Disposition", "attachment");
        }
        self.complete(&mut form, Completion::Redirect);
        // The description is typed after the form was signed: any text is let through here,
        // and confirmation checks it.
        form.user_input("x-amz-meta-alt", "");
        self.seal(form, now, uploader)
    }
}

/// The longest prefix all allowed MIME types share (`image/` for more than one).
fn common_prefix(types: &[ImageType]) -> String {
    let mut prefix = types
        .first()
        .map(|t| t.mime())
        .unwrap_or("image/")
        .to_owned();
    for t in types {
        while !t.mime().starts_with(&prefix) {
            prefix.pop();
        }
    }
    prefix
}

fn resign_at(now: DateTime<Utc>, expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let skew = chrono::Duration::from_std(MAX_CLOCK_SKEW).unwrap_or(chrono::Duration::minutes(15));
    let deadline = expires_at.min(now + skew);
    let lifetime = deadline - now;
    let margin = chrono::Duration::minutes(1).min(lifetime / 4);
    deadline - margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Version;
    use crate::secret::{Credentials, Secret};
    use chrono::TimeZone;

    fn presigner(version: Version) -> Presigner {
        Presigner {
            signer: Signer::new(
                version,
                Credentials {
                    access_key_id: "AKIDEXAMPLE".into(),
                    secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                    session_token: None,
                },
                "us-east-1",
            ),
            bucket: "signpost".into(),
            form_url: "http://127.0.0.1:9000/signpost".into(),
            redirect_url: "http://127.0.0.1:8080/uploaded".into(),
            prefix: KeyPrefix::parse("uploads/").unwrap(),
            limits: Limits {
                allowed: ImageType::ALL.to_vec(),
                max_bytes: 1024,
                max_name: crate::upload::MAX_SAFE_NAME,
            },
            ttl: Duration::from_secs(600),
            acl: None,
        }
    }

    #[test]
    fn the_common_prefix_of_image_types() {
        assert_eq!(common_prefix(&ImageType::ALL), "image/");
        assert_eq!(common_prefix(&[ImageType::Png]), "image/png");
    }

    #[test]
    fn resigning_happens_before_expiry_and_skew() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        assert_eq!(
            resign_at(now, now + chrono::Duration::minutes(10)),
            now + chrono::Duration::minutes(9)
        );
        assert_eq!(
            resign_at(now, now + chrono::Duration::hours(1)),
            now + chrono::Duration::minutes(14)
        );
        assert_eq!(
            resign_at(now, now + chrono::Duration::seconds(40)),
            now + chrono::Duration::seconds(30)
        );
    }

    #[test]
    fn a_fixed_clock_gives_identical_forms() {
        let p = presigner(Version::V4);
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap();
        let upload = ValidUpload {
            original_name: "cat.png".into(),
            image_type: ImageType::Png,
            size: Some(10),
            dimensions: None,
            alt: None,
        };
        let me = Uploader::anonymous();
        let a = p.presign(&upload, Completion::Created, Clock::Fixed(t), &me);
        let b = p.presign(&upload, Completion::Created, Clock::Fixed(t), &me);
        assert_eq!(a, b);
        assert!(a.key().starts_with("uploads/") && a.key().ends_with("/cat.png"));
    }

    /// Renderers write field names unescaped: every name a presigned form can carry.
    #[test]
    fn field_names_never_need_escaping() {
        for version in [Version::V4, Version::V2] {
            let mut p = presigner(version);
            p.acl = Some("public-read".into());
            let upload = ValidUpload {
                original_name: "a.png".into(),
                image_type: ImageType::Png,
                size: Some(1),
                dimensions: Some((1, 1)),
                alt: Some("A cat".into()),
            };
            let mut me = Uploader::new("alice");
            me.link = Some("link-id".into());
            for signed in [
                p.presign(&upload, Completion::Redirect, Clock::System, &me),
                p.presign(&upload, Completion::Created, Clock::System, &me),
                p.initial(Clock::System, &me),
            ] {
                assert!(signed.field("acl").is_some());
                assert_eq!(signed.field("x-amz-meta-owner"), Some("alice"));
                assert_eq!(signed.field("x-amz-meta-link"), Some("link-id"));
                for (name, _) in &signed.fields {
                    assert!(crate::policy::is_plain_name(name), "{name}");
                }
            }
        }
    }

    #[test]
    fn the_initial_form_uploads_without_a_file_name() {
        let p = presigner(Version::V2);
        let f = p.initial(Clock::System, &Uploader::anonymous());
        assert!(f.key().ends_with("/upload"));
        assert_eq!(f.field("Content-Type"), Some("image/jpeg"));
        assert_eq!(f.field("Content-Disposition"), Some("attachment"));
        assert!(f.field("Signature").is_some());
    }
}
