//! No input widens the signed policy: whatever the fragment or the API is asked, what it signs
//! is exactly the key, type, name, size range and redirect signpost means to sign.

use std::cell::Cell;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::test as atest;
use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestCaseResult};
use signpost::config::SignatureArg;
use signpost::upload::{ImageType, UploadRequest, encode_metadata};
use signpost::web::startup::app;

use super::{Env, PUBLIC, Req, Watchdog, answer_in_time, check, env, runner, send, shorten};
use crate::helpers::{enc, fragment_fields};

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
        // Requests here come with no identity, on loopback: anonymous.
        ("x-amz-meta-owner", "anonymous".to_owned()),
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
            owner: None,
            alt: None,
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
    let watchdog = Watchdog::start(if api {
        "policy via the API"
    } else {
        "policy via the fragment"
    });
    let result = runner().run(&ask(env), |a| {
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
        let answer = answer_in_time(&sys, &watchdog, &req, send!(&svc, &req))?;
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
