//! Hostile input: generated requests (proptest) through the actix test service for every
//! handler, with the embedded store running so that valid-looking requests reach a real
//! store. Never a 5xx, never a panic, always a clear message with a stable code (`fuzzing`);
//! no input widens the signed policy (`policy`); the request limits, the rate limit and the
//! 405s, through a real server (`limits`).
//!
//! This module holds what they share: the environment (settings, a running embedded store,
//! one real upload), a generated request and how it is sent, and the rules every answer
//! follows. `HOSTILE_CASES` (default 3000) sets the generated requests per handler; each
//! test prints how many it sent (`cargo test --test api hostile:: -- --nocapture`).

mod fuzzing;
mod limits;
mod policy;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::rt::SystemRunner;
use actix_web::web;
use base64::Engine;
use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestCaseError, TestRunner};
use signpost::config::{Config, Settings};
use signpost::store::Backend;
use signpost::store::multipart::form_body;
use signpost::testdata;
use signpost::upload::{Clock, Completion, UploadRequest, Uploader};
use signpost::web::State;
use signpost::web::startup::state;
use url::Url;

use crate::helpers::error_code;

const PUBLIC: &str = "http://127.0.0.1:8080";

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

/// How long one generated request may go unanswered before its case fails.
const CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The runner of `cases()` generated requests. Every run ends: a case has [`CASE_TIMEOUT`]
/// (see [`answer_in_time`]), and shrinking a failure stops after a number of steps or a time,
/// whichever comes first, reporting the smallest case found by then.
///
/// Not proptest's own `timeout`: it runs the cases in a child process that exits as soon as
/// they pass, which would skip each test's report and checks after the run, and the clean-up
/// of its data dir and store.
fn runner() -> TestRunner {
    TestRunner::new(PtConfig {
        cases: cases(),
        max_shrink_iters: 2048,
        max_shrink_time: 60_000,
        // A failure is reported with its smallest case; nothing is written to the source tree.
        failure_persistence: None,
        // ChaCha is ten times slower in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..PtConfig::default()
    })
}

/// Ends the test binary when a case runs past twice [`CASE_TIMEOUT`]: a handler that never
/// yields (a loop) cannot be interrupted in-process, and would otherwise hang the whole run.
/// It names the test and the request first.
struct Watchdog {
    watched: Arc<Mutex<Option<(Instant, Req)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(what: &str) -> Self {
        let watched: Arc<Mutex<Option<(Instant, Req)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s, what) = (watched.clone(), stop.clone(), what.to_owned());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                if let Some((since, req)) = &*w.lock().unwrap()
                    && since.elapsed() > 2 * CASE_TIMEOUT
                {
                    eprintln!(
                        "hostile: {what}: no answer after {:?}, and the handler never yielded: \
                         ending the test binary. The request: {req:?}",
                        since.elapsed()
                    );
                    std::process::exit(101);
                }
            }
        });
        Self {
            watched,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to `req` (the future of `send!`), or a failed case when it takes longer than
/// [`CASE_TIMEOUT`]; `watchdog` watches the wait.
fn answer_in_time(
    sys: &SystemRunner,
    watchdog: &Watchdog,
    req: &Req,
    answer: impl Future<Output = Answer>,
) -> Result<Answer, TestCaseError> {
    *watchdog.watched.lock().unwrap() = Some((Instant::now(), req.clone()));
    // The timer is made inside the runtime it runs on.
    let answer = sys.block_on(async { actix_web::rt::time::timeout(CASE_TIMEOUT, answer).await });
    *watchdog.watched.lock().unwrap() = None;
    answer
        .map_err(|_| TestCaseError::fail(format!("no answer within {CASE_TIMEOUT:?} for {req:?}")))
}

// ---------------------------------------------------------------------------------------
// The environment: settings, a running embedded store, the state, one real upload.

struct Env {
    _dir: tempfile::TempDir,
    _backend: Backend,
    state: web::Data<State>,
    secret_forms: Vec<String>,
    access_key_id: String,
    /// A real object in the store, for valid-looking confirmations.
    key: String,
    etag: String,
}

fn env(f: impl FnOnce(&mut Config)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::embedded(dir.path());
    c.embedded_s3_bind = "127.0.0.1:0".parse().unwrap();
    c.s3_timeout_ms = 2000;
    f(&mut c);
    let settings = Settings::from_config(c, None, None).expect("valid settings");
    let public = Url::parse(PUBLIC).unwrap();
    let backend = Backend::start(&settings, &public).expect("the embedded store starts");
    let st = state(settings, public, &backend, Clock::System).expect("state");
    let secret = backend.credentials.secret_access_key.expose().to_owned();
    let b64 = base64::engine::general_purpose::STANDARD;
    let secret_forms = vec![b64.encode(&secret), hex::encode(&secret), secret];
    let access_key_id = backend.credentials.access_key_id.clone();
    let state = web::Data::new(st);
    let (key, etag) = upload_one(&state);
    Env {
        _dir: dir,
        _backend: backend,
        state,
        secret_forms,
        access_key_id,
        key,
        etag,
    }
}

/// Store one real PNG with a form signed by the state's presigner.
fn upload_one(state: &State) -> (String, String) {
    let png = testdata::png(4, 3);
    let request = UploadRequest {
        filename: Some("hostile.png".into()),
        content_type: Some("image/png".into()),
        size: Some(png.len() as u64),
        width: Some(4),
        height: Some(3),
        owner: None,
        alt: None,
    };
    let valid = request.validate(&state.presigner.limits, true).unwrap();
    let signed = state.presigner.presign(
        &valid,
        Completion::Created,
        Clock::System,
        &Uploader::anonymous(),
    );
    let fields: Vec<(&str, &str)> = signed
        .fields
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    let (ct, body) = form_body(&fields, "hostile.png", "image/png", &png);
    let sys = actix_web::rt::System::new();
    let text = sys.block_on(async {
        let client = crate::helpers::client();
        let mut r = client
            .post(&signed.url)
            .insert_header(("content-type", ct))
            .send_body(body)
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        String::from_utf8_lossy(&r.body().await.unwrap()).into_owned()
    });
    (signed.key().to_owned(), crate::helpers::etag_of(&text))
}

// ---------------------------------------------------------------------------------------
// A generated request.

#[derive(Clone)]
struct Req {
    method: Method,
    /// Already a valid path (percent-encoded where needed).
    path: String,
    /// The raw query, as bytes; made into a URI the way a client would have to.
    query: Option<Vec<u8>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Vec<u8>,
}

fn shorten(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &s[..end], b.len())
    } else {
        format!("{s:?}")
    }
}

impl fmt::Debug for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query.as_deref().map(shorten))
            .field("headers", &self.headers)
            .field("body", &shorten(&self.body))
            .finish()
    }
}

/// Path and query as a URI. Bytes the URI grammar refuses are percent-encoded, as any
/// client must; everything else (raw UTF-8, `%zz`, `%ff`, `;`, …) goes through as is.
fn make_uri(path: &str, query: Option<&[u8]>) -> Uri {
    let mut raw = path.as_bytes().to_vec();
    if let Some(q) = query {
        raw.push(b'?');
        raw.extend_from_slice(q);
    }
    if let Ok(u) = Uri::from_maybe_shared(Bytes::from(raw)) {
        return u;
    }
    let mut s = path.to_owned();
    if let Some(q) = query {
        s.push('?');
        for &b in q {
            if (0x21..=0x7e).contains(&b) && b != b'#' && b != b'"' && b != b'<' && b != b'>' {
                s.push(b as char);
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Uri::try_from(s.as_str()).expect("an encoded URI parses")
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// The body as a client reads it: gzip (what the server compresses with) undone.
fn decoded(headers: &HeaderMap, body: Bytes) -> Bytes {
    use std::io::Read;
    match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .expect("a valid gzip body");
            Bytes::from(out)
        }
        _ => body,
    }
}

/// Send a generated request through the test service (a macro: the service's request
/// type is actix-http's, which this crate does not name).
macro_rules! send {
    ($svc:expr, $req:expr) => {{
        let req: &$crate::hostile::Req = $req;
        let svc = $svc;
        let mut tr = ::actix_web::test::TestRequest::default()
            .method(req.method.clone())
            .uri(&$crate::hostile::make_uri(&req.path, req.query.as_deref()).to_string())
            .peer_addr("10.9.8.7:4321".parse().unwrap());
        for (k, v) in &req.headers {
            tr = tr.append_header((k.clone(), v.clone()));
        }
        if !req.body.is_empty() {
            tr = tr.set_payload(req.body.clone());
        }
        async move {
            match ::actix_web::test::try_call_service(svc, tr.to_request()).await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = $crate::hostile::decoded(
                        &headers,
                        ::actix_web::test::read_body(resp).await,
                    );
                    $crate::hostile::Answer {
                        status,
                        headers,
                        body,
                    }
                }
                // What the HTTP dispatcher would do with an error out of the service: no
                // X-Request-Id can be on it, which the checks catch.
                Err(e) => {
                    let resp = e.error_response();
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = ::actix_web::body::to_bytes(resp.into_body())
                        .await
                        .unwrap_or_default();
                    $crate::hostile::Answer {
                        status,
                        headers,
                        body,
                    }
                }
            }
        }
    }};
}
pub(crate) use send;

/// The rules every answer follows, whatever the input. Returns the stable code of a 4xx
/// (empty for any other answer).
fn check(env: &Env, req: &Req, a: &Answer) -> Result<String, TestCaseError> {
    let text = String::from_utf8_lossy(&a.body);
    prop_assert!(
        !a.status.is_server_error(),
        "{} for {req:?}: {}",
        a.status,
        shorten(&a.body)
    );
    prop_assert!(
        a.headers.contains_key("x-request-id"),
        "no X-Request-Id ({}) for {req:?}",
        a.status
    );
    for form in &env.secret_forms {
        prop_assert!(
            !text.contains(form.as_str()),
            "the secret leaks for {req:?}"
        );
        for (_, v) in &a.headers {
            prop_assert!(
                !String::from_utf8_lossy(v.as_bytes()).contains(form.as_str()),
                "the secret leaks in a header for {req:?}"
            );
        }
    }
    if a.status.is_client_error() {
        let ct = a
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        prop_assert!(
            std::str::from_utf8(&a.body).is_ok(),
            "a non-UTF-8 error body for {req:?}"
        );
        let code = if req.path.starts_with("/api/") {
            prop_assert!(ct.starts_with("application/json"), "{ct} for {req:?}");
            let v: serde_json::Value = serde_json::from_slice(&a.body)
                .map_err(|e| TestCaseError::fail(format!("not JSON ({e}) for {req:?}: {text}")))?;
            let msg = v["error"]["message"].as_str().unwrap_or("");
            prop_assert!(!msg.trim().is_empty(), "no message for {req:?}: {text}");
            v["error"]["code"].as_str().unwrap_or("").to_owned()
        } else {
            prop_assert!(ct.starts_with("text/html"), "{ct} for {req:?}");
            error_code(&text)
                .ok_or_else(|| TestCaseError::fail(format!("no alert for {req:?}: {text}")))?
        };
        prop_assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "no stable code ({code:?}) in the {} for {req:?}: {text}",
            a.status
        );
        if a.status == StatusCode::METHOD_NOT_ALLOWED {
            let allow = a
                .headers
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            prop_assert!(!allow.is_empty(), "405 without Allow for {req:?}");
            // Allow lists what the resource takes: never the method just refused.
            prop_assert!(
                !allow.split(',').any(|m| m.trim() == req.method.as_str()),
                "405 for {} with Allow: {allow} ({req:?})",
                req.method
            );
        }
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            prop_assert!(a.headers.contains_key("retry-after"));
        }
        return Ok(code);
    }
    if a.status.is_success() && a.status != StatusCode::NO_CONTENT {
        prop_assert!(!a.body.is_empty(), "an empty {} for {req:?}", a.status);
    }
    Ok(String::new())
}
