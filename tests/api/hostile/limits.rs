//! The request limits (query length and parameters, JSON body size and type), the signing
//! rate limit, and the 405s, through a real server.

use actix_web::http::StatusCode;
use bytes::Bytes;

use crate::helpers::{error_code, spawn_with};

/// The stable code of an error answer: JSON (`error.code`) or HTML (the alert's `data-code`).
fn code_of(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        return v["error"]["code"].as_str().unwrap_or("").to_owned();
    }
    error_code(body).unwrap_or_default()
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

/// The fragment for the `i`th file (a new file: a new name).
fn frag(i: usize) -> String {
    format!("/fragments/image-meta?filename=cat{i}.png&content_type=image%2Fpng&size=1000")
}

fn presign_body(i: usize) -> serde_json::Value {
    serde_json::json!({"filename": format!("cat{i}.png"), "content_type": "image/png", "size": 1000})
}

#[actix_web::test]
async fn the_fourth_fragment_in_a_minute_is_rate_limited() {
    let app = spawn_with(|c| c.sign_rate_per_minute = Some(3)).await;
    for i in 0..3 {
        let r = app.get(&frag(i)).await;
        assert_eq!(r.status, StatusCode::OK, "signature {i}: {}", r.body);
    }
    // Signing a file again (the page re-signs before a form expires) is not a new file.
    let r = app.get(&frag(0)).await;
    assert_eq!(r.status, StatusCode::OK, "a re-sign: {}", r.body);
    let r = app.get(&frag(3)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(code_of(&r.body), "rate_limited");
    assert!(r.body.contains("try again in"), "{}", r.body);
    // The budget is per client, shared by every way of signing.
    let r = app.post_json("/api/presign", &presign_body(4)).await;
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
        let r = app.post_json("/api/presign", &presign_body(i)).await;
        assert_eq!(r.status, StatusCode::OK, "signature {i}: {}", r.body);
    }
    let r = app.post_json("/api/presign", &presign_body(3)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    let r = app.get(&frag(4)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_rate_limit_signing_is_not_limited() {
    let app = spawn_with(|_| {}).await;
    for i in 0..20 {
        assert_eq!(app.get(&frag(i)).await.status, StatusCode::OK);
    }
    app.handle.stop(false).await;
}

/// A 405 lists what the resource takes, never the method it refused: HEAD on the fragment,
/// the confirmation page and the gallery gets `Allow: GET`.
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
