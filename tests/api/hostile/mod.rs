//! Issue 6, hostile input: generated requests (proptest) through the actix test service
//! for every handler, with the embedded store running so that valid-looking requests reach
//! a real store. Never a 5xx, never a panic, always a clear message with a stable code;
//! and no input widens the signed policy. Then the request limits and the rate limit,
//! through a real server.
//!
//! `HOSTILE_CASES` (default 3000) sets the generated requests per handler; each test prints
//! how many it sent (`cargo test --test hostile -- --nocapture`).

use std::cell::Cell;
use std::fmt;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::test as atest;
use actix_web::web;
use base64::Engine;
use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{
    Config as PtConfig, RngAlgorithm, TestCaseError, TestCaseResult, TestRunner,
};
use signpost::config::{Config, Settings, SignatureArg};
use signpost::store::Backend;
use signpost::store::multipart::form_body;
use signpost::testdata;
use signpost::upload::{Clock, Completion, ImageType, UploadRequest, encode_metadata};
use signpost::web::State;
use signpost::web::startup::{app, state};
use url::Url;

use crate::helpers::{enc, fragment_fields, spawn_with};

const PUBLIC: &str = "http://127.0.0.1:8080";

fn cases() -> u32 {
    std::env::var("HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
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
    };
    let valid = request.validate(&state.presigner.limits, true).unwrap();
    let signed = state
        .presigner
        .presign(&valid, Completion::Created, Clock::System);
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
    let etag = crate::helpers::between(&text, "<ETag>", "</ETag>")
        .unwrap()
        .replace("&quot;", "")
        .replace('"', "");
    (signed.key().to_owned(), etag)
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
        let req: &Req = $req;
        let svc = $svc;
        let mut tr = atest::TestRequest::default()
            .method(req.method.clone())
            .uri(&make_uri(&req.path, req.query.as_deref()).to_string())
            .peer_addr("10.9.8.7:4321".parse().unwrap());
        for (k, v) in &req.headers {
            tr = tr.append_header((k.clone(), v.clone()));
        }
        if !req.body.is_empty() {
            tr = tr.set_payload(req.body.clone());
        }
        async move {
            match atest::try_call_service(svc, tr.to_request()).await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let body = decoded(&headers, atest::read_body(resp).await);
                    Answer {
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
                    let body = actix_web::body::to_bytes(resp.into_body())
                        .await
                        .unwrap_or_default();
                    Answer {
                        status,
                        headers,
                        body,
                    }
                }
            }
        }
    }};
}

/// The rules every answer follows, whatever the input.
fn check(env: &Env, req: &Req, a: &Answer) -> TestCaseResult {
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
            prop_assert!(
                text.contains("role=\"alert\""),
                "no alert for {req:?}: {text}"
            );
            crate::helpers::between(&text, "data-code=\"", "\"")
                .unwrap_or("")
                .to_owned()
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
    } else if a.status.is_success() && a.status != StatusCode::NO_CONTENT {
        prop_assert!(!a.body.is_empty(), "an empty {} for {req:?}", a.status);
    }
    Ok(())
}

/// Run `cases` generated requests against a fresh service; returns how many were sent.
fn fuzz<S>(env: &Env, handler: &str, strategy: S) -> u64
where
    S: Strategy<Value = Req>,
{
    fuzz_with(env, handler, strategy, |_, _| Ok(()))
}

fn fuzz_with<S>(
    env: &Env,
    handler: &str,
    strategy: S,
    extra: impl Fn(&Req, &Answer) -> TestCaseResult,
) -> u64
where
    S: Strategy<Value = Req>,
{
    let sys = actix_web::rt::System::new();
    let data = env.state.clone();
    let svc = sys.block_on(async move { atest::init_service(app(data)).await });
    let sent = Cell::new(0u64);
    let statuses = std::cell::RefCell::new(std::collections::BTreeMap::<String, u64>::new());
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(PtConfig {
        cases: cases(),
        max_shrink_iters: 4096,
        failure_persistence: None,
        // ChaCha is ten times slower in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..PtConfig::default()
    });
    let result = runner.run(&strategy, |req| {
        sent.set(sent.get() + 1);
        let answer = sys.block_on(send!(&svc, &req));
        let code = code_of(&String::from_utf8_lossy(&answer.body));
        *statuses
            .borrow_mut()
            .entry(format!("{} {code}", answer.status.as_u16()))
            .or_default() += 1;
        check(env, &req, &answer)?;
        extra(&req, &answer)
    });
    if let Err(e) = result {
        panic!("{handler}: {e}");
    }
    println!(
        "hostile: {handler}: {} generated requests in {:.1} s; answers {:?}",
        sent.get(),
        started.elapsed().as_secs_f64(),
        statuses.borrow()
    );
    sent.get()
}

// ---------------------------------------------------------------------------------------
// Generators.

const NASTY: &[&str] = &[
    "",
    " ",
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fCargo.toml",
    "..\\..\\windows\\win.ini",
    "uploads/../../secret.png",
    "/uploads/x",
    "uploads//x.png",
    "....//....//x",
    "\0",
    "%00",
    "a\0b.png",
    "a%00.png",
    "\r\nSet-Cookie: x=1",
    "%0d%0aSet-Cookie:%20x=1",
    "\u{7f}",
    "\u{202e}gnp.exe",
    "\u{feff}",
    "\u{1F600}.png",
    "é.png",
    "%",
    "%%",
    "%z",
    "%zz",
    "%f",
    "%ff",
    "%ff%fe",
    "%c3%28",
    "%C0%AF",
    "%ed%a0%80",
    "%f4%90%80%80",
    "%e2%82",
    "+",
    "++",
    "=",
    "==",
    "&",
    "a=b=c",
    "\"},{\"x\":\"",
    "\"]}",
    "\\u0000",
    "<script>alert(1)</script>",
    "${filename}",
    "{{7*7}}",
    "'; DROP TABLE uploads; --",
    "image/png",
    "IMAGE/PNG",
    " image/png ",
    "image/svg+xml",
    "image/svg+xml; charset=utf-8",
    "image/png; charset=x",
    "image/",
    "image/*",
    "*/*",
    "text/html",
    "image/png\0",
    "0",
    "-1",
    "1",
    "1e3",
    "0x10",
    "+5",
    " 12 ",
    "10485760",
    "10485761",
    "4294967295",
    "4294967296",
    "65535",
    "65536",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999999",
    "NaN",
    "signpost",
    "other-bucket",
    "uploads/",
    "public-read",
    "http://evil.example/steal",
    "W/\"abc\"",
    "\"d41d8cd98f00b204e9800998ecf8427e\"",
    "d41d8cd98f00b204e9800998ecf8427e-3",
];

const NAMES: &[&str] = &[
    "filename",
    "content_type",
    "size",
    "width",
    "height",
    "bucket",
    "key",
    "etag",
    "after",
    "acl",
    "policy",
    "Content-Type",
    "success_action_redirect",
    "x-amz-meta-filename",
    "FILENAME",
    "file name",
    "filename[]",
    "size ",
];

fn nasty() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(NASTY).prop_map(|s| s.as_bytes().to_vec()),
        3 => "[ -~]{0,40}".prop_map(String::into_bytes),
        2 => prop::collection::vec(any::<char>(), 0..24)
            .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes()),
        2 => prop::collection::vec(any::<u8>(), 0..48),
        1 => (200usize..6000).prop_map(|n| "A".repeat(n).into_bytes()),
        1 => (1usize..400).prop_map(|n| "%ff".repeat(n).into_bytes()),
    ]
    .boxed()
}

#[derive(Debug, Clone, Copy)]
enum Enc {
    /// Verbatim (the URI layer encodes only what it must).
    Raw,
    /// Every byte outside the unreserved set as `%XX`.
    Percent,
    /// Spaces as `+`, the rest percent-encoded.
    Form,
}

fn encoding() -> impl Strategy<Value = Enc> {
    prop_oneof![Just(Enc::Raw), Just(Enc::Percent), Just(Enc::Form)]
}

fn encode(bytes: &[u8], e: Enc) -> Vec<u8> {
    match e {
        Enc::Raw => bytes.to_vec(),
        Enc::Percent | Enc::Form => {
            let mut out = Vec::with_capacity(bytes.len() * 3);
            for &b in bytes {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b);
                } else if b == b' ' && matches!(e, Enc::Form) {
                    out.push(b'+');
                } else {
                    out.extend_from_slice(format!("%{b:02X}").as_bytes());
                }
            }
            out
        }
    }
}

fn pair() -> BoxedStrategy<Vec<u8>> {
    (
        prop_oneof![
            3 => prop::sample::select(NAMES).prop_map(|s| s.as_bytes().to_vec()),
            1 => nasty(),
        ],
        prop::option::weighted(0.9, nasty()),
        encoding(),
        encoding(),
    )
        .prop_map(|(k, v, ek, ev)| {
            let mut out = encode(&k, ek);
            if let Some(v) = v {
                out.push(b'=');
                out.extend(encode(&v, ev));
            }
            out
        })
        .boxed()
}

fn join_pairs(pairs: Vec<(Vec<u8>, &'static str)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (p, sep)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(sep.as_bytes());
        }
        out.extend(p);
    }
    out
}

/// Any query at all: random pairs, huge, too many, duplicated, malformed.
fn random_query() -> BoxedStrategy<Vec<u8>> {
    let sep = prop::sample::select(&["&", "&", "&", "&&", ";", "&amp;", "?"][..]);
    prop_oneof![
        8 => prop::collection::vec((pair(), sep), 0..20).prop_map(join_pairs),
        1 => (4000usize..9000).prop_map(|n| format!("filename={}", "x".repeat(n)).into_bytes()),
        1 => (17usize..80).prop_map(|n| {
            (0..n).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&").into_bytes()
        }),
        1 => (prop::sample::select(NAMES), nasty(), nasty()).prop_map(|(n, a, b)| {
            let mut out = format!("{n}=").into_bytes();
            out.extend(encode(&a, Enc::Percent));
            out.extend(format!("&{n}=").into_bytes());
            out.extend(encode(&b, Enc::Percent));
            out
        }),
    ]
    .boxed()
}

/// A valid query for the handler, then mutated: pairs dropped, duplicated, their values
/// replaced by nasty ones, extra pairs added, the order shuffled.
fn mutated(base: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<Vec<u8>> {
    let n = base.len();
    let (names, values): (Vec<_>, Vec<_>) = base.into_iter().unzip();
    (
        values,
        prop::collection::vec(0u8..24, n),
        prop::collection::vec(nasty(), n),
        prop::collection::vec(pair(), 0..3),
        any::<bool>(),
    )
        .prop_map(move |(values, ops, replacements, extra, percent_all)| {
            let mut pairs: Vec<Vec<u8>> = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let good = if percent_all {
                    encode(values[i].as_bytes(), Enc::Percent)
                } else {
                    enc(&values[i]).into_bytes()
                };
                let mut kv = |v: Vec<u8>| {
                    let mut p = name.as_bytes().to_vec();
                    p.push(b'=');
                    p.extend(v);
                    pairs.push(p);
                };
                match ops[i] {
                    0 => {}                                          // dropped
                    1 => kv(encode(&replacements[i], Enc::Percent)), // replaced
                    2 => kv(encode(&replacements[i], Enc::Raw)),     // replaced, raw
                    3 => {
                        kv(good.clone());
                        kv(good);
                    } // duplicated
                    _ => kv(good),
                }
            }
            pairs.extend(extra);
            pairs
        })
        .prop_shuffle()
        .prop_map(|pairs| pairs.join(&b'&'))
        .boxed()
}

fn methods(main: Method) -> BoxedStrategy<Method> {
    let others: Vec<Method> = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND",
        "FOO",
    ]
    .iter()
    .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
    .collect();
    prop_oneof![6 => Just(main), 1 => prop::sample::select(others)].boxed()
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/problem+json",
    "application/jsonx",
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "*/*",
    "",
    ";;;",
    "application/json; charset=latin1",
];

fn header() -> BoxedStrategy<(HeaderName, HeaderValue)> {
    let h = |name: &'static str, values: &'static [&'static str]| {
        prop::sample::select(values).prop_map(move |v| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_str(v).unwrap(),
            )
        })
    };
    prop_oneof![
        h("content-type", CONTENT_TYPES),
        h(
            "accept-encoding",
            &[
                "gzip",
                "gzip;q=0",
                "*",
                "br, gzip;q=0.5",
                "identity",
                "",
                "x, y, z"
            ]
        ),
        h("if-none-match", &["*", "\"abc\"", "W/\"x\"", "", ","]),
        h(
            "x-forwarded-for",
            &["1.2.3.4", "::1", "garbage", "1.2.3.4, 5.6.7.8", ""]
        ),
        h("hx-request", &["true", "false", ""]),
        h("accept", &["application/json", "text/html", "*/*", ""]),
        h("origin", &["http://evil.example", "null"]),
        h("range", &["bytes=0-10", "bytes=-1", "bytes=x"]),
        prop::collection::vec(any::<u8>(), 0..80).prop_filter_map("a header value", |v| {
            HeaderValue::from_bytes(&v)
                .ok()
                .map(|v| (HeaderName::from_static("x-request-id"), v))
        }),
        ("[a-z][a-z0-9-]{0,20}", "[ -~]{0,60}").prop_filter_map("a header", |(n, v)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(&v).ok()?,
            ))
        }),
    ]
    .boxed()
}

fn headers() -> BoxedStrategy<Vec<(HeaderName, HeaderValue)>> {
    prop::collection::vec(header(), 0..4).boxed()
}

fn small_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        8 => Just(Vec::new()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => (16 * 1024usize..40 * 1024).prop_map(|n| vec![b'x'; n]),
    ]
    .boxed()
}

fn request(
    method: BoxedStrategy<Method>,
    path: BoxedStrategy<String>,
    query: BoxedStrategy<Option<Vec<u8>>>,
    body: BoxedStrategy<Vec<u8>>,
) -> impl Strategy<Value = Req> {
    (method, path, query, headers(), body).prop_map(|(method, path, query, headers, body)| Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn key_like(env: &Env) -> BoxedStrategy<String> {
    let real = env.key.clone();
    let id = || {
        any::<[u8; 16]>().prop_map(|b| {
            let h = hex::encode(b);
            format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        })
    };
    prop_oneof![
        5 => Just(real.clone()),
        3 => (id(), "[a-z0-9]{1,12}\\.(png|jpg|gif|webp|avif)")
            .prop_map(|(id, n)| format!("uploads/{id}/{n}")),
        1 => id().prop_map(|id| format!("uploads/{}/x.png", id.to_uppercase())),
        1 => (id(), prop::sample::select(NASTY))
            .prop_map(|(id, n)| format!("uploads/{id}/{n}")),
        1 => Just(real.replace("uploads/", "uploads/../")),
        1 => Just(format!("{real}/../../other")),
        1 => nasty().prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
    ]
    .boxed()
}

fn etag_like(env: &Env) -> BoxedStrategy<String> {
    prop_oneof![
        6 => Just(env.etag.clone()),
        1 => Just(format!("\"{}\"", env.etag)),
        2 => "[0-9a-f]{32}",
        1 => "[0-9a-f]{32}-[0-9]{1,3}",
        1 => "[0-9a-zA-Z-]{129,140}",
        1 => nasty().prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
    ]
    .boxed()
}

fn some_query(valid: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        6 => valid.prop_map(Some),
        3 => random_query().prop_map(Some),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------------------
// Per handler.

#[test]
fn the_upload_page_takes_any_request() {
    let env = env(|_| {});
    let n = fuzz(
        &env,
        "GET /",
        request(
            methods(Method::GET),
            prop_oneof![4 => Just("/".to_owned()), 1 => Just("//".to_owned())].boxed(),
            prop::option::weighted(0.8, random_query()).boxed(),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

fn fragment_query() -> BoxedStrategy<Vec<u8>> {
    mutated(vec![
        (
            "filename",
            prop_oneof![Just("cat.png".to_owned()), "[ -~]{1,30}"].boxed(),
        ),
        (
            "content_type",
            prop::sample::select(
                &[
                    "image/png",
                    "image/jpeg",
                    "image/gif",
                    "image/webp",
                    "image/avif",
                ][..],
            )
            .prop_map(str::to_owned)
            .boxed(),
        ),
        (
            "size",
            (0u64..12_000_000).prop_map(|n| n.to_string()).boxed(),
        ),
        ("width", (0u32..70_000).prop_map(|n| n.to_string()).boxed()),
        ("height", (0u32..70_000).prop_map(|n| n.to_string()).boxed()),
    ])
}

#[test]
fn the_fragment_takes_any_request() {
    let env = env(|_| {});
    let n = fuzz(
        &env,
        "GET /fragments/image-meta",
        request(
            methods(Method::GET),
            Just("/fragments/image-meta".to_owned()).boxed(),
            some_query(fragment_query()),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

fn uploaded_query(env: &Env) -> BoxedStrategy<Vec<u8>> {
    mutated(vec![
        (
            "bucket",
            prop_oneof![5 => Just("signpost".to_owned()), 1 => "[a-z-]{0,10}"].boxed(),
        ),
        ("key", key_like(env)),
        ("etag", etag_like(env)),
    ])
}

#[test]
fn the_confirmation_page_takes_any_request() {
    let env = env(|_| {});
    let n = fuzz(
        &env,
        "GET /uploaded",
        request(
            methods(Method::GET),
            Just("/uploaded".to_owned()).boxed(),
            some_query(uploaded_query(&env)),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

#[test]
fn the_gallery_takes_any_request() {
    let env = env(|_| {});
    let after = mutated(vec![("after", key_like(&env))]);
    let n = fuzz(
        &env,
        "GET /gallery",
        request(
            methods(Method::GET),
            Just("/gallery".to_owned()).boxed(),
            some_query(after),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

#[test]
fn static_files_take_any_request() {
    let env = env(|_| {});
    let urls = &env.state.assets;
    let known = vec![
        urls.js.clone(),
        urls.css.clone(),
        "/static/upload.js".to_owned(),
        "/static/style.css".to_owned(),
    ];
    let segment = prop_oneof![
        3 => prop::sample::select(known),
        3 => (nasty(), encoding()).prop_map(|(v, e)| {
            // A path can only carry what the URI grammar allows: encode the rest.
            let bytes = encode(&v, if matches!(e, Enc::Raw) { Enc::Percent } else { e });
            format!("/static/{}", String::from_utf8_lossy(&bytes))
        }),
        1 => prop::sample::select(
            &[
                "/static/",
                "/static/..",
                "/static/../Cargo.toml",
                "/static/%2e%2e/Cargo.toml",
                "/static/..%2fCargo.toml",
                "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                "/static/upload.js%00.png",
                "/static/upload.js/",
                "/static/upload.js/x",
                "/static//upload.js",
                "/static/%ff",
                "/static/%zz",
                "/static/%",
                "/static/UPLOAD.JS",
                "/static/.%2e/.%2e/src/main.rs",
            ][..],
        )
        .prop_map(str::to_owned),
    ];
    let n = fuzz(
        &env,
        "GET /static/…",
        request(
            methods(Method::GET),
            segment.boxed(),
            prop::option::weighted(0.3, random_query()).boxed(),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

// ---- JSON bodies -------------------------------------------------------------------------

fn json_leaf() -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        nasty().prop_map(|v| Value::String(String::from_utf8_lossy(&v).into_owned())),
    ]
    .boxed()
}

fn json_any() -> BoxedStrategy<serde_json::Value> {
    json_leaf()
        .prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An object with the endpoint's fields, each absent, good, or anything; sometimes one
/// field too many.
fn json_object(
    fields: Vec<(&'static str, BoxedStrategy<serde_json::Value>)>,
) -> BoxedStrategy<Vec<u8>> {
    let n = fields.len();
    let (names, goods): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (
        goods,
        prop::collection::vec(0u8..20, n),
        prop::collection::vec(json_any(), n),
        prop::option::weighted(
            0.15,
            (
                prop::sample::select(
                    &[
                        "key",
                        "bucket",
                        "acl",
                        "conditions",
                        "max_bytes",
                        "Content-Type",
                        "success_action_redirect",
                        "x-amz-meta-evil",
                        "policy",
                        "extra",
                    ][..],
                ),
                json_any(),
            ),
        ),
    )
        .prop_map(move |(goods, ops, anys, extra)| {
            let mut m = serde_json::Map::new();
            for (i, name) in names.iter().enumerate() {
                match ops[i] {
                    0 => {}
                    1 | 2 => {
                        m.insert((*name).to_owned(), anys[i].clone());
                    }
                    _ => {
                        m.insert((*name).to_owned(), goods[i].clone());
                    }
                }
            }
            if let Some((k, v)) = extra {
                m.insert(k.to_owned(), v);
            }
            serde_json::to_vec(&serde_json::Value::Object(m)).unwrap()
        })
        .boxed()
}

const BAD_JSON: &[&str] = &[
    "",
    "{",
    "}",
    "[]",
    "null",
    "true",
    "\"x\"",
    "42",
    "{\"filename\":}",
    "{\"filename\":\"a.png\",}",
    "{'filename':'a.png'}",
    "{\"filename\":\"a.png\",\"filename\":\"b.png\"}",
    "{\"size\":1e309}",
    "{\"size\":-1}",
    "{\"size\":1.5}",
    "{\"size\":\"10\"}",
    "{\"width\":4294967296,\"height\":1}",
    "\u{feff}{\"filename\":\"a.png\"}",
    "{\"filename\":\"a.png\"} trailing",
    "{\"filename\":\"\\ud800\"}",
    "{\"filename\":\"a\\u0000.png\",\"content_type\":\"image/png\",\"size\":1}",
    "{\"key\":\"uploads/../x\",\"etag\":\"x\"}",
];

fn json_body(good: BoxedStrategy<Vec<u8>>) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        12 => good.clone(),
        3 => prop::sample::select(BAD_JSON).prop_map(|s| s.as_bytes().to_vec()),
        2 => json_any().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => (1usize..300).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        // Around the 16 KiB limit: padded with whitespace, so the JSON stays valid.
        1 => (good, 16 * 1024 - 64usize..16 * 1024 + 64).prop_map(|(mut b, n)| {
            while b.len() < n {
                b.insert(0, b' ');
            }
            b
        }),
        1 => (16 * 1024 + 1usize..64 * 1024)
            .prop_map(|n| format!("{{\"filename\":\"{}\"}}", "a".repeat(n)).into_bytes()),
    ]
    .boxed()
}

fn api_request(path: &'static str, body: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Req> {
    let json_ct = (
        HeaderName::from_static("content-type"),
        HeaderValue::from_static("application/json"),
    );
    (
        methods(Method::POST),
        prop::option::weighted(0.3, random_query()),
        prop_oneof![
            6 => Just(vec![json_ct]),
            1 => Just(vec![]),
            2 => headers(),
        ],
        body,
    )
        .prop_map(move |(method, query, headers, body)| Req {
            method,
            path: path.to_owned(),
            query,
            headers,
            body,
        })
}

fn presign_fields() -> BoxedStrategy<Vec<u8>> {
    use serde_json::Value;
    json_object(vec![
        (
            "filename",
            prop_oneof![Just("cat.png".to_owned()), "[ -~]{1,30}"]
                .prop_map(Value::from)
                .boxed(),
        ),
        (
            "content_type",
            prop::sample::select(&["image/png", "image/jpeg", "image/webp", "IMAGE/GIF"][..])
                .prop_map(Value::from)
                .boxed(),
        ),
        ("size", (0u64..12_000_000).prop_map(Value::from).boxed()),
        ("width", (0u32..70_000).prop_map(Value::from).boxed()),
        ("height", (0u32..70_000).prop_map(Value::from).boxed()),
    ])
}

#[test]
fn the_presign_api_takes_any_request() {
    let env = env(|_| {});
    let n = fuzz(
        &env,
        "POST /api/presign",
        api_request("/api/presign", json_body(presign_fields())),
    );
    assert!(n >= u64::from(cases()));
}

#[test]
fn the_confirm_api_takes_any_request() {
    use serde_json::Value;
    let env = env(|_| {});
    let good = json_object(vec![
        ("key", key_like(&env).prop_map(Value::from).boxed()),
        ("etag", etag_like(&env).prop_map(Value::from).boxed()),
        (
            "bucket",
            prop_oneof![Just("signpost".to_owned()), "[a-z-]{0,10}"]
                .prop_map(Value::from)
                .boxed(),
        ),
    ]);
    let n = fuzz(
        &env,
        "POST /api/uploads/confirm",
        api_request("/api/uploads/confirm", json_body(good)),
    );
    assert!(n >= u64::from(cases()));
}

/// Everything else: unknown paths, odd methods on every route.
#[test]
fn unknown_paths_take_any_request() {
    let env = env(|_| {});
    let path = prop_oneof![
        prop::sample::select(
            &[
                "/api/",
                "/api/presign/",
                "/api/uploads",
                "/api/nope",
                "/fragments/",
                "/fragments/image-meta/",
                "/uploaded/",
                "/gallery/",
                "/healthz",
                "/favicon.ico",
                "/..",
                "/%2e%2e/%2e%2e/etc/passwd",
                "/index.html",
                "/.env",
                "/%00",
                "/%ff",
            ][..],
        )
        .prop_map(str::to_owned),
        (nasty(), Just(Enc::Percent))
            .prop_map(|(v, e)| { format!("/{}", String::from_utf8_lossy(&encode(&v, e))) }),
    ];
    let n = fuzz(
        &env,
        "other paths",
        request(
            methods(Method::GET),
            path.boxed(),
            prop::option::weighted(0.3, random_query()).boxed(),
            small_body(),
        ),
    );
    assert!(n >= u64::from(cases()));
}

// ---------------------------------------------------------------------------------------
// No input widens the policy.

struct Expect<'a> {
    env: &'a Env,
    /// `success_action_redirect` (the fragment) or `success_action_status` (the API).
    redirect: bool,
    /// The content type asked for.
    asked_type: &'a str,
    asked_name: &'a str,
    asked_dims: Option<(u32, u32)>,
    v4: bool,
}

fn key_shape_ok(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("uploads/") else {
        return false;
    };
    let Some((id, name)) = rest.split_once('/') else {
        return false;
    };
    id.len() == 36
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// The signed fields and their policy are exactly what signpost means to sign.
fn check_signed(fields: &[(String, String)], key: &str, x: &Expect<'_>) -> TestCaseResult {
    let settings = &x.env.state.settings;
    prop_assert!(key_shape_ok(key), "key {key:?}");
    prop_assert!(
        signpost::store::parse_key(&settings.prefix, key).is_ok(),
        "signpost's own confirmation refuses its key {key:?}"
    );
    let field = |name: &str| {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    prop_assert_eq!(field("key"), vec![key]);

    let policy_name = if x.v4 { "policy" } else { "Policy" };
    let policy_b64 = field(policy_name);
    prop_assert_eq!(policy_b64.len(), 1);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(policy_b64[0])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let policy: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let top = policy.as_object().unwrap();
    prop_assert_eq!(top.len(), 2, "policy keys: {:?}", top.keys());
    prop_assert!(top["expiration"].is_string());
    let conditions = top["conditions"].as_array().unwrap();

    let mime = ImageType::from_mime(x.asked_type).unwrap().mime();
    prop_assert!(settings.limits.allowed.iter().any(|t| t.mime() == mime));
    let mut expected: Vec<(&str, String)> = vec![
        ("bucket", settings.bucket.clone()),
        ("key", key.to_owned()),
        ("Content-Type", mime.to_owned()),
        ("x-amz-meta-filename", encode_metadata(x.asked_name.trim())),
    ];
    if x.redirect {
        expected.push(("success_action_redirect", format!("{PUBLIC}/uploaded")));
    } else {
        expected.push(("success_action_status", "201".to_owned()));
    }
    if let Some((w, h)) = x.asked_dims {
        expected.push(("x-amz-meta-width", w.to_string()));
        expected.push(("x-amz-meta-height", h.to_string()));
    }
    if x.v4 {
        let date = field("x-amz-date");
        prop_assert_eq!(date.len(), 1);
        let date = date[0].to_owned();
        prop_assert!(date.len() == 16 && date.ends_with('Z'), "{date}");
        expected.push(("x-amz-algorithm", "AWS4-HMAC-SHA256".to_owned()));
        expected.push((
            "x-amz-credential",
            format!(
                "{}/{}/{}/s3/aws4_request",
                x.env.access_key_id,
                &date[..8],
                settings.region
            ),
        ));
        expected.push(("x-amz-date", date));
    }

    let mut ranges = 0;
    let mut seen: Vec<(String, String)> = Vec::new();
    for c in conditions {
        if let Some(arr) = c.as_array() {
            // The only array condition allowed: the exact length range.
            prop_assert_eq!(
                arr.len(),
                3,
                "unexpected condition {} in {}",
                c,
                String::from_utf8_lossy(&raw)
            );
            prop_assert_eq!(
                arr[0].as_str(),
                Some("content-length-range"),
                "unexpected condition {} (no starts-with, no eq) in {}",
                c,
                String::from_utf8_lossy(&raw)
            );
            prop_assert_eq!(arr[1].as_u64(), Some(1));
            prop_assert_eq!(arr[2].as_u64(), Some(settings.limits.max_bytes));
            ranges += 1;
        } else {
            let obj = c.as_object().unwrap();
            prop_assert_eq!(obj.len(), 1, "condition {}", c);
            let (k, v) = obj.iter().next().unwrap();
            let v = v.as_str();
            prop_assert!(v.is_some(), "a non-string condition {}", c);
            seen.push((k.clone(), v.unwrap().to_owned()));
        }
    }
    prop_assert_eq!(ranges, 1, "one content-length-range");
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    want.sort();
    seen.sort();
    prop_assert_eq!(
        &seen,
        &want,
        "the conditions differ from the expected set: {}",
        String::from_utf8_lossy(&raw)
    );

    // The form carries exactly the conditioned fields (bucket is not a field) and the
    // signature's exempt fields; each with its condition's value.
    let mut form_names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    form_names.sort();
    let mut expected_names: Vec<&str> = want
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| *k != "bucket")
        .collect();
    if x.v4 {
        expected_names.extend(["policy", "x-amz-signature"]);
    } else {
        expected_names.extend(["AWSAccessKeyId", "Policy", "Signature"]);
    }
    expected_names.sort();
    prop_assert_eq!(form_names, expected_names);
    for (k, v) in &want {
        if k != "bucket" {
            prop_assert_eq!(field(k), vec![v.as_str()], "field {}", k);
        }
    }
    Ok(())
}

fn filename() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>().prop_map(|s| s.chars().take(120).collect()),
        3 => "[ -~]{1,60}",
        2 => prop::sample::select(
            &[
                "../../etc/passwd",
                "..\\..\\x.png",
                "a/b/c.png",
                "/abs.png",
                ".htaccess",
                "....png",
                "..",
                ".",
                "x.svg",
                "x.png.html",
                "x.PNG",
                "${filename}",
                "\"},{\"bucket\":\"evil\"},{\"a\":\"",
                "\"]]}",
                "=?UTF-8?B?ZXZpbA==?=",
                "\u{202e}gnp.exe",
                "  spaced name .png  ",
                "é à ü.png",
                "🙂.gif",
                "con.png",
                "a%2f..%2fb.png",
                "uploads/../../x.png",
            ][..],
        )
        .prop_map(str::to_owned),
        1 => (1usize..300).prop_map(|n| format!("{}.png", "n".repeat(n))),
    ]
    .boxed()
}

fn content_type() -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::sample::select(
            &["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"][..],
        )
        .prop_map(str::to_owned),
        1 => prop::sample::select(
            &[
                "IMAGE/PNG",
                " image/jpeg ",
                "image/svg+xml",
                "image/",
                "image/png; x=y",
                "image/png,image/svg+xml",
                "text/html",
                "image/*",
                "",
            ][..],
        )
        .prop_map(str::to_owned),
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Ask {
    filename: Option<String>,
    content_type: Option<String>,
    size: Option<u64>,
    width: Option<u32>,
    height: Option<u32>,
    /// Attack parameters that must change nothing (the fragment ignores unknown ones).
    extra: Vec<(&'static str, String)>,
}

fn ask(env: &Env) -> impl Strategy<Value = Ask> {
    let max = env.state.presigner.limits.max_bytes;
    let allowed: Vec<String> = env
        .state
        .presigner
        .limits
        .allowed
        .iter()
        .map(|t| t.mime().to_owned())
        .collect();
    (
        prop::option::weighted(0.95, filename()),
        prop::option::weighted(
            0.95,
            prop_oneof![2 => prop::sample::select(allowed), 1 => content_type()],
        ),
        prop::option::weighted(
            0.95,
            prop_oneof![
                6 => 1..=max,
                1 => Just(max),
                1 => Just(max + 1),
                1 => Just(0u64),
                1 => any::<u64>(),
            ],
        ),
        prop_oneof![
            3 => Just((None, None)),
            4 => (1u32..5000, 1u32..5000).prop_map(|(w, h)| (Some(w), Some(h))),
            1 => (any::<Option<u32>>(), any::<Option<u32>>()),
        ],
        prop::option::weighted(
            0.3,
            (
                prop::sample::subsequence(
                    &[
                        "key",
                        "bucket",
                        "acl",
                        "success_action_redirect",
                        "success_action_status",
                        "Content-Type",
                        "x-amz-meta-evil",
                        "policy",
                        "max_bytes",
                        "prefix",
                        "expiration",
                    ][..],
                    1..4,
                ),
                prop::sample::select(
                    &[
                        "uploads/../../evil.html",
                        "other-bucket",
                        "public-read-write",
                        "http://evil.example/",
                        "image/",
                        "999999999999",
                        "[\"starts-with\",\"$key\",\"\"]",
                    ][..],
                ),
            ),
        )
        .prop_map(|extra| {
            extra
                .map(|(names, value)| {
                    names
                        .into_iter()
                        .map(|n| (n, value.to_owned()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }),
    )
        .prop_map(
            |(filename, content_type, size, (width, height), extra)| Ask {
                filename,
                content_type,
                size,
                width,
                height,
                extra,
            },
        )
}

impl Ask {
    fn request(&self) -> UploadRequest {
        UploadRequest {
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
            width: self.width,
            height: self.height,
        }
    }

    fn query(&self) -> Vec<u8> {
        let mut parts = Vec::new();
        if let Some(v) = &self.filename {
            parts.push(format!("filename={}", enc(v)));
        }
        if let Some(v) = &self.content_type {
            parts.push(format!("content_type={}", enc(v)));
        }
        for (k, v) in [("size", self.size.map(|n| n.to_string()))]
            .into_iter()
            .chain([
                ("width", self.width.map(|n| n.to_string())),
                ("height", self.height.map(|n| n.to_string())),
            ])
        {
            if let Some(v) = v {
                parts.push(format!("{k}={v}"));
            }
        }
        for (k, v) in &self.extra {
            parts.push(format!("{}={}", enc(k), enc(v)));
        }
        parts.join("&").into_bytes()
    }

    fn json(&self) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        if let Some(v) = &self.filename {
            m.insert("filename".into(), v.clone().into());
        }
        if let Some(v) = &self.content_type {
            m.insert("content_type".into(), v.clone().into());
        }
        if let Some(v) = self.size {
            m.insert("size".into(), v.into());
        }
        if let Some(v) = self.width {
            m.insert("width".into(), v.into());
        }
        if let Some(v) = self.height {
            m.insert("height".into(), v.into());
        }
        for (k, v) in &self.extra {
            m.insert((*k).to_owned(), v.clone().into());
        }
        serde_json::to_vec(&m).unwrap()
    }
}

fn policy_property(env: &Env, v4: bool, api: bool) -> (u64, u64) {
    let sys = actix_web::rt::System::new();
    let data = env.state.clone();
    let svc = sys.block_on(async move { atest::init_service(app(data)).await });
    let sent = Cell::new(0u64);
    let accepted = Cell::new(0u64);
    let mut runner = TestRunner::new(PtConfig {
        cases: cases(),
        failure_persistence: None,
        // ChaCha is ten times slower in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..PtConfig::default()
    });
    let result = runner.run(&ask(env), |a| {
        sent.set(sent.get() + 1);
        let req = if api {
            Req {
                method: Method::POST,
                path: "/api/presign".into(),
                query: None,
                headers: vec![(
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("application/json"),
                )],
                body: a.json(),
            }
        } else {
            Req {
                method: Method::GET,
                path: "/fragments/image-meta".into(),
                query: Some(a.query()),
                headers: vec![],
                body: vec![],
            }
        };
        let answer = sys.block_on(send!(&svc, &req));
        check(env, &req, &answer)?;
        // The API refuses unknown fields; the fragment ignores unknown parameters.
        let valid = a
            .request()
            .validate(&env.state.presigner.limits, true)
            .is_ok()
            && (!api || a.extra.is_empty());
        if !valid {
            prop_assert!(
                answer.status.is_client_error(),
                "an invalid request was signed: {a:?} → {}",
                answer.status
            );
            return Ok(());
        }
        prop_assert_eq!(
            answer.status,
            StatusCode::OK,
            "for {:?}: {}",
            a,
            shorten(&answer.body)
        );
        accepted.set(accepted.get() + 1);
        let (fields, key) = if api {
            let v: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
            let fields: Vec<(String, String)> = v["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("<not a string>").to_owned()))
                .collect();
            prop_assert_eq!(v["method"].as_str(), Some("POST"));
            prop_assert_eq!(
                v["url"].as_str(),
                Some(env.state.presigner.form_url.as_str())
            );
            (fields, v["key"].as_str().unwrap().to_owned())
        } else {
            let html = String::from_utf8_lossy(&answer.body);
            let fields = fragment_fields(&html);
            let key = fields
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (fields, key)
        };
        let dims = match (a.width, a.height) {
            (Some(w), Some(h)) => Some((w, h)),
            _ => None,
        };
        check_signed(
            &fields,
            &key,
            &Expect {
                env,
                redirect: !api,
                asked_type: a.content_type.as_deref().unwrap_or(""),
                asked_name: a.filename.as_deref().unwrap_or(""),
                asked_dims: dims,
                v4,
            },
        )
    });
    if let Err(e) = result {
        panic!(
            "policy property ({}): {e}",
            if api { "API" } else { "fragment" }
        );
    }
    (sent.get(), accepted.get())
}

#[test]
fn no_fragment_input_widens_the_policy() {
    let env = env(|_| {});
    let (sent, accepted) = policy_property(&env, true, false);
    println!(
        "hostile: policy via GET /fragments/image-meta (v4): {sent} generated requests, {accepted} signed"
    );
    assert!(
        accepted * 4 >= sent,
        "too few accepted: {accepted} of {sent}"
    );
}

#[test]
fn no_api_input_widens_the_policy() {
    let env = env(|_| {});
    let (sent, accepted) = policy_property(&env, true, true);
    println!(
        "hostile: policy via POST /api/presign (v4): {sent} generated requests, {accepted} signed"
    );
    assert!(
        accepted * 4 >= sent,
        "too few accepted: {accepted} of {sent}"
    );
}

#[test]
fn no_input_widens_a_v2_policy_or_a_smaller_limit() {
    let env = env(|c| {
        c.signature = SignatureArg::V2;
        c.max_bytes = 123_456;
        c.allowed_types = vec!["image/png".into(), "image/webp".into()];
    });
    let (sent_f, acc_f) = policy_property(&env, false, false);
    let (sent_a, acc_a) = policy_property(&env, false, true);
    println!(
        "hostile: policy (v2, 123456 bytes, png+webp): fragment {sent_f} generated requests ({acc_f} signed), API {sent_a} ({acc_a} signed)"
    );
    assert!(acc_f > 0 && acc_a > 0);
}

// ---------------------------------------------------------------------------------------
// Request limits and the rate limit, through a real server.

fn code_of(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        return v["error"]["code"].as_str().unwrap_or("").to_owned();
    }
    crate::helpers::between(body, "data-code=\"", "\"")
        .unwrap_or("")
        .to_owned()
}

#[actix_web::test]
async fn query_limits_have_their_codes() {
    let app = spawn_with(|_| {}).await;
    let long = format!(
        "filename={}&content_type=image%2Fpng&size=10",
        "a".repeat(5000)
    );
    let many: String = (0..17)
        .map(|i| format!("p{i}=1"))
        .collect::<Vec<_>>()
        .join("&");
    let dup = "filename=a.png&filename=b.png&content_type=image%2Fpng&size=1";
    let bad = "filename=%ff.png&content_type=image%2Fpng&size=1";
    for (path, status) in [
        ("/fragments/image-meta", 422),
        ("/uploaded", 400),
        ("/gallery", 400),
    ] {
        for (query, code) in [
            (long.as_str(), "query_too_long"),
            (many.as_str(), "query_too_many_parameters"),
            (dup, "query_duplicate_parameter"),
            (bad, "query_invalid_encoding"),
        ] {
            let r = app.get(&format!("{path}?{query}")).await;
            assert_eq!(r.status.as_u16(), status, "{path}?{code}: {}", r.body);
            assert_eq!(code_of(&r.body), code, "{path}: {}", r.body);
        }
        // Exactly at the limits: accepted by the parser (whatever the handler says next).
        let at_limit = format!("x={}", "a".repeat(4096 - 2));
        let r = app.get(&format!("{path}?{at_limit}")).await;
        assert_ne!(code_of(&r.body), "query_too_long", "{path}: {}", r.body);
        let sixteen: String = (0..16)
            .map(|i| format!("q{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        let r = app.get(&format!("{path}?{sixteen}")).await;
        assert_ne!(code_of(&r.body), "query_too_many_parameters");
    }
    // A request line far beyond any handler's limit: refused by the HTTP layer, not a 5xx.
    let r = app
        .get(&format!("/gallery?after={}", "a".repeat(40 * 1024)))
        .await;
    assert!(r.status.is_client_error(), "{}", r.status);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn json_limits_have_their_codes() {
    let app = spawn_with(|_| {}).await;
    let big = format!(
        "{{\"filename\":\"{}\",\"content_type\":\"image/png\",\"size\":1}}",
        "a".repeat(16 * 1024)
    );
    for path in ["/api/presign", "/api/uploads/confirm"] {
        // Over 16 KiB, with a Content-Length.
        let r = app.post_raw(path, "application/json", big.clone()).await;
        assert_eq!(
            r.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {}",
            r.body
        );
        assert_eq!(code_of(&r.body), "body_too_large");
        // Over 16 KiB, chunked (no Content-Length).
        let chunks: Vec<Result<Bytes, std::io::Error>> = big
            .as_bytes()
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut resp = app
            .client
            .post(app.url(path))
            .insert_header(("content-type", "application/json"))
            .send_stream(futures_util::stream::iter(chunks))
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&resp.body().await.unwrap()).into_owned();
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "{path}: {body}"
        );
        assert_eq!(code_of(&body), "body_too_large");
        // Not JSON.
        for ct in ["text/plain", "application/x-www-form-urlencoded"] {
            let r = app.post_raw(path, ct, "filename=a.png").await;
            assert_eq!(
                r.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {ct}: {}",
                r.body
            );
            assert_eq!(code_of(&r.body), "unsupported_media_type");
        }
        // No content type at all.
        let mut resp = app
            .client
            .post(app.url(path))
            .send_body("{}")
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&resp.body().await.unwrap()).into_owned();
        assert_eq!(
            resp.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{path}: {body}"
        );
        // Bad JSON.
        let r = app
            .post_raw(path, "application/json", "{\"filename\":")
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            r.body
        );
        assert_eq!(code_of(&r.body), "json_invalid");
        // JSON that is not UTF-8, in a string and outside one.
        for body in [&b"{\"filename\":\"a\xff.png\"}"[..], b"{\xc3}"] {
            let r = app.post_raw(path, "application/json", body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path}: {}",
                r.body
            );
            assert_eq!(code_of(&r.body), "json_invalid", "{path}");
        }
        // Wrong method.
        let r = app.get(path).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.header("allow"), Some("POST"));
    }
    // Just under the limit is fine.
    let mut ok = b"{\"filename\":\"a.png\",\"content_type\":\"image/png\",\"size\":1}".to_vec();
    while ok.len() < 16 * 1024 {
        ok.insert(0, b' ');
    }
    let r = app
        .post_raw("/api/presign", "application/json", ok.clone())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The same body in small chunks (no Content-Length) is put back together.
    let chunks: Vec<Result<Bytes, std::io::Error>> = ok
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut resp = app
        .client
        .post(app.url("/api/presign"))
        .insert_header(("content-type", "application/json"))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&resp.body().await.unwrap()).into_owned();
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.contains("/a.png\""), "{body}");
    app.handle.stop(false).await;
}

const FRAG: &str = "/fragments/image-meta?filename=cat.png&content_type=image%2Fpng&size=1000";

fn presign_body() -> serde_json::Value {
    serde_json::json!({"filename": "cat.png", "content_type": "image/png", "size": 1000})
}

#[actix_web::test]
async fn the_fourth_fragment_in_a_minute_is_rate_limited() {
    let app = spawn_with(|c| c.sign_rate_per_minute = Some(3)).await;
    for i in 0..3 {
        let r = app.get(FRAG).await;
        assert_eq!(r.status, StatusCode::OK, "signature {i}: {}", r.body);
    }
    let r = app.get(FRAG).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(code_of(&r.body), "rate_limited");
    assert!(r.body.contains("try again in"), "{}", r.body);
    // The budget is per client, shared by every way of signing.
    let r = app.post_json("/api/presign", &presign_body()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    // The upload page signs its no-JavaScript form: it shares the budget. What signs
    // nothing is not limited.
    assert_eq!(app.get("/").await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/gallery").await.status, StatusCode::OK);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn the_fourth_api_signature_in_a_minute_is_rate_limited() {
    let app = spawn_with(|c| c.sign_rate_per_minute = Some(3)).await;
    for i in 0..3 {
        let r = app.post_json("/api/presign", &presign_body()).await;
        assert_eq!(r.status, StatusCode::OK, "signature {i}: {}", r.body);
    }
    let r = app.post_json("/api/presign", &presign_body()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    let r = app.get(FRAG).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_rate_limit_signing_is_not_limited() {
    let app = spawn_with(|_| {}).await;
    for _ in 0..20 {
        assert_eq!(app.get(FRAG).await.status, StatusCode::OK);
    }
    app.handle.stop(false).await;
}

/// Found by the generated requests: a 405 for HEAD on the fragment, the confirmation page
/// and the gallery said `Allow: GET, HEAD`.
#[actix_web::test]
async fn a_405_never_advertises_the_refused_method() {
    let app = spawn_with(|_| {}).await;
    for path in ["/fragments/image-meta", "/uploaded", "/gallery"] {
        let r = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(
            r.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some("GET"),
            "{path}"
        );
    }
    let r = app.post_raw("/", "text/plain", "x").await;
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get("/api/presign").await;
    assert_eq!(r.header("allow"), Some("POST"));
    app.handle.stop(false).await;
}
