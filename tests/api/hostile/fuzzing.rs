//! Generated requests for every handler: whatever comes in, the answer follows the rules of
//! [`check`](super::check).

use std::cell::Cell;

use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::test as atest;
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use signpost::web::startup::app;

use super::{Answer, Env, Req, Watchdog, answer_in_time, cases, check, env, runner, send};
use crate::helpers::enc;

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
    let watchdog = Watchdog::start(handler);
    let result = runner().run(&strategy, |req| {
        sent.set(sent.get() + 1);
        let answer = answer_in_time(&sys, &watchdog, &req, send!(&svc, &req))?;
        let code = check(env, &req, &answer)?;
        *statuses
            .borrow_mut()
            .entry(format!("{} {code}", answer.status.as_u16()))
            .or_default() += 1;
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
