//! `signpost cors`: let the site's origin (and `--cors-origins`) upload into the bucket from
//! a script.
//!
//! A plain form POST is a navigation and needs no CORS; uploads through XHR/fetch (progress
//! bars, several files at once, Uppy's POST forms and multipart PUTs) do. This builds one
//! CORS rule for those origins and
//! applies it with PutBucketCors (SigV4-presigned, with `Content-MD5`), or only prints it
//! with `--dry-run`. The embedded store needs nothing: it already answers preflights for
//! the site's origin.
//!
//! [`cors`] is the logic and returns a structured result; [`run`] prints it.

use std::process::ExitCode;
use std::time::Duration;

use awc::http::Method as HttpMethod;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use md5::{Digest, Md5};

use super::check::{self, Failure};
use crate::config::{CorsArgs, Settings};
use crate::store::{Backend, public_url};
use crate::store::{S3Client, StoreError, StoreTarget};

/// Methods the rule allows: uploads (form POSTs; multipart creates, parts and completions),
/// aborting a multipart upload, listing its parts and reading the objects back.
pub const ALLOWED_METHODS: [&str; 5] = ["POST", "PUT", "DELETE", "GET", "HEAD"];
/// Headers a script may read from the store's answers.
pub const EXPOSED_HEADERS: [&str; 3] = ["ETag", "Location", "x-amz-request-id"];
/// How long browsers may cache a preflight's answer.
pub const MAX_AGE_SECONDS: u32 = 3000;
/// Lifetime of the presigned PutBucketCors URL (used right away).
const REQUEST_TTL: Duration = Duration::from_secs(300);

/// The one CORS rule signpost needs: the site's origin (and `--cors-origins`) may upload
/// with any header (the signatures pin what a request may carry), and read the ETag of
/// what it uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsRule {
    /// `scheme://host[:port]`, as browsers send them in `Origin`: the site's first.
    pub origins: Vec<String>,
}

impl CorsRule {
    /// The `PutBucketCors` body.
    pub fn to_xml(&self) -> String {
        let mut xml = String::with_capacity(640);
        xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.push_str("<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n");
        xml.push_str("  <CORSRule>\n");
        xml.push_str("    <ID>signpost-uploads</ID>\n");
        for origin in &self.origins {
            xml.push_str(&format!(
                "    <AllowedOrigin>{}</AllowedOrigin>\n",
                xml_escape(origin)
            ));
        }
        for m in ALLOWED_METHODS {
            xml.push_str(&format!("    <AllowedMethod>{m}</AllowedMethod>\n"));
        }
        xml.push_str("    <AllowedHeader>*</AllowedHeader>\n");
        for h in EXPOSED_HEADERS {
            xml.push_str(&format!("    <ExposeHeader>{h}</ExposeHeader>\n"));
        }
        xml.push_str(&format!(
            "    <MaxAgeSeconds>{MAX_AGE_SECONDS}</MaxAgeSeconds>\n"
        ));
        xml.push_str("  </CORSRule>\n");
        xml.push_str("</CORSConfiguration>\n");
        xml
    }

    /// One line for people: what the rule allows.
    pub fn summary(&self) -> String {
        format!(
            "{} {} may {} with any header, reading {}; preflights cached {} s",
            if self.origins.len() == 1 {
                "origin"
            } else {
                "origins"
            },
            self.origins.join(", "),
            ALLOWED_METHODS.join("/"),
            EXPOSED_HEADERS.join(", "),
            MAX_AGE_SECONDS
        )
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `Content-MD5`: the base64 MD5 digest of the body.
pub fn content_md5(body: &[u8]) -> String {
    STANDARD.encode(Md5::digest(body))
}

/// What would be (or was) applied, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPlan {
    pub rule: CorsRule,
    pub bucket: String,
    /// The bucket's URL (no signature in it).
    pub bucket_url: String,
    /// The `PutBucketCors` body.
    pub xml: String,
}

/// The result of `signpost cors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOutcome {
    /// The embedded store already answers CORS for the site's origin: nothing to apply.
    Embedded { origin: String },
    /// `--dry-run`: the plan, nothing sent.
    DryRun(CorsPlan),
    /// PutBucketCors succeeded.
    Applied(CorsPlan),
}

/// A failure, with the plan when there is one (so it can be applied by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsError {
    pub failure: Failure,
    pub plan: Option<Box<CorsPlan>>,
}

impl CorsError {
    fn config(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            failure: Failure::new(problem, fix),
            plan: None,
        }
    }
}

/// The rule for this configuration's site and where it goes, without any I/O.
pub fn plan(settings: &Settings) -> Result<(CorsPlan, Backend), CorsError> {
    let public = public_url(settings, settings.bind).map_err(|e| {
        CorsError::config(
            format!("cannot tell the site's origin: {e}"),
            "set --public-url (SIGNPOST_PUBLIC_URL) to the origin browsers use",
        )
    })?;
    let backend = Backend::connect(settings, &public).map_err(|e| {
        CorsError::config(
            format!("cannot prepare the store: {e}"),
            "fix the configuration above",
        )
    })?;
    // `--cors-origins` is deduplicated already; the site's origin may be in it too.
    let site = public.origin().ascii_serialization();
    let others = settings
        .cors_origins
        .iter()
        .filter(|o| **o != site)
        .cloned();
    let rule = CorsRule {
        origins: std::iter::once(site.clone()).chain(others).collect(),
    };
    let xml = rule.to_xml();
    let plan = CorsPlan {
        rule,
        bucket: settings.bucket.clone(),
        bucket_url: backend.target.form_url(),
        xml,
    };
    Ok((plan, backend))
}

/// The presigned `PUT BUCKET?cors` URL and the `Content-MD5` of `body`. The URL carries the
/// signature (and a session token, if any): never print it.
pub fn sign_put_bucket_cors(target: &StoreTarget, body: &[u8]) -> (url::Url, String) {
    sign_put_bucket_cors_at(target, body, &jiff::Timestamp::now())
}

fn sign_put_bucket_cors_at(
    target: &StoreTarget,
    body: &[u8],
    at: &jiff::Timestamp,
) -> (url::Url, String) {
    let md5 = content_md5(body);
    let creds = &target.credentials;
    let url = rusty_s3::signing::sign(
        at,
        rusty_s3::Method::Put,
        target.bucket.base_url().clone(),
        creds.key(),
        creds.secret(),
        creds.token(),
        target.bucket.region(),
        REQUEST_TTL.as_secs(),
        std::iter::once(("cors", "")),
        std::iter::once(("content-md5", md5.as_str())),
    );
    (url, md5)
}

/// Build the rule and, unless `dry_run`, apply it to the configured external bucket.
pub async fn cors(settings: &Settings, dry_run: bool) -> Result<CorsOutcome, CorsError> {
    if settings.is_embedded() {
        let public = public_url(settings, settings.bind).map_err(|e| {
            CorsError::config(
                format!("cannot tell the site's origin: {e}"),
                "set --public-url (SIGNPOST_PUBLIC_URL) to the origin browsers use",
            )
        })?;
        return Ok(CorsOutcome::Embedded {
            origin: public.origin().ascii_serialization(),
        });
    }
    let (plan, backend) = plan(settings)?;
    if dry_run {
        return Ok(CorsOutcome::DryRun(plan));
    }
    let client = S3Client::new(backend.target.clone());
    let (url, md5) = sign_put_bucket_cors(&backend.target, plan.xml.as_bytes());
    let sent = client
        .send_raw(
            HttpMethod::PUT,
            url.as_str(),
            &[
                ("content-md5", md5),
                ("content-type", "application/xml".to_owned()),
            ],
            Bytes::from(plan.xml.clone()),
        )
        .await;
    let error = match sent {
        Ok((status, _, _)) if status.is_success() => return Ok(CorsOutcome::Applied(plan)),
        Ok((status, _, body)) => StoreError::from_status(status.as_u16(), &body),
        Err(e) => e,
    };
    let failure = explain(settings, &backend.target, &plan, &error);
    Err(CorsError {
        failure,
        plan: Some(Box::new(plan)),
    })
}

fn explain(settings: &Settings, target: &StoreTarget, plan: &CorsPlan, e: &StoreError) -> Failure {
    let code = match e {
        StoreError::Refused { code, .. } | StoreError::Failed { code, .. } => code.as_str(),
        _ => "",
    };
    let status = match e {
        StoreError::Refused { status, .. } | StoreError::Failed { status, .. } => *status,
        _ => 0,
    };
    if code == "NotImplemented" || status == 501 {
        return Failure::new(
            format!(
                "the store at {} does not support PutBucketCors ({e})",
                target.endpoint
            ),
            format!(
                "configure CORS on bucket {} by hand, in the store's console or tool: allow origin {}, methods {}, any header, expose {} (the XML above is the same rule)",
                plan.bucket,
                plan.rule.origins.join(" and "),
                ALLOWED_METHODS.join(", "),
                EXPOSED_HEADERS.join(", ")
            ),
        );
    }
    if code == "AccessDenied" {
        return Failure::new(
            format!(
                "the credentials may not change the CORS of bucket {} ({e})",
                plan.bucket
            ),
            "grant them s3:PutBucketCORS on the bucket, or apply the rule above with an administrator's credentials",
        );
    }
    check::explain_store_error(settings, target, e, "PutBucketCors")
}

/// Print the outcome; exit 0 when the rule is in place (or needs no applying, or was only
/// printed).
pub async fn run(settings: &Settings, args: &CorsArgs) -> ExitCode {
    match cors(settings, args.dry_run).await {
        Ok(CorsOutcome::Embedded { origin }) => {
            println!(
                "the embedded store already allows {origin} (the site's origin, and --cors-origins) to upload from a script; nothing needs applying"
            );
            println!(
                "(it answers CORS preflights itself; set --public-url if browsers reach the site at another origin)"
            );
            ExitCode::SUCCESS
        }
        Ok(CorsOutcome::DryRun(plan)) => {
            println!(
                "dry run: would apply this CORS configuration to bucket {} at {} (nothing sent):",
                plan.bucket, plan.bucket_url
            );
            println!("{}", plan.xml.trim_end());
            println!("{}", plan.rule.summary());
            println!(
                "note: PutBucketCors replaces the bucket's whole CORS configuration, rules for other origins included"
            );
            ExitCode::SUCCESS
        }
        Ok(CorsOutcome::Applied(plan)) => {
            println!(
                "applied this CORS configuration to bucket {} at {}:",
                plan.bucket, plan.bucket_url
            );
            println!("{}", plan.xml.trim_end());
            println!("{}", plan.rule.summary());
            println!(
                "run `signpost check` to see a preflight from {} allowed",
                plan.rule.origins.join(" and ")
            );
            ExitCode::SUCCESS
        }
        Err(CorsError { failure, plan }) => {
            if let Some(plan) = plan {
                eprintln!(
                    "the CORS configuration for bucket {} at {}:",
                    plan.bucket, plan.bucket_url
                );
                eprintln!("{}", plan.xml.trim_end());
            }
            eprintln!("signpost cors: {}", failure.problem);
            eprintln!("  fix: {}", failure.fix);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_names_the_origin_post_and_etag() {
        let xml = CorsRule {
            origins: vec![
                "https://uploads.example.com".into(),
                "https://app.example.com".into(),
            ],
        }
        .to_xml();
        assert!(xml.contains("<AllowedOrigin>https://uploads.example.com</AllowedOrigin>"));
        assert!(xml.contains("<AllowedOrigin>https://app.example.com</AllowedOrigin>"));
        for m in ["POST", "PUT", "DELETE"] {
            assert!(xml.contains(&format!("<AllowedMethod>{m}</AllowedMethod>")));
        }
        assert!(xml.contains("<AllowedHeader>*</AllowedHeader>"));
        assert!(xml.contains("<ExposeHeader>ETag</ExposeHeader>"));
        assert!(xml.contains("<MaxAgeSeconds>3000</MaxAgeSeconds>"));
        assert!(xml.starts_with("<?xml"));
    }

    #[test]
    fn the_origin_is_escaped() {
        let xml = CorsRule {
            origins: vec!["http://a<b>&c".into()],
        }
        .to_xml();
        assert!(xml.contains("<AllowedOrigin>http://a&lt;b&gt;&amp;c</AllowedOrigin>"));
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        // RFC 1321's test vector: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
        assert_eq!(content_md5(b"abc"), "kAFQmDzST7DWlj99KOF/cg==");
    }
}
