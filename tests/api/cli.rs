//! The CORS tools: the embedded store's preflights, `signpost check` against a running
//! embedded store, a stopped one, wrong credentials and fake stores, and `signpost cors`
//! against a fake external endpoint that verifies the PutBucketCors request.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use crate::helpers::*;
use actix_web::dev::ServerHandle;
use actix_web::{HttpRequest, HttpResponse, web};
use awc::http::StatusCode;
use base64::Engine;
use chrono::Utc;
use md5::{Digest as _, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;
use signpost::cli::check::{Outcome, Step, all_passed, check, names};
use signpost::cli::cors::{CorsOutcome, cors};
use signpost::config::{Config, Settings};
use signpost::policy::sigv4::SigningKey;

const ACCESS_KEY: &str = "AKIDFAKESTORE0001";
const SECRET_KEY: &str = "fake-store-secret-key-0123456789";
const BUCKET: &str = "fake-bucket";
const SITE: &str = "https://uploads.example.com";

fn step<'a>(steps: &'a [Step], name: &str) -> &'a Step {
    steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {steps:#?}"))
}

fn assert_ok(steps: &[Step], name: &str) {
    let s = step(steps, name);
    assert!(s.passed(), "{name} should pass: {s:#?}");
}

/// (problem, fix) of a failed step.
fn failed<'a>(steps: &'a [Step], name: &str) -> (&'a str, &'a str) {
    let s = step(steps, name);
    let f = s
        .failure()
        .unwrap_or_else(|| panic!("{name} should fail: {s:#?}"));
    (&f.problem, &f.fix)
}

fn assert_skipped(steps: &[Step], name: &str) {
    let s = step(steps, name);
    assert!(
        matches!(s.outcome, Outcome::Skipped { .. }),
        "{name} should be skipped: {s:#?}"
    );
}

/// A loopback port with nothing listening on it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Settings that talk to the running app's embedded store, as a second `signpost` process
/// with the same flags would.
fn settings_for(app: &TestApp, f: impl FnOnce(&mut Config)) -> Settings {
    let mut c = test_config(app.dir.path());
    c.bind = app.addr;
    c.embedded_s3_bind = app.s3_addr.unwrap();
    f(&mut c);
    Settings::from_config(c, None, None).unwrap()
}

fn external_settings(endpoint: SocketAddr, dir: &std::path::Path) -> Settings {
    let mut c = test_config(dir);
    c.s3_endpoint = Some(format!("http://{endpoint}"));
    c.s3_bucket = Some(BUCKET.into());
    c.access_key_id = Some(ACCESS_KEY.into());
    c.secret_access_key = Some(SECRET_KEY.into());
    c.public_url = Some(SITE.into());
    c.bind = "127.0.0.1:8080".parse().unwrap();
    Settings::from_config(c, None, None).unwrap()
}

// ---------------------------------------------------------------------------------------
// A fake S3 store: records every request and answers as configured.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct Behaviour {
    /// Status of a POST (the upload).
    post_status: u16,
    /// A fixed `Date` header (else actix's own).
    date: Option<String>,
    /// Whether preflights from any origin are allowed.
    cors: bool,
    /// Status of `PUT ?cors`.
    put_cors_status: u16,
    /// The bucket's region, when it is not the one signed for (AWS's 301).
    bucket_region: Option<&'static str>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            post_status: 501,
            date: None,
            cors: true,
            put_cors_status: 200,
            bucket_region: None,
        }
    }
}

struct FakeState {
    behaviour: Behaviour,
    seen: Mutex<Vec<Seen>>,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
    handle: ServerHandle,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn s3_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap())
        .content_type("application/xml")
        .body(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ))
}

async fn fake_handler(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<FakeState>>,
) -> HttpResponse {
    state.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    });
    let b = &state.behaviour;
    let query = req.query_string();
    let mut resp = match req.method().as_str() {
        "OPTIONS" => {
            let origin = req.headers().get("origin").cloned();
            match origin {
                Some(o) if b.cors => HttpResponse::Ok()
                    .insert_header(("access-control-allow-origin", o))
                    .insert_header((
                        "access-control-allow-methods",
                        "POST, PUT, DELETE, GET, HEAD",
                    ))
                    .finish(),
                _ => s3_error(403, "AccessForbidden", "CORSResponse: CORS is not enabled"),
            }
        }
        "GET" if query.contains("list-type=2") && b.bucket_region.is_some() => {
            let mut r = s3_error(
                301,
                "PermanentRedirect",
                "The bucket you are attempting to access must be addressed using the specified endpoint.",
            );
            r.headers_mut().insert(
                awc::http::header::HeaderName::from_static("x-amz-bucket-region"),
                awc::http::header::HeaderValue::from_static(b.bucket_region.unwrap_or_default()),
            );
            r
        }
        "GET" if query.contains("list-type=2") => HttpResponse::Ok()
            .content_type("application/xml")
            .body(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><Name>{BUCKET}</Name><KeyCount>0</KeyCount><MaxKeys>1</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>"
            )),
        "GET" if query.split('&').any(|p| p == "lifecycle" || p == "lifecycle=") => s3_error(
            404,
            "NoSuchLifecycleConfiguration",
            "The lifecycle configuration does not exist",
        ),
        "GET" => s3_error(403, "AccessDenied", "Access Denied"),
        "POST" => s3_error(
            b.post_status,
            "NotImplemented",
            "A header or query you provided requested a function that is not implemented.",
        ),
        "PUT" if query.split('&').any(|p| p == "cors" || p == "cors=") => {
            if b.put_cors_status == 200 {
                HttpResponse::Ok().finish()
            } else {
                s3_error(
                    b.put_cors_status,
                    "NotImplemented",
                    "PutBucketCors is not implemented",
                )
            }
        }
        _ => s3_error(400, "InvalidRequest", "unexpected request"),
    };
    if let Some(date) = &b.date {
        resp.headers_mut().insert(
            awc::http::header::DATE,
            awc::http::header::HeaderValue::from_str(date).unwrap(),
        );
    }
    resp
}

async fn spawn_fake(behaviour: Behaviour) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(FakeState {
        behaviour,
        seen: Mutex::new(Vec::new()),
    });
    let data = web::Data::new(state.clone());
    let handle = crate::helpers::serve(listener, move |cfg| {
        cfg.app_data(data.clone())
            .default_service(web::to(fake_handler));
    });
    Fake {
        addr,
        state,
        handle,
    }
}

// ---------------------------------------------------------------------------------------
// The embedded store's CORS.

#[actix_web::test]
async fn the_embedded_store_allows_uppy_from_cors_origins_to_put_and_delete() {
    let host = "https://app.example.com";
    let app = spawn_with(|c| c.cors_origins = vec![host.into()]).await;
    let bucket_url = format!("http://{}/signpost/uploads/x/a.png", app.s3_addr.unwrap());
    for (origin, method) in [(host, "PUT"), (host, "DELETE"), (app.base.as_str(), "PUT")] {
        let r = app
            .client
            .request(awc::http::Method::OPTIONS, bucket_url.as_str())
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", method))
            .insert_header((
                "access-control-request-headers",
                "content-type,x-amz-meta-owner",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{origin} {method}");
        let h = |name: &str| r.headers().get(name).unwrap().to_str().unwrap();
        assert_eq!(h("access-control-allow-origin"), origin);
        assert!(h("access-control-allow-methods").contains(method));
        assert!(h("access-control-allow-headers").contains("x-amz-meta-owner"));
        assert!(h("access-control-expose-headers").contains("ETag"));
    }
    let r = app
        .client
        .request(awc::http::Method::OPTIONS, bucket_url.as_str())
        .insert_header(("origin", "https://other.example.com"))
        .insert_header(("access-control-request-method", "PUT"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_embedded_store_allows_a_preflight_from_the_site_only() {
    let app = spawn_app().await;
    let bucket_url = format!("http://{}/signpost", app.s3_addr.unwrap());
    let preflight = |origin: &str| {
        app.client
            .request(awc::http::Method::OPTIONS, bucket_url.as_str())
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .insert_header(("access-control-request-headers", "content-type"))
            .send()
    };

    let allowed = preflight(&app.base).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let h = |name: &str| {
        allowed
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        h("access-control-allow-origin").as_deref(),
        Some(app.base.as_str())
    );
    let methods = h("access-control-allow-methods").unwrap();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    assert!(h("access-control-expose-headers").unwrap().contains("ETag"));

    let refused = preflight("http://evil.example").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        refused.headers()
    );
    // The site's own origin on another port is another origin.
    let other_port = format!("http://127.0.0.1:{}", app.addr.port().wrapping_add(1));
    let refused = preflight(&other_port).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.handle.stop(false).await;
}

// ---------------------------------------------------------------------------------------
// `signpost check`

#[actix_web::test]
async fn check_passes_every_step_against_a_running_embedded_store() {
    let app = spawn_app().await;
    let settings = settings_for(&app, |_| {});
    let steps = check(&settings).await;
    assert!(all_passed(&steps), "{steps:#?}");
    assert_eq!(
        steps.iter().map(|s| s.name).collect::<Vec<_>>(),
        [
            names::ENDPOINT,
            names::CREDENTIALS,
            names::CLOCK,
            names::UPLOAD,
            names::PUT,
            names::CORS,
            names::MIXED_CONTENT,
            names::LIFECYCLE
        ]
    );
    let Outcome::Ok(upload) = &step(&steps, names::UPLOAD).outcome else {
        unreachable!()
    };
    assert!(
        upload.contains("stored") && upload.contains("deleted"),
        "{upload}"
    );

    // The test upload left nothing behind.
    let backend =
        signpost::store::Backend::connect(&settings, &url::Url::parse(&app.base).unwrap()).unwrap();
    let client = signpost::store::S3Client::new(backend.target.clone());
    let left = client
        .list("uploads/.signpost-check/", None, 10)
        .await
        .unwrap();
    assert!(left.objects.is_empty(), "{left:?}");

    // The printed report: no secret in it.
    let report = signpost::cli::check::render(&settings, &steps);
    let Outcome::Ok(put) = &step(&steps, names::PUT).outcome else {
        unreachable!()
    };
    assert!(put.contains("PUT was stored"), "{put}");
    assert!(report.contains("all 8 checks passed"), "{report}");
    for secret in app.secret_forms() {
        assert!(!report.contains(&secret));
    }
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn check_passes_with_sigv2_forms_too() {
    let app = spawn_with(|c| c.signature = signpost::config::SignatureArg::V2).await;
    let settings = settings_for(&app, |c| c.signature = signpost::config::SignatureArg::V2);
    let steps = check(&settings).await;
    assert!(all_passed(&steps), "{steps:#?}");
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn check_says_how_to_start_a_stopped_store() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut c = test_config(dir.path());
    c.bind = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    c.embedded_s3_bind = format!("127.0.0.1:{port}").parse().unwrap();
    let settings = Settings::from_config(c, None, None).unwrap();

    let steps = check(&settings).await;
    assert!(!all_passed(&steps));
    let (problem, fix) = failed(&steps, names::ENDPOINT);
    assert!(
        problem.contains(&format!("cannot reach http://127.0.0.1:{port}")),
        "{problem}"
    );
    assert!(fix.contains("is the store running?"), "{fix}");
    assert!(fix.contains("`signpost serve`"), "{fix}");
    for name in [names::CREDENTIALS, names::CLOCK, names::UPLOAD, names::CORS] {
        assert_skipped(&steps, name);
    }
    // Checking does not create the embedded store's credentials.
    assert!(!dir.path().join("credentials.json").exists());
    let report = signpost::cli::check::render(&settings, &steps);
    assert!(
        report.contains("FAIL") && report.contains("skip"),
        "{report}"
    );
}

#[actix_web::test]
async fn check_names_the_wrong_access_key_id() {
    let app = spawn_app().await;
    let settings = settings_for(&app, |c| {
        c.access_key_id = Some("WRONGKEYID0000000000".into());
        c.secret_access_key = Some("wrong-secret-0000000000000000000000000000".into());
    });
    let steps = check(&settings).await;
    assert!(!all_passed(&steps));
    assert_ok(&steps, names::ENDPOINT);
    let (problem, fix) = failed(&steps, names::CREDENTIALS);
    assert!(
        problem.contains("does not know the access key id WRONGKEYID0000000000"),
        "{problem}"
    );
    assert!(fix.contains("AWS_ACCESS_KEY_ID"), "{fix}");
    assert!(fix.contains("--data-dir"), "{fix}");
    assert!(!problem.contains("wrong-secret") && !fix.contains("wrong-secret"));
    assert_skipped(&steps, names::UPLOAD);
    // Independent of the credentials:
    assert_ok(&steps, names::CLOCK);
    assert_ok(&steps, names::CORS);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn check_names_the_wrong_secret() {
    let app = spawn_app().await;
    let raw = std::fs::read(app.dir.path().join("credentials.json")).unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let key_id = stored["access_key_id"].as_str().unwrap().to_owned();
    let settings = settings_for(&app, |c| {
        c.access_key_id = Some(key_id.clone());
        c.secret_access_key = Some("not-the-secret-000000000000000000000000000".into());
    });
    let steps = check(&settings).await;
    let (problem, fix) = failed(&steps, names::CREDENTIALS);
    assert!(problem.contains("refused the signature"), "{problem}");
    assert!(problem.contains(&key_id), "{problem}");
    assert!(fix.contains("AWS_SECRET_ACCESS_KEY"), "{fix}");
    assert_skipped(&steps, names::UPLOAD);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn check_says_the_embedded_store_never_ran_with_this_data_dir() {
    let app = spawn_app().await;
    let other = tempfile::tempdir().unwrap();
    let mut c = test_config(other.path());
    c.bind = app.addr;
    c.embedded_s3_bind = app.s3_addr.unwrap();
    let settings = Settings::from_config(c, None, None).unwrap();
    let steps = check(&settings).await;
    assert_ok(&steps, names::ENDPOINT);
    let (problem, fix) = failed(&steps, names::CREDENTIALS);
    assert!(problem.contains("credentials.json"), "{problem}");
    assert!(fix.contains("--data-dir"), "{fix}");
    assert!(!other.path().join("credentials.json").exists());
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn check_says_by_name_when_the_store_has_no_post_object() {
    let fake = spawn_fake(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = external_settings(fake.addr, dir.path());
    let steps = check(&settings).await;
    assert!(!all_passed(&steps));
    assert_ok(&steps, names::ENDPOINT);
    assert_ok(&steps, names::CREDENTIALS);
    assert_ok(&steps, names::CLOCK);
    assert_ok(&steps, names::CORS);
    // No lifecycle rule: a warning, with the rule to add.
    let Outcome::Warn(lifecycle) = &step(&steps, names::LIFECYCLE).outcome else {
        panic!("{steps:#?}")
    };
    assert!(
        lifecycle.problem.contains("no lifecycle rules")
            && lifecycle.fix.contains("AbortIncompleteMultipartUpload"),
        "{lifecycle:?}"
    );
    let (problem, fix) = failed(&steps, names::UPLOAD);
    assert!(
        problem.contains("does not implement POST Object (browser form uploads)"),
        "{problem}"
    );
    assert!(
        problem.contains("Cloudflare R2") && problem.contains("Backblaze B2"),
        "{problem}"
    );
    assert!(fix.contains("AWS S3") && fix.contains("MinIO"), "{fix}");

    // What the fake saw: a signed listing and a real form post, file last.
    let seen = fake.seen();
    let list = seen
        .iter()
        .find(|s| s.method == "GET" && s.query.contains("list-type=2"))
        .expect("a ListObjectsV2");
    assert!(list.query.contains("max-keys=1"), "{}", list.query);
    assert!(list.query.contains("X-Amz-Signature="), "{}", list.query);
    let post = seen.iter().find(|s| s.method == "POST").expect("a POST");
    assert_eq!(post.path, format!("/{BUCKET}"));
    let body = String::from_utf8_lossy(&post.body);
    assert!(body.contains("uploads/.signpost-check/"), "{body}");
    assert!(body.contains("name=\"x-amz-signature\""), "{body}");
    assert!(
        body.contains("name=\"success_action_status\"\r\n\r\n201"),
        "{body}"
    );
    // The file is the last part.
    let file_at = body
        .find("Content-Disposition: form-data; name=\"file\"")
        .unwrap();
    assert_eq!(body[file_at..].matches("Content-Disposition").count(), 1);
    assert!(!body.contains(SECRET_KEY));
    let preflight = seen
        .iter()
        .find(|s| s.method == "OPTIONS")
        .expect("a preflight");
    assert_eq!(preflight.header("origin"), Some(SITE));
    assert_eq!(
        preflight.header("access-control-request-method"),
        Some("POST")
    );
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn check_reports_a_skewed_clock_with_the_offset() {
    let an_hour_ago = (Utc::now() - chrono::Duration::hours(1))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let fake = spawn_fake(Behaviour {
        date: Some(an_hour_ago),
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let steps = check(&external_settings(fake.addr, dir.path())).await;
    let (problem, fix) = failed(&steps, names::CLOCK);
    assert!(
        problem.contains("1 h") && problem.contains("ahead"),
        "{problem}"
    );
    assert!(fix.contains("sync the clock (NTP)"), "{fix}");
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn check_says_to_run_signpost_cors_when_the_bucket_refuses_the_preflight() {
    let fake = spawn_fake(Behaviour {
        cors: false,
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let steps = check(&external_settings(fake.addr, dir.path())).await;
    let (problem, fix) = failed(&steps, names::CORS);
    assert!(
        problem.contains(&format!(
            "the bucket's CORS does not allow POST from {SITE}"
        )),
        "{problem}"
    );
    assert!(fix.contains("run `signpost cors`"), "{fix}");
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn check_names_the_bucket_region_when_it_is_another() {
    let fake = spawn_fake(Behaviour {
        bucket_region: Some("eu-west-3"),
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let steps = check(&external_settings(fake.addr, dir.path())).await;
    let (problem, fix) = failed(&steps, names::CREDENTIALS);
    assert!(
        problem.contains("is in region eu-west-3, not us-east-1"),
        "{problem}"
    );
    assert!(fix.contains("--s3-region"), "{fix}");
    assert_skipped(&steps, names::UPLOAD);
    fake.handle.stop(false).await;
}

// ---------------------------------------------------------------------------------------
// `signpost cors`

/// AWS's URI encoding: everything but unreserved characters.
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Verify a SigV4 presigned request the way a store does, independently of rusty-s3.
fn verify_presigned(seen: &Seen, secret: &str) -> Result<(), String> {
    let mut params: Vec<(String, String)> = seen
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (dec(k), dec(v))
        })
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or(format!("no {name} in the query"))
    };
    let algorithm = get("X-Amz-Algorithm")?;
    let credential = get("X-Amz-Credential")?;
    let date = get("X-Amz-Date")?;
    let signed_headers = get("X-Amz-SignedHeaders")?;
    let signature = get("X-Amz-Signature")?;
    get("X-Amz-Expires")?;
    if algorithm != "AWS4-HMAC-SHA256" {
        return Err(format!("algorithm {algorithm}"));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, day, region, service, terminator] = scope[..] else {
        return Err(format!("credential {credential}"));
    };
    if key_id != ACCESS_KEY || service != "s3" || terminator != "aws4_request" {
        return Err(format!("credential {credential}"));
    }
    if !signed_headers.split(';').any(|h| h == "content-md5") {
        return Err(format!("content-md5 is not signed: {signed_headers}"));
    }
    params.retain(|(k, _)| k != "X-Amz-Signature");
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, AWS_ENCODE),
                utf8_percent_encode(v, AWS_ENCODE)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in signed_headers.split(';') {
        let value = seen
            .header(name)
            .ok_or(format!("signed header {name} was not sent"))?;
        canonical_headers.push_str(&format!("{name}:{}\n", value.trim()));
    }
    let canonical_request = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        seen.method, seen.path
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{day}/{region}/s3/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let expected = SigningKey::derive(secret, day, region, "s3").sign(string_to_sign.as_bytes());
    if expected.as_str() != signature {
        return Err(format!(
            "signature mismatch for canonical request:\n{canonical_request}"
        ));
    }
    Ok(())
}

#[actix_web::test]
async fn cors_applies_a_signed_put_bucket_cors_for_the_site_origin() {
    let fake = spawn_fake(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = external_settings(fake.addr, dir.path());
    let outcome = cors(&settings, false).await.unwrap();
    let CorsOutcome::Applied(plan) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(plan.rule.origins, [SITE]);

    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let put = &seen[0];
    assert_eq!(put.method, "PUT");
    assert!(
        put.path == format!("/{BUCKET}/") || put.path == format!("/{BUCKET}"),
        "{}",
        put.path
    );
    assert!(
        put.query.split('&').any(|p| p == "cors" || p == "cors="),
        "{}",
        put.query
    );
    for param in ["X-Amz-Algorithm=", "X-Amz-Credential=", "X-Amz-Signature="] {
        assert!(put.query.contains(param), "{param} missing: {}", put.query);
    }
    assert!(put.header("authorization").is_none());
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&put.body));
    assert_eq!(put.header("content-md5"), Some(md5.as_str()));
    let xml = String::from_utf8(put.body.to_vec()).unwrap();
    assert!(
        xml.contains(&format!("<AllowedOrigin>{SITE}</AllowedOrigin>")),
        "{xml}"
    );
    assert!(xml.contains("<AllowedMethod>POST</AllowedMethod>"), "{xml}");
    assert!(xml.contains("<ExposeHeader>ETag</ExposeHeader>"), "{xml}");
    assert!(xml.contains("<MaxAgeSeconds>3000</MaxAgeSeconds>"), "{xml}");
    assert_eq!(xml, plan.xml);
    verify_presigned(put, SECRET_KEY).unwrap();
    // A tampered body or another secret would not pass the same verification.
    assert!(verify_presigned(put, "another-secret").is_err());
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn cors_explains_a_store_without_put_bucket_cors() {
    let fake = spawn_fake(Behaviour {
        put_cors_status: 501,
        ..Behaviour::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = cors(&external_settings(fake.addr, dir.path()), false)
        .await
        .unwrap_err();
    assert!(
        err.failure
            .problem
            .contains("does not support PutBucketCors"),
        "{err:?}"
    );
    assert!(err.failure.fix.contains("by hand"), "{err:?}");
    assert!(err.plan.is_some());
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn cors_dry_run_sends_nothing() {
    let fake = spawn_fake(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let outcome = cors(&external_settings(fake.addr, dir.path()), true)
        .await
        .unwrap();
    let CorsOutcome::DryRun(plan) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(plan.xml.contains(SITE));
    assert_eq!(plan.bucket, BUCKET);

    // The binary prints the rule and the bucket, and sends nothing either.
    let endpoint = format!("http://{}", fake.addr);
    let data_dir = dir.path().to_owned();
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
            .env_clear()
            .env("AWS_ENDPOINT_URL_S3", endpoint)
            .env("SIGNPOST_S3_BUCKET", BUCKET)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("SIGNPOST_PUBLIC_URL", SITE)
            .env("SIGNPOST_DATA_DIR", data_dir)
            .args(["cors", "--dry-run"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("<AllowedOrigin>{SITE}</AllowedOrigin>")),
        "{stdout}"
    );
    assert!(
        stdout.contains("<AllowedMethod>POST</AllowedMethod>"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("bucket {BUCKET}")), "{stdout}");
    assert!(stdout.contains("nothing sent"), "{stdout}");
    assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
    assert!(fake.seen().is_empty(), "{:#?}", fake.seen());
    fake.handle.stop(false).await;
}

#[actix_web::test]
async fn cors_on_the_embedded_store_needs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = test_config(dir.path());
    c.public_url = Some(SITE.into());
    let settings = Settings::from_config(c, None, None).unwrap();
    assert_eq!(
        cors(&settings, false).await.unwrap(),
        CorsOutcome::Embedded {
            origin: SITE.into()
        }
    );
}

#[test]
fn check_names_an_https_site_with_an_http_store_mixed_content() {
    use signpost::cli::check::mixed_content;
    let f = mixed_content(
        "https://uploads.example.com",
        "http://127.0.0.1:9000/signpost",
        true,
    )
    .unwrap_err();
    assert!(f.problem.contains("mixed content"), "{}", f.problem);
    assert!(f.fix.contains("--embedded-s3-public-url"), "{}", f.fix);
    assert!(mixed_content("https://a.example", "https://s3.a.example/b", true).is_ok());
    assert!(mixed_content("http://127.0.0.1:8080", "http://127.0.0.1:9000/b", true).is_ok());
}

// ---------------------------------------------------------------------------------------
// The binary's own checks of its flags, environment and arguments.

/// `signpost token list` on an empty data dir: a subcommand that needs no store, so only the
/// flags' validation decides how it ends.
fn token_list(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut all = vec!["--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["token", "list"]);
    let (status, out) = crate::process::run_to_end(&all, env);
    (status.code(), out)
}

#[test]
fn a_multipart_ttl_longer_than_seven_days_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for ttl in ["100000000d", "8d"] {
        let (code, out) = token_list(dir.path(), &["--multipart-ttl", ttl], &[]);
        assert_eq!(code, Some(2), "--multipart-ttl {ttl}: {out}");
        assert!(
            out.contains("--multipart-ttl") && out.contains("7 days"),
            "{out}"
        );
        assert!(!out.contains("panicked"), "{out}");
    }
    let (code, out) = token_list(dir.path(), &["--multipart-ttl", "7d"], &[]);
    assert_eq!(code, Some(0), "{out}");
}

#[actix_web::test]
async fn a_link_lifetime_too_long_is_misuse_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = crate::process::Server::start(dir.path(), &[], &[]);
    server.ready().await;
    let (web, s3) = (server.web.to_string(), server.s3.to_string());
    let run = |args: &[&str]| {
        let mut all = vec![
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--bind",
            &web,
            "--embedded-s3-bind",
            &s3,
            "link",
        ];
        all.extend_from_slice(args);
        let (status, out) = crate::process::run_to_end(&all, &[]);
        (status.code(), out)
    };
    for expires in ["100000000d", "400d"] {
        let (code, out) = run(&["--owner", "bob", "--expires", expires]);
        assert_eq!(code, Some(2), "--expires {expires}: {out}");
        assert!(out.contains("--expires"), "{out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    // Nothing was made; a sensible lifetime still works.
    let (code, out) = run(&["list"]);
    assert_eq!((code, out.trim()), (Some(0), ""), "{out}");
    let (code, out) = run(&["--owner", "bob", "--expires", "30d"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("/l/"), "{out}");
}

#[test]
fn boolean_environment_variables_take_the_usual_spellings() {
    let dir = tempfile::tempdir().unwrap();
    for (yes, no) in [("1", "0"), ("yes", "no"), ("on", "off"), ("true", "false")] {
        let env = [
            ("SIGNPOST_ALLOW_ANONYMOUS", yes),
            ("SIGNPOST_TRUST_PROXY", no),
        ];
        let (code, out) = token_list(dir.path(), &[], &env);
        assert_eq!(code, Some(0), "{env:?}: {out}");
        // A true value is read as true: the retired flag says what replaced it.
        let (code, out) = token_list(dir.path(), &[], &[("SIGNPOST_TRUST_PROXY", yes)]);
        assert_eq!(code, Some(2), "{yes}: {out}");
        assert!(out.contains("--trusted-proxies"), "{yes}: {out}");
    }
    // The flag forms still work, and nonsense is still refused.
    let (code, out) = token_list(dir.path(), &["--allow-anonymous"], &[]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = token_list(dir.path(), &[], &[("SIGNPOST_ALLOW_ANONYMOUS", "maybe")]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn help_shows_no_secret_from_the_environment() {
    let secrets = [
        (
            "SIGNPOST_NOTIFY_URL",
            "https://hooks.example/secret-token-123",
        ),
        ("SIGNPOST_NOTIFY_SECRET", "notify-secret-value-456"),
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-value-789"),
        ("AWS_SESSION_TOKEN", "aws-session-token-012"),
        ("AWS_ACCESS_KEY_ID", "AKIAHIDDEN0345"),
        ("SIGNPOST_LINK_KEY", "link-key-value-678"),
    ];
    let (status, out) = crate::process::run_to_end(&["--help"], &secrets);
    assert!(status.success(), "{out}");
    for (name, value) in secrets {
        assert!(out.contains(name), "{name} is named: {out}");
        assert!(!out.contains(value), "{name}'s value is shown: {out}");
    }
    assert!(!out.contains("secret-token-123"), "{out}");
}
