//! `signpost check`: diagnose a configuration the way a user needs when uploads fail.
//!
//! Each step is `ok` or a concrete problem and its fix (a `warn` passes, with advice):
//! 1. the endpoint answers (any HTTP answer);
//! 2. the credentials work (a signed ListObjectsV2, max-keys=1);
//! 3. the local clock agrees with the store's `Date` (within 5 minutes);
//! 4. a real 1-byte POST upload with a signed policy is stored, then deleted;
//! 5. a real 1-byte presigned PUT (what multipart parts are) is stored, then deleted;
//! 6. CORS preflights for POST and PUT from the site's origin are allowed;
//! 7. an https site does not use an http store;
//! 8. an external bucket has a lifecycle rule that aborts incomplete multipart uploads.
//!
//! A step that needs an earlier one that failed is reported as skipped. [`check`] is the
//! logic and returns the steps; [`run`] prints them and maps them to the exit status.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use awc::http::header::HeaderMap;
use awc::http::{Method, StatusCode};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use rusty_s3::S3Action;
use rusty_s3::actions::{ListObjectsV2, PutObject};

use crate::config::{Settings, StoreSettings};
use crate::policy::{PostForm, Signer, Version};
use crate::secret::{Credentials, Secret};
use crate::store::multipart::form_body;
use crate::store::{Backend, public_url};
use crate::store::{S3Client, StoreError, StoreTarget};

/// Largest clock difference with the store that passes.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);
/// Lifetime of the presigned URLs and of the test upload's policy (all used right away).
const REQUEST_TTL: Duration = Duration::from_secs(120);
/// Under the configured key prefix: where the test upload goes.
pub const CHECK_DIR: &str = ".signpost-check/";

/// The steps' names, as printed.
pub mod names {
    pub const CONFIGURATION: &str = "configuration";
    pub const ENDPOINT: &str = "endpoint";
    pub const CREDENTIALS: &str = "credentials";
    pub const CLOCK: &str = "clock";
    pub const UPLOAD: &str = "upload";
    pub const PUT: &str = "put";
    pub const CORS: &str = "cors";
    pub const MIXED_CONTENT: &str = "mixed content";
    pub const LIFECYCLE: &str = "lifecycle";
}

/// What went wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub problem: String,
    pub fix: String,
}

impl Failure {
    pub fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed, with what was seen.
    Ok(String),
    Fail(Failure),
    /// Passed, but something should be done.
    Warn(Failure),
    /// Not run: it needs the named step, which failed.
    Skipped {
        needs: &'static str,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub name: &'static str,
    pub outcome: Outcome,
}

impl Step {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            outcome: Outcome::Ok(detail.into()),
        }
    }

    fn fail(name: &'static str, failure: Failure) -> Self {
        Self {
            name,
            outcome: Outcome::Fail(failure),
        }
    }

    fn skipped(name: &'static str, needs: &'static str) -> Self {
        Self {
            name,
            outcome: Outcome::Skipped { needs },
        }
    }

    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Ok(_) | Outcome::Warn(_))
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Fail(f) => Some(f),
            _ => None,
        }
    }
}

/// Whether every step passed (skipped steps do not).
pub fn all_passed(steps: &[Step]) -> bool {
    !steps.is_empty() && steps.iter().all(Step::passed)
}

/// The store, as people name it.
pub fn describe(settings: &Settings) -> String {
    match &settings.store {
        StoreSettings::Embedded { bind } => {
            format!(
                "bucket {} on the embedded store at http://{bind}",
                settings.bucket
            )
        }
        StoreSettings::Endpoint { url } => format!(
            "bucket {} at {}",
            settings.bucket,
            url.as_str().trim_end_matches('/')
        ),
        StoreSettings::Aws => format!("bucket {} on AWS S3 ({})", settings.bucket, settings.region),
    }
}

/// Explain a store error common to every request: unreachable, timeouts, credentials,
/// a missing bucket, the region, the clock. `action` names what was attempted.
pub fn explain_store_error(
    settings: &Settings,
    target: &StoreTarget,
    e: &StoreError,
    action: &str,
) -> Failure {
    let embedded = settings.is_embedded();
    let same_as_serve = "run `signpost check` with the same --data-dir, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as `signpost serve` (with none set, the embedded store's keys are in DATA_DIR/credentials.json)";
    match e {
        StoreError::Unreachable { endpoint, detail } => Failure::new(
            format!("cannot reach {endpoint} ({detail})"),
            if embedded {
                "is the store running? for the embedded store start `signpost serve` (with the same --embedded-s3-bind and --data-dir)".to_owned()
            } else {
                "is the store running? check --s3-endpoint (AWS_ENDPOINT_URL_S3), the network and any firewall in between".to_owned()
            },
        ),
        StoreError::Timeout { endpoint, after } => Failure::new(
            format!("{endpoint} did not answer within {} ms", after.as_millis()),
            "is the endpoint right, or is a firewall dropping packets? if the store is only slow, raise --s3-timeout-ms and --s3-connect-timeout-ms",
        ),
        StoreError::BadResponse(detail) => Failure::new(
            format!(
                "{} answered {action} with something that is not S3 ({detail})",
                target.endpoint
            ),
            "check that --s3-endpoint is the S3 API endpoint of the store (not its web console)",
        ),
        StoreError::Refused {
            status,
            code,
            message,
        }
        | StoreError::Failed {
            status,
            code,
            message,
        } => {
            let said = if message.is_empty() {
                format!("{status} {code}")
            } else {
                format!("{status} {code}: {message}")
            };
            let access_key = target.credentials.key();
            match code.as_str() {
                "InvalidAccessKeyId" | "NotSignedUp" => Failure::new(
                    format!("the store does not know the access key id {access_key} ({said})"),
                    if embedded {
                        same_as_serve.to_owned()
                    } else {
                        "check AWS_ACCESS_KEY_ID (--access-key-id): it must be a key of this store's account".to_owned()
                    },
                ),
                "SignatureDoesNotMatch" => Failure::new(
                    format!(
                        "the store refused the signature of access key id {access_key} ({said})"
                    ),
                    if embedded {
                        same_as_serve.to_owned()
                    } else {
                        format!(
                            "check AWS_SECRET_ACCESS_KEY (--secret-access-key) and, for temporary credentials, AWS_SESSION_TOKEN; the region signed for is {} (--s3-region, AWS_REGION)",
                            settings.region
                        )
                    },
                ),
                "InvalidToken" | "ExpiredToken" | "TokenRefreshRequired" => Failure::new(
                    format!("the store refused the session token ({said})"),
                    "refresh the temporary credentials and set AWS_SESSION_TOKEN to the new token (unset it for long-term keys)",
                ),
                "NoSuchBucket" => Failure::new(
                    format!(
                        "bucket {} does not exist at {} ({said})",
                        settings.bucket, target.endpoint
                    ),
                    if embedded {
                        "restart `signpost serve`: the embedded store creates its bucket on start"
                            .to_owned()
                    } else {
                        format!(
                            "create it (e.g. `aws s3 mb s3://{}`), or fix --s3-bucket (SIGNPOST_S3_BUCKET)",
                            settings.bucket
                        )
                    },
                ),
                "RequestTimeTooSkewed" | "RequestExpired" => Failure::new(
                    format!("the store says this machine's clock is off ({said})"),
                    "sync the clock (NTP), e.g. `timedatectl set-ntp true`",
                ),
                "AuthorizationQueryParametersError"
                    if message.to_ascii_lowercase().contains("region") =>
                {
                    Failure::new(
                        format!(
                            "bucket {} is not in region {} ({said})",
                            settings.bucket, settings.region
                        ),
                        "set --s3-region (AWS_REGION) to the bucket's region",
                    )
                }
                "AuthorizationHeaderMalformed"
                | "PermanentRedirect"
                | "IllegalLocationConstraintException" => Failure::new(
                    format!(
                        "bucket {} is not in region {} ({said})",
                        settings.bucket, settings.region
                    ),
                    "set --s3-region (AWS_REGION) to the bucket's region",
                ),
                "AccessDenied" | "AllAccessDisabled" => Failure::new(
                    format!(
                        "the credentials of {access_key} may not do {action} on bucket {} ({said})",
                        settings.bucket
                    ),
                    format!(
                        "grant them s3:ListBucket on the bucket and s3:PutObject, s3:GetObject, s3:DeleteObject on {}{}*",
                        settings.bucket,
                        if settings.prefix.as_str().is_empty() {
                            "/".to_owned()
                        } else {
                            format!("/{}", settings.prefix)
                        }
                    ),
                ),
                _ if matches!(status, 301 | 307 | 308) => Failure::new(
                    format!("the store redirected {action} ({said})"),
                    "the bucket is probably in another region: set --s3-region (AWS_REGION) to its region",
                ),
                _ => Failure::new(
                    format!("the store refused {action}: {said}"),
                    format!("see the store's documentation of the {code} error"),
                ),
            }
        }
    }
}

/// Turn a raw answer into a `StoreError` when it is not a success.
fn refused(status: StatusCode, body: &[u8]) -> StoreError {
    StoreError::from_status(status.as_u16(), body)
}

/// What the checks share.
struct Ctx<'a> {
    settings: &'a Settings,
    credentials: Credentials,
    target: Arc<StoreTarget>,
    client: S3Client,
    /// Where browsers post their uploads.
    browser_url: String,
    origin: String,
    /// The embedded store's credentials file, when it does not exist (the store never ran
    /// with this data dir).
    missing_credentials: Option<PathBuf>,
}

/// The endpoint's answer: its `Date`, and when it arrived.
struct Answer {
    status: StatusCode,
    date: Option<String>,
    received: DateTime<Utc>,
}

fn date_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("date")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `1 h 2 min 3 s`
pub fn human_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// Compare the store's `Date` header with the local time it arrived at.
pub fn clock_outcome(store_date: &str, local: DateTime<Utc>) -> Result<String, Failure> {
    let store = DateTime::parse_from_rfc2822(store_date)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| {
            Failure::new(
                format!("the store's Date header {store_date:?} is not an HTTP date ({e})"),
                "check that --s3-endpoint is an S3 store",
            )
        })?;
    // The header has whole seconds: compare at that resolution.
    let skew = local.timestamp() - store.timestamp();
    let amount = human_duration(skew.unsigned_abs());
    let relation = match skew {
        0 => "agrees with the store's".to_owned(),
        s if s > 0 => format!("is {amount} ahead of the store's"),
        _ => format!("is {amount} behind the store's"),
    };
    if skew.unsigned_abs() > MAX_SKEW.as_secs() {
        return Err(Failure::new(
            format!(
                "this machine's clock {relation} (here {}, store {}); S3 refuses signatures more than 15 minutes off, and signed forms expire early or late",
                local.format("%Y-%m-%d %H:%M:%S UTC"),
                store.format("%Y-%m-%d %H:%M:%S UTC"),
            ),
            "sync the clock (NTP), e.g. `timedatectl set-ntp true`, on this machine (or the store's)",
        ));
    }
    Ok(format!(
        "this machine's clock {relation} (within {})",
        human_duration(MAX_SKEW.as_secs())
    ))
}

impl<'a> Ctx<'a> {
    fn new(settings: &'a Settings) -> Result<Self, Failure> {
        let public = public_url(settings, settings.bind).map_err(|e| {
            Failure::new(
                format!("cannot tell the site's origin: {e}"),
                "set --public-url (SIGNPOST_PUBLIC_URL) to the origin browsers use",
            )
        })?;
        // A missing credentials file means the store never ran with this data dir:
        // `Backend::connect` refuses that, but the unsigned steps (endpoint, CORS) can still
        // run, so they get stand-in keys and the credentials step reports the file.
        let mut missing_credentials = None;
        let connect_with;
        let settings_for_connect = if settings.is_embedded() && settings.credentials.is_none() {
            let path = crate::store::embedded::credentials_path(&settings.data_dir);
            if path.exists() {
                settings
            } else {
                missing_credentials = Some(path);
                let mut s = settings.clone();
                s.credentials = Some(Credentials {
                    access_key_id: "MISSING".into(),
                    secret_access_key: Secret::new("missing"),
                    session_token: None,
                });
                connect_with = s;
                &connect_with
            }
        } else {
            settings
        };
        let backend = Backend::connect(settings_for_connect, &public).map_err(|e| {
            Failure::new(
                format!("cannot prepare the store: {e}"),
                "fix the configuration named above",
            )
        })?;
        Ok(Self {
            settings,
            credentials: backend.credentials.clone(),
            client: S3Client::new(backend.target.clone()),
            target: backend.target,
            browser_url: backend.browser_target.form_url(),
            origin: public.origin().ascii_serialization(),
            missing_credentials,
        })
    }

    fn explain(&self, e: &StoreError, action: &str) -> Failure {
        explain_store_error(self.settings, &self.target, e, action)
    }

    /// Step 1: any HTTP answer from the bucket's URL (unsigned).
    async fn endpoint(&self) -> Result<Answer, Failure> {
        let url = self.target.bucket.base_url().as_str();
        match self
            .client
            .send_raw(Method::GET, url, &[], Bytes::new())
            .await
        {
            Ok((status, headers, _)) => Ok(Answer {
                status,
                date: date_header(&headers),
                received: Utc::now(),
            }),
            Err(e) => Err(self.explain(&e, "a GET of the bucket")),
        }
    }

    /// Step 2: a signed ListObjectsV2 of one key under the prefix. Returns the store's `Date`.
    async fn credentials(&self) -> Result<(String, Option<(String, DateTime<Utc>)>), Failure> {
        if let Some(path) = &self.missing_credentials {
            return Err(Failure::new(
                format!(
                    "there are no credentials for the embedded store: {} does not exist",
                    path.display()
                ),
                "the embedded store writes them on its first start: run `signpost check` with the same --data-dir as `signpost serve`",
            ));
        }
        let mut list = ListObjectsV2::new(&self.target.bucket, Some(&self.target.credentials));
        list.with_prefix(self.settings.prefix.as_str());
        list.with_max_keys(1);
        let url = list.sign(REQUEST_TTL);
        match self
            .client
            .send_raw(Method::GET, url.as_str(), &[], Bytes::new())
            .await
        {
            Ok((status, headers, _)) if status.is_success() => Ok((
                format!(
                    "access key id {} may list bucket {} (signed ListObjectsV2, SigV4)",
                    self.target.credentials.key(),
                    self.settings.bucket
                ),
                date_header(&headers).map(|d| (d, Utc::now())),
            )),
            Ok((status, headers, body)) => {
                // AWS names the bucket's region when it is another one.
                if let Some(region) = headers
                    .get("x-amz-bucket-region")
                    .and_then(|v| v.to_str().ok())
                    .filter(|r| *r != self.settings.region)
                {
                    return Err(Failure::new(
                        format!(
                            "bucket {} is in region {region}, not {} (HTTP {})",
                            self.settings.bucket,
                            self.settings.region,
                            status.as_u16()
                        ),
                        format!("set --s3-region (AWS_REGION) to {region}"),
                    ));
                }
                Err(self.explain(&refused(status, &body), "ListObjectsV2"))
            }
            Err(e) => Err(self.explain(&e, "ListObjectsV2")),
        }
    }

    /// Step 4: POST a 1-byte object with a signed policy, check it is there, delete it, check it
    /// is gone.
    async fn upload(&self) -> Result<String, Failure> {
        let settings = self.settings;
        let key = format!(
            "{}{CHECK_DIR}{}",
            settings.prefix.as_str(),
            uuid::Uuid::new_v4()
        );
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(REQUEST_TTL).unwrap_or(chrono::Duration::minutes(2));
        let mut form = PostForm::new(now + ttl);
        form.bucket(settings.bucket.as_str());
        form.field("key", key.as_str());
        if let Some(acl) = &settings.acl {
            form.field("acl", acl.as_str());
        }
        form.field("Content-Type", "application/octet-stream");
        form.field("success_action_status", "201");
        form.content_length_range(1, 1);
        let signer = Signer::new(
            settings.signature,
            self.credentials.clone(),
            settings.region.clone(),
        );
        let signed = signer.sign(form, now);
        let fields: Vec<(&str, &str)> = signed
            .fields
            .iter()
            .map(|(k, v)| (*k, v.as_ref()))
            .collect();
        let (content_type, body) = form_body(
            &fields,
            "signpost-check.bin",
            "application/octet-stream",
            b"!",
        );
        let url = self.target.form_url();
        let version = match settings.signature {
            Version::V4 => "SigV4",
            Version::V2 => "SigV2",
        };
        let status = match self
            .client
            .send_raw(Method::POST, &url, &[("content-type", content_type)], body)
            .await
        {
            Ok((s, _, _)) if matches!(s.as_u16(), 200 | 201 | 204) => s,
            Ok((s, _, body)) => return Err(self.post_refused(s, &body, &url)),
            Err(e) => return Err(self.explain(&e, "the POST upload")),
        };

        // Accepted: make sure it is really there, and clean up whatever happens.
        let stored = self.client.head(&key).await;
        let deleted = self.client.delete(&key).await;
        let gone = match &deleted {
            Ok(()) => Some(self.client.head(&key).await),
            Err(_) => None,
        };
        match stored {
            Ok(Some(head)) if head.size == 1 => {}
            Ok(Some(head)) => {
                return Err(Failure::new(
                    format!(
                        "the store answered {status} to the POST, but stored {} bytes instead of 1",
                        head.size
                    ),
                    "the store does not honour POST Object faithfully: use another store (AWS S3, MinIO, Ceph RGW, Garage)",
                ));
            }
            Ok(None) => {
                return Err(Failure::new(
                    format!("the store answered {status} to the POST, but {key} is not there"),
                    "the store does not honour POST Object: use another store (AWS S3, MinIO, Ceph RGW, Garage)",
                ));
            }
            Err(e) => return Err(self.explain(&e, "a HEAD of the uploaded object")),
        }
        match (deleted, gone) {
            (Err(e), _) => {
                let f = self.explain(&e, "DeleteObject");
                Err(Failure::new(
                    format!("the upload worked, but deleting it failed: {}", f.problem),
                    format!(
                        "{}; then delete {key} by hand (signpost check leaves it behind)",
                        f.fix
                    ),
                ))
            }
            (Ok(()), Some(Ok(Some(_)))) => Err(Failure::new(
                format!("the upload worked, but {key} is still there after DELETE"),
                "check the bucket's versioning or object lock settings, and delete it by hand",
            )),
            (Ok(()), Some(Err(e))) => Err(self.explain(&e, "a HEAD after DeleteObject")),
            _ => Ok(format!(
                "a 1-byte POST upload ({version} policy) to {url} was stored (HTTP {}) and deleted",
                status.as_u16()
            )),
        }
    }

    /// Step 5: PUT a 1-byte object with a presigned URL (what a multipart upload's parts
    /// are), check it is there, delete it.
    async fn put(&self) -> Result<String, Failure> {
        let key = format!(
            "{}{CHECK_DIR}{}",
            self.settings.prefix.as_str(),
            uuid::Uuid::new_v4()
        );
        let mut action = PutObject::new(&self.target.bucket, Some(&self.target.credentials), &key);
        action
            .headers_mut()
            .insert("content-type", "application/octet-stream");
        let url = action.sign(REQUEST_TTL);
        let sent = self
            .client
            .send_raw(
                Method::PUT,
                url.as_str(),
                &[("content-type", "application/octet-stream".to_owned())],
                Bytes::from_static(b"!"),
            )
            .await;
        let status = match sent {
            Ok((s, _, _)) if s.is_success() => s,
            Ok((s, _, body)) => {
                let e = refused(s, &body);
                if matches!(&e, StoreError::Refused { code, .. } if code == "AccessDenied") {
                    return Err(Failure::new(
                        format!("the store refused a presigned PUT ({e})"),
                        format!(
                            "grant the credentials s3:PutObject on {}/{}*: large files upload in parts, each a presigned PUT",
                            self.settings.bucket, self.settings.prefix
                        ),
                    ));
                }
                return Err(self.explain(&e, "a presigned PUT"));
            }
            Err(e) => return Err(self.explain(&e, "a presigned PUT")),
        };
        let stored = self.client.head(&key).await;
        let deleted = self.client.delete(&key).await;
        match (stored, deleted) {
            (Ok(Some(head)), Ok(())) if head.size == 1 => Ok(format!(
                "a 1-byte presigned PUT was stored (HTTP {}) and deleted",
                status.as_u16()
            )),
            (Ok(other), Ok(())) => Err(Failure::new(
                format!(
                    "the store answered {status} to the PUT but stored {}",
                    other.map_or("nothing".to_owned(), |h| format!("{} bytes", h.size))
                ),
                "the store does not honour presigned PUTs faithfully: use another store (AWS S3, MinIO, Ceph RGW, Garage)",
            )),
            (Err(e), _) => Err(self.explain(&e, "a HEAD of the PUT object")),
            (_, Err(e)) => {
                let f = self.explain(&e, "DeleteObject");
                Err(Failure::new(
                    format!("the PUT worked, but deleting it failed: {}", f.problem),
                    format!("{}; then delete {key} by hand", f.fix),
                ))
            }
        }
    }

    /// Step 8: abandoned multipart uploads keep their parts (and cost storage) until they
    /// are aborted: an external bucket should have a lifecycle rule that does it.
    async fn lifecycle(&self) -> Outcome {
        if self.settings.is_embedded() {
            return Outcome::Ok(
                "the embedded store (s3s-fs 0.14) has no lifecycle rules and cannot list incomplete multipart uploads: an abandoned one keeps its parts in the data dir until Uppy aborts it".into(),
            );
        }
        let creds = &self.target.credentials;
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            self.target.bucket.base_url().clone(),
            creds.key(),
            creds.secret(),
            creds.token(),
            self.target.bucket.region(),
            REQUEST_TTL.as_secs(),
            std::iter::once(("lifecycle", "")),
            std::iter::empty::<(&str, &str)>(),
        );
        let fix = format!(
            "add a lifecycle rule to bucket {} that aborts incomplete multipart uploads after a day or so (AbortIncompleteMultipartUpload, DaysAfterInitiation 2): abandoned multipart uploads keep their parts, and their cost, until then",
            self.settings.bucket
        );
        match self
            .client
            .send_raw(Method::GET, url.as_str(), &[], Bytes::new())
            .await
        {
            Ok((s, _, body)) if s.is_success() => {
                let xml = String::from_utf8_lossy(&body);
                if xml.contains("<AbortIncompleteMultipartUpload>") {
                    Outcome::Ok("a lifecycle rule aborts incomplete multipart uploads".into())
                } else {
                    Outcome::Warn(Failure::new(
                        "no lifecycle rule of the bucket aborts incomplete multipart uploads",
                        fix,
                    ))
                }
            }
            Ok((s, _, body)) => {
                let e = refused(s, &body);
                let problem = match &e {
                    StoreError::Refused { code, .. } if code == "NoSuchLifecycleConfiguration" => {
                        "the bucket has no lifecycle rules, so nothing aborts incomplete multipart uploads".to_owned()
                    }
                    _ => format!(
                        "cannot read the bucket's lifecycle rules ({e}), so signpost cannot tell whether incomplete multipart uploads are aborted"
                    ),
                };
                Outcome::Warn(Failure::new(problem, fix))
            }
            Err(e) => Outcome::Warn(Failure::new(
                format!("cannot read the bucket's lifecycle rules ({e})"),
                fix,
            )),
        }
    }

    fn post_refused(&self, status: StatusCode, body: &[u8], url: &str) -> Failure {
        let e = refused(status, body);
        let (code, message) = match &e {
            StoreError::Refused { code, message, .. }
            | StoreError::Failed { code, message, .. } => (code.as_str(), message.as_str()),
            _ => ("", ""),
        };
        if status == StatusCode::NOT_IMPLEMENTED || code == "NotImplemented" {
            return Failure::new(
                format!(
                    "the store at {} does not implement POST Object (browser form uploads): it answered {e}. Cloudflare R2 and Backblaze B2 are such stores",
                    self.target.endpoint
                ),
                "signpost needs POST Object: use a store that implements it, such as AWS S3, MinIO, Ceph RGW, Garage, Wasabi, DigitalOcean Spaces or Google Cloud Storage (XML API), or the embedded store",
            );
        }
        if code == "AccessControlListNotSupported" {
            return Failure::new(
                format!(
                    "the bucket refuses ACLs, and uploads send acl={} ({e})",
                    self.settings.acl.as_deref().unwrap_or("")
                ),
                "unset --acl (SIGNPOST_ACL); make objects public with a bucket policy or a CDN instead",
            );
        }
        if code == "SignatureDoesNotMatch" && self.settings.signature == Version::V2 {
            return Failure::new(
                format!("the store refused the SigV2 form ({e})"),
                "use --signature v4 (SIGNPOST_SIGNATURE): AWS refuses SigV2 on buckets made since June 2020 and in newer regions",
            );
        }
        if code == "AccessDenied" {
            let mut problem = format!("the store refused the signed POST to {url} ({e})");
            if message.to_ascii_lowercase().contains("policy") {
                problem.push_str("; the form or its policy was refused");
            }
            return Failure::new(
                problem,
                format!(
                    "grant the credentials s3:PutObject on {}/{}*, and check that the bucket has no policy refusing uploads",
                    self.settings.bucket, self.settings.prefix
                ),
            );
        }
        self.explain(&e, "the POST upload")
    }

    /// Step 6: CORS preflights for POST (forms) and PUT (multipart parts) from the site's
    /// origin.
    async fn cors(&self) -> Result<String, Failure> {
        for method in ["POST", "PUT"] {
            self.preflight(method).await?;
        }
        Ok(format!(
            "preflights for POST and PUT from {} to {} are allowed",
            self.origin,
            self.target.form_url()
        ))
    }

    async fn preflight(&self, method: &str) -> Result<(), Failure> {
        let url = self.target.form_url();
        let headers = [
            ("origin", self.origin.clone()),
            ("access-control-request-method", method.to_owned()),
        ];
        let (status, headers) = match self
            .client
            .send_raw(Method::OPTIONS, &url, &headers, Bytes::new())
            .await
        {
            Ok((s, h, _)) => (s, h),
            Err(e) => return Err(self.explain(&e, "a CORS preflight")),
        };
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let allow_origin = get("access-control-allow-origin");
        let origin_ok = allow_origin.is_some_and(|o| o == self.origin || o == "*");
        // Without the header the browser falls back to the preflight's method list; with it,
        // the method must be there.
        let method_ok = get("access-control-allow-methods").is_none_or(|m| {
            m.split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(method) || m.trim() == "*")
        });
        if origin_ok && method_ok && status.is_success() {
            return Ok(());
        }
        let seen = match allow_origin {
            Some(o) => format!("HTTP {}, Access-Control-Allow-Origin: {o}", status.as_u16()),
            None => format!("HTTP {}, no Access-Control-Allow-Origin", status.as_u16()),
        };
        let fix = if self.settings.is_embedded() {
            "the embedded store allows only the site's origin (and --cors-origins): run `signpost check` with the same --public-url (or --bind) as `signpost serve`".to_owned()
        } else {
            format!(
                "run `signpost cors` (or allow POST, PUT and DELETE from {} in the bucket's CORS by hand); plain form uploads still work without CORS, script uploads (progress bars, Uppy) do not",
                self.origin
            )
        };
        Err(Failure::new(
            format!(
                "the bucket's CORS does not allow {method} from {} ({seen})",
                self.origin
            ),
            fix,
        ))
    }
}

/// Run every check against the configured store.
pub async fn check(settings: &Settings) -> Vec<Step> {
    use names::*;
    let ctx = match Ctx::new(settings) {
        Ok(c) => c,
        Err(f) => {
            let mut steps = vec![Step::fail(CONFIGURATION, f)];
            for name in [
                ENDPOINT,
                CREDENTIALS,
                CLOCK,
                UPLOAD,
                PUT,
                CORS,
                MIXED_CONTENT,
                LIFECYCLE,
            ] {
                steps.push(Step::skipped(name, CONFIGURATION));
            }
            return steps;
        }
    };
    let mut steps = Vec::with_capacity(8);

    let answer = match ctx.endpoint().await {
        Ok(a) => {
            steps.push(Step::ok(
                ENDPOINT,
                format!(
                    "{} answers (HTTP {} to an unsigned GET of the bucket)",
                    ctx.target.endpoint,
                    a.status.as_u16()
                ),
            ));
            a
        }
        Err(f) => {
            steps.push(Step::fail(ENDPOINT, f));
            for name in [
                CREDENTIALS,
                CLOCK,
                UPLOAD,
                PUT,
                CORS,
                MIXED_CONTENT,
                LIFECYCLE,
            ] {
                steps.push(Step::skipped(name, ENDPOINT));
            }
            return steps;
        }
    };

    let mut date = answer.date.map(|d| (d, answer.received));
    let credentials_ok = match ctx.credentials().await {
        Ok((detail, listed_date)) => {
            steps.push(Step::ok(CREDENTIALS, detail));
            date = date.or(listed_date);
            true
        }
        Err(f) => {
            steps.push(Step::fail(CREDENTIALS, f));
            false
        }
    };

    steps.push(match date {
        Some((store, local)) => match clock_outcome(&store, local) {
            Ok(detail) => Step::ok(CLOCK, detail),
            Err(f) => Step::fail(CLOCK, f),
        },
        None => Step::ok(
            CLOCK,
            "not compared: the store sends no Date header (uploads fail with RequestTimeTooSkewed if the clocks differ)",
        ),
    });

    steps.push(if credentials_ok {
        match ctx.upload().await {
            Ok(detail) => Step::ok(UPLOAD, detail),
            Err(f) => Step::fail(UPLOAD, f),
        }
    } else {
        Step::skipped(UPLOAD, CREDENTIALS)
    });
    steps.push(if credentials_ok {
        match ctx.put().await {
            Ok(detail) => Step::ok(PUT, detail),
            Err(f) => Step::fail(PUT, f),
        }
    } else {
        Step::skipped(PUT, CREDENTIALS)
    });

    steps.push(match ctx.cors().await {
        Ok(detail) => Step::ok(CORS, detail),
        Err(f) => Step::fail(CORS, f),
    });
    steps.push(
        match mixed_content(&ctx.origin, &ctx.browser_url, settings.is_embedded()) {
            Ok(detail) => Step::ok(MIXED_CONTENT, detail),
            Err(f) => Step::fail(MIXED_CONTENT, f),
        },
    );
    steps.push(if credentials_ok {
        Step {
            name: LIFECYCLE,
            outcome: ctx.lifecycle().await,
        }
    } else {
        Step::skipped(LIFECYCLE, CREDENTIALS)
    });
    steps
}

/// An https page may not post to (or show images from) an http store: browsers block it.
pub fn mixed_content(site: &str, store: &str, embedded: bool) -> Result<String, Failure> {
    if site.starts_with("https:") && store.starts_with("http:") {
        let fix = if embedded {
            "put the embedded store behind the same TLS proxy and tell signpost its URL: --embedded-s3-public-url https://s3.example.com"
        } else {
            "use the store's https endpoint in --s3-endpoint"
        };
        return Err(Failure::new(
            format!(
                "the site is {site} but browsers would post to {store}: an https page may not use an http store (mixed content)"
            ),
            fix,
        ));
    }
    Ok(format!("the page ({site}) and the store ({store}) agree"))
}

/// The report, one step per line (fixes indented below failures).
pub fn render(settings: &Settings, steps: &[Step]) -> String {
    let mut out = format!("signpost check: {}\n", describe(settings));
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in steps {
        let name = step.name;
        match &step.outcome {
            Outcome::Ok(detail) => out.push_str(&format!("  ok    {name:<width$}  {detail}\n")),
            Outcome::Fail(f) => {
                out.push_str(&format!("  FAIL  {name:<width$}  {}\n", f.problem));
                out.push_str(&format!("        {:<width$}  fix: {}\n", "", f.fix));
            }
            Outcome::Warn(f) => {
                out.push_str(&format!("  warn  {name:<width$}  {}\n", f.problem));
                out.push_str(&format!("        {:<width$}  fix: {}\n", "", f.fix));
            }
            Outcome::Skipped { needs } => out.push_str(&format!(
                "  skip  {name:<width$}  not run: it needs the {needs} step to pass\n"
            )),
        }
    }
    let passed = steps.iter().filter(|s| s.passed()).count();
    if all_passed(steps) {
        out.push_str(&format!("all {passed} checks passed\n"));
    } else {
        out.push_str(&format!(
            "{passed} of {} checks passed: uploads will fail until the problems above are fixed\n",
            steps.len()
        ));
    }
    out
}

/// Print the steps; exit 0 only if all passed.
pub async fn run(settings: &Settings) -> ExitCode {
    let steps = check(settings).await;
    print!("{}", render(settings, &steps));
    if all_passed(&steps) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).single().unwrap()
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(0), "0 s");
        assert_eq!(human_duration(59), "59 s");
        assert_eq!(human_duration(300), "5 min");
        assert_eq!(human_duration(3723), "1 h 2 min 3 s");
    }

    #[test]
    fn a_small_skew_passes_and_a_large_one_says_ntp() {
        let ok = clock_outcome("Sun, 01 Mar 2026 12:00:00 GMT", at(12, 0, 2)).unwrap();
        assert!(ok.contains("2 s ahead"), "{ok}");
        assert!(clock_outcome("Sun, 01 Mar 2026 12:00:00 GMT", at(12, 5, 0)).is_ok());
        let f = clock_outcome("Sun, 01 Mar 2026 12:00:00 GMT", at(11, 0, 0)).unwrap_err();
        assert!(f.problem.contains("1 h behind"), "{}", f.problem);
        assert!(f.fix.contains("sync the clock (NTP)"), "{}", f.fix);
        let f = clock_outcome("Sun, 01 Mar 2026 12:00:00 GMT", at(12, 5, 1)).unwrap_err();
        assert!(f.problem.contains("5 min 1 s ahead"), "{}", f.problem);
    }

    #[test]
    fn a_bad_date_is_a_problem_not_a_panic() {
        assert!(clock_outcome("yesterday", at(12, 0, 0)).is_err());
    }

    #[test]
    fn skipped_steps_fail_the_run() {
        let steps = vec![
            Step::ok(names::ENDPOINT, "fine"),
            Step::skipped(names::CREDENTIALS, names::ENDPOINT),
        ];
        assert!(!all_passed(&steps));
        assert!(!all_passed(&[]));
        assert!(all_passed(&steps[..1]));
    }
}
