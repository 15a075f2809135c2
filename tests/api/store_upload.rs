//! Forms signed by the core, posted to the real embedded s3s store over loopback. A good form
//! stores the exact bytes; every tampered variant is refused and leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use awc::http::StatusCode;
use chrono::Utc;
use signpost::config::{Config, Settings};
use signpost::policy::Version;
use signpost::store::embedded::{EmbeddedOptions, EmbeddedStore, load_or_create_credentials};
use signpost::store::multipart::form_body;
use signpost::store::{S3Client, StoreTarget};
use signpost::testdata;
use signpost::upload::{Clock, Completion, Presigner, SignedUpload, UploadRequest, Uploader};

pub struct Env {
    _dir: tempfile::TempDir,
    pub store: Option<EmbeddedStore>,
    pub client: S3Client,
    settings: Settings,
    target: Arc<StoreTarget>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            s.stop();
        }
    }
}

fn env(version: Version, max_bytes: u64) -> Env {
    env_ttl(version, max_bytes, 600)
}

fn env_ttl(version: Version, max_bytes: u64, ttl_secs: u64) -> Env {
    env_full(version, max_bytes, max_bytes, ttl_secs)
}

/// Forms signed for at most `max_bytes`, to a store that takes files up to `store_max_bytes`.
fn env_full(version: Version, max_bytes: u64, store_max_bytes: u64, ttl_secs: u64) -> Env {
    let limits = signpost::store::embedded::Limits::for_max_bytes(store_max_bytes);
    env_with_limits(version, max_bytes, store_max_bytes, ttl_secs, limits)
}

/// [`env_full`] with the store's own limits (timeouts, connection and upload caps).
pub fn env_with_limits(
    version: Version,
    max_bytes: u64,
    store_max_bytes: u64,
    ttl_secs: u64,
    limits: signpost::store::embedded::Limits,
) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path());
    config.embedded_s3_bind = "127.0.0.1:0".parse().unwrap();
    config.max_bytes = max_bytes;
    config.policy_ttl_secs = ttl_secs;
    config.signature = match version {
        Version::V4 => signpost::config::SignatureArg::V4,
        Version::V2 => signpost::config::SignatureArg::V2,
    };
    let settings = Settings::from_config(config, None, None).unwrap();
    let credentials = load_or_create_credentials(dir.path()).unwrap();
    let store = EmbeddedStore::start(EmbeddedOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        bucket: settings.bucket.clone(),
        credentials: credentials.clone(),
        allowed_origins: Vec::new(),
        max_bytes: store_max_bytes,
        policy_ttl: std::time::Duration::from_secs(ttl_secs),
        limits,
    })
    .unwrap();
    let target =
        Arc::new(StoreTarget::new(&settings, Some(&store.endpoint()), &credentials).unwrap());
    Env {
        _dir: dir,
        store: Some(store),
        client: S3Client::new(target.clone()),
        settings,
        target,
    }
}

pub fn presigner(env: &Env, secret_override: Option<&str>) -> Presigner {
    let mut creds = load_or_create_credentials(env._dir.path()).unwrap();
    if let Some(s) = secret_override {
        creds.secret_access_key = signpost::secret::Secret::new(s);
    }
    Presigner {
        signer: signpost::policy::Signer::new(
            env.settings.signature,
            creds,
            env.settings.region.clone(),
        ),
        bucket: env.settings.bucket.clone(),
        form_url: env.target.form_url(),
        redirect_url: "http://127.0.0.1:1/uploaded".into(),
        prefix: env.settings.prefix.clone(),
        limits: env.settings.limits.clone(),
        ttl: env.settings.policy_ttl,
        acl: None,
    }
}

pub fn signed(p: &Presigner, name: &str, size: usize) -> SignedUpload {
    signed_at(p, name, size, Clock::System)
}

/// A PNG of `size` bytes, 4 × 3, signed as of `clock`.
fn signed_at(p: &Presigner, name: &str, size: usize, clock: Clock) -> SignedUpload {
    let req = UploadRequest {
        filename: Some(name.into()),
        content_type: Some("image/png".into()),
        size: Some(size as u64),
        width: Some(4),
        height: Some(3),
        owner: None,
        alt: None,
    };
    let valid = req.validate(&p.limits, true).unwrap();
    p.presign(&valid, Completion::Created, clock, &Uploader::anonymous())
}

pub async fn post(
    env: &Env,
    url: &str,
    fields: &[(String, String)],
    file: &[u8],
) -> (StatusCode, String) {
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (ct, body) = form_body(&refs, "photo.png", "image/png", file);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut resp = client
        .post(url)
        .insert_header(("content-type", ct))
        .send_body(body)
        .await
        .unwrap();
    let body = resp.body().await.unwrap();
    let _ = &env.client;
    (resp.status(), String::from_utf8_lossy(&body).into_owned())
}

fn assert_refused(status: StatusCode, body: &str, reason: &str) {
    assert!(
        status.is_client_error(),
        "expected a refusal ({reason}), got {status}: {body}"
    );
    assert!(
        body.contains(reason),
        "expected {reason}, got {status}: {body}"
    );
}

pub fn owned(s: &SignedUpload) -> Vec<(String, String)> {
    s.fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn assert_nothing_stored(env: &Env) {
    let listing = env
        .client
        .list(env.settings.prefix.as_str(), None, 100)
        .await
        .unwrap();
    assert!(listing.objects.is_empty(), "stored: {:?}", listing.objects);
}

async fn round_trip(version: Version) {
    let env = env(version, 64 * 1024);
    let p = presigner(&env, None);
    let png = testdata::png(4, 3);
    let s = signed(&p, "photo.png", png.len());
    let (status, body) = post(&env, &s.url, &owned(&s), &png).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stored = env
        .client
        .get(s.key(), 1 << 20)
        .await
        .unwrap()
        .expect("object stored");
    assert_eq!(stored.as_ref(), png.as_slice(), "the same bytes come back");
    let head = env.client.head(s.key()).await.unwrap().unwrap();
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    assert_eq!(
        head.metadata.get("filename").map(String::as_str),
        Some("photo.png")
    );
    assert_eq!(head.metadata.get("width").map(String::as_str), Some("4"));
}

#[actix_web::test]
async fn a_v4_form_uploads_the_exact_bytes() {
    round_trip(Version::V4).await;
}

#[actix_web::test]
async fn a_v2_form_uploads_the_exact_bytes() {
    round_trip(Version::V2).await;
}

async fn tampered(version: Version) {
    let env = env(version, 1024);
    let p = presigner(&env, None);
    let png = testdata::png(4, 3);
    let s = signed(&p, "photo.png", png.len());
    let base = owned(&s);

    let set = |name: &str, value: &str| -> Vec<(String, String)> {
        base.iter()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case(name) {
                    (k.clone(), value.to_owned())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect()
    };

    // A key outside the signed one.
    let (st, body) = post(&env, &s.url, &set("key", "uploads/evil.png"), &png).await;
    assert_refused(st, &body, "InvalidPolicyDocument");
    // Another Content-Type.
    let (st, body) = post(
        &env,
        &s.url,
        &set("Content-Type", "image/svg+xml"),
        &testdata::svg_script(),
    )
    .await;
    assert_refused(st, &body, "InvalidPolicyDocument");
    // An extra field the policy does not cover.
    let mut extra = base.clone();
    extra.insert(1, ("x-amz-meta-evil".into(), "1".into()));
    let (st, body) = post(&env, &s.url, &extra, &png).await;
    assert_refused(st, &body, "not specified in the policy");
    // A file over the limit.
    let big = vec![0u8; 2048];
    let (st, body) = post(&env, &s.url, &base, &big).await;
    assert_refused(st, &body, "EntityTooLarge");
    // A signature from another secret.
    let other = presigner(&env, Some("another-secret-entirely-0000000000000000"));
    let forged = signed(&other, "photo.png", png.len());
    let (st, body) = post(&env, &s.url, &owned(&forged), &png).await;
    assert_refused(st, &body, "SignatureDoesNotMatch");
    // An expired policy (signed 11 minutes ago with a 10-minute lifetime: inside the
    // store's 15-minute clock window, so the expiry itself is what refuses it).
    let old = signed_at(
        &p,
        "old.png",
        png.len(),
        Clock::Fixed(Utc::now() - chrono::Duration::minutes(11)),
    );
    let (st, body) = post(&env, &s.url, &owned(&old), &png).await;
    assert_refused(st, &body, "Request has expired");

    assert_nothing_stored(&env).await;
}

#[actix_web::test]
async fn tampered_v4_forms_are_refused_and_store_nothing() {
    tampered(Version::V4).await;
}

#[actix_web::test]
async fn tampered_v2_forms_are_refused_and_store_nothing() {
    tampered(Version::V2).await;
}

#[actix_web::test]
async fn objects_survive_a_restart_of_the_store() {
    let mut env = env(Version::V4, 64 * 1024);
    let p = presigner(&env, None);
    let png = testdata::png(2, 2);
    let s = signed(&p, "keep.png", png.len());
    let (status, _) = post(&env, &s.url, &owned(&s), &png).await;
    assert_eq!(status, StatusCode::CREATED);
    let addr = env.store.as_ref().unwrap().addr();
    env.store.take().unwrap().stop();
    let creds = load_or_create_credentials(env._dir.path()).unwrap();
    env.store = Some(
        EmbeddedStore::start(EmbeddedOptions {
            bind: addr,
            data_dir: env._dir.path().to_owned(),
            bucket: env.settings.bucket.clone(),
            credentials: creds,
            allowed_origins: Vec::new(),
            max_bytes: 64 * 1024,
            policy_ttl: std::time::Duration::from_secs(600),
            limits: signpost::store::embedded::Limits::for_max_bytes(64 * 1024),
        })
        .unwrap(),
    );
    let stored = env
        .client
        .get(s.key(), 1 << 20)
        .await
        .unwrap()
        .expect("still there");
    assert_eq!(stored.as_ref(), png.as_slice());
}

#[actix_web::test]
async fn the_stores_clock_window_follows_the_policy_lifetime() {
    // A 30-minute policy signed 20 minutes ago: older than s3s's default 15-minute window,
    // still valid by its own expiry. The embedded store is told the lifetime, so it accepts.
    let env = env_ttl(Version::V4, 64 * 1024, 1800);
    let p = presigner(&env, None);
    let png = testdata::png(2, 2);
    let s = signed_at(
        &p,
        "slow.png",
        png.len(),
        Clock::Fixed(Utc::now() - chrono::Duration::minutes(20)),
    );
    let (status, body) = post(&env, &s.url, &owned(&s), &png).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The signed policy alone keeps a file within the limit: the store here would take 64 MiB,
/// but a form signed for at most 1 KiB (its `content-length-range`) is refused for a 2 KiB file,
/// which is not stored, and takes a 1 KiB one. A form signed for 4 KiB gets the 2 KiB file in:
/// the refusal was the policy's, not the store's.
#[actix_web::test]
async fn the_policy_alone_refuses_a_file_over_the_limit() {
    let file = |size: usize| {
        let mut f = testdata::png(4, 3);
        f.resize(size, 0x42);
        f
    };
    for version in [Version::V4, Version::V2] {
        let env = env_full(version, 1024, 64 * 1024 * 1024, 600);
        let p = presigner(&env, None);
        let s = signed(&p, "photo.png", 1024);
        let conditions = crate::helpers::policy_of(&owned(&s))["conditions"].to_string();
        assert!(
            conditions.contains(r#"["content-length-range",1,1024]"#),
            "{version:?}: {conditions}"
        );

        let (status, body) = post(&env, &s.url, &owned(&s), &file(2048)).await;
        assert_refused(status, &body, "EntityTooLarge");
        assert_nothing_stored(&env).await;

        let exact = file(1024);
        let (status, body) = post(&env, &s.url, &owned(&s), &exact).await;
        assert_eq!(status, StatusCode::CREATED, "{version:?}: {body}");
        let stored = env.client.get(s.key(), 1 << 20).await.unwrap();
        assert_eq!(stored.as_deref(), Some(exact.as_slice()), "{version:?}");

        let mut wider = presigner(&env, None);
        wider.limits.max_bytes = 4096;
        let w = signed(&wider, "wider.png", 2048);
        let (status, body) = post(&env, &w.url, &owned(&w), &file(2048)).await;
        assert_eq!(status, StatusCode::CREATED, "{version:?}: {body}");
    }
}
