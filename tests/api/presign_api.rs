//! The JSON API: `POST /api/presign` signs an upload (the same fields as `signpost presign`),
//! `POST /api/uploads/confirm` confirms one; every invalid request gets its status and code.

use crate::helpers::*;
use awc::http::StatusCode;
use bytes::Bytes;
use signpost::testdata;
use signpost::upload::{Clock, UploadId};

#[actix_web::test]
async fn the_api_signs_uploads_that_land_with_the_signed_metadata() {
    let app = spawn_app().await;
    let png = testdata::png(8, 5);
    let p = app
        .presign("Café.png", "image/png", png.len(), Some((8, 5)))
        .await;
    assert_eq!(p["method"], "POST");
    assert!(p["url"].as_str().unwrap().ends_with("/signpost"));
    assert!(p["expires_at"].as_str().unwrap().ends_with('Z'));
    let fields = p["fields"].as_object().unwrap();
    assert_eq!(fields["success_action_status"], "201");
    assert_eq!(fields["Content-Type"], "image/png");
    assert_eq!(fields["x-amz-meta-width"], "8");
    // Field order is form order (checked on the raw text: a JSON map has no order).
    let raw = app
        .post_json(
            "/api/presign",
            &serde_json::json!({"filename": "o.png", "content_type": "image/png", "size": 3}),
        )
        .await
        .body;
    let fields_text = raw
        .split_once("\"fields\":{")
        .and_then(|(_, rest)| rest.split_once('}'))
        .expect("a fields object")
        .0;
    assert!(fields_text.starts_with("\"key\":"), "{fields_text}");
    let order = [
        "\"key\"",
        "\"Content-Type\"",
        "\"success_action_status\"",
        "\"x-amz-meta-filename\"",
        "\"x-amz-algorithm\"",
        "\"policy\"",
        "\"x-amz-signature\"",
    ];
    let at: Vec<usize> = order.iter().map(|n| fields_text.find(n).unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{fields_text}");

    // Strings with JSON escapes are decoded (the body is read as bytes and plain strings
    // borrowed from it; these cannot be), and `+json` types and parameters are JSON too.
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.signpost+json",
    ] {
        let r = app
            .post_raw(
                "/api/presign",
                ct,
                r#"{"filename":"Caf\u00e9 \"1\".png","content_type":"image\/png","size":3}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{ct}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["fields"]["Content-Type"], "image/png", "{ct}");
        assert_eq!(
            v["fields"]["x-amz-meta-filename"],
            signpost::upload::encode_metadata("Café \"1\".png").as_ref(),
            "{ct}"
        );
        assert!(
            v["key"].as_str().unwrap().ends_with("/Cafe-1.png"),
            "{}",
            v["key"]
        );
    }
    for ct in ["application/jsonx", "json", "/json", "text/plain; a=json"] {
        let r = app.post_raw("/api/presign", ct, "{}").await;
        assert_eq!(
            r.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{ct}: {}",
            r.body
        );
    }

    let (key, etag) = app.upload_via_api("Café.png", &png, Some((8, 5))).await;
    let r = app
        .post_json(
            "/api/uploads/confirm",
            &serde_json::json!({"key": key, "etag": etag}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(c["filename"], "Café.png");
    assert_eq!(
        (c["width"].as_u64(), c["height"].as_u64()),
        (Some(8), Some(5))
    );
    assert_eq!(c["content_type"], "image/png");
    assert_eq!(c["size"].as_u64(), Some(png.len() as u64));
    assert!(c["url"].as_str().unwrap().starts_with("/uploaded?"));
}

#[actix_web::test]
async fn each_invalid_request_gets_its_code() {
    let app = spawn_app().await;
    let json = |v: serde_json::Value| v;
    let cases = [
        (
            json(serde_json::json!({"content_type": "image/png", "size": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "filename_missing",
        ),
        (
            json(
                serde_json::json!({"filename": "a.svg", "content_type": "image/svg+xml", "size": 1}),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type_not_allowed",
        ),
        (
            json(
                serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": 999_999_999}),
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
        ),
        (
            json(serde_json::json!({"filename": "a.png", "content_type": "image/png"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "size_missing",
        ),
        (
            json(serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "file_empty",
        ),
        (
            json(
                serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": 1, "width": 0, "height": 1}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dimensions_invalid",
        ),
        (
            json(serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": -1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "json_invalid",
        ),
        (
            json(
                serde_json::json!({"filename": "a.png", "content_type": "image/png", "size": 1, "bucket": "other"}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "json_invalid",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post_json("/api/presign", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10);
    }
    let r = app
        .post_raw("/api/presign", "text/plain", "filename=a.png")
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.body.contains("\"unsupported_media_type\""));
    let r = app
        .post_raw("/api/presign", "application/json", "{not json")
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("\"json_invalid\""));
    let big = format!("{{\"filename\": \"{}\"}}", "a".repeat(20 * 1024));
    let r = app.post_raw("/api/presign", "application/json", big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.contains("\"body_too_large\""));
    let r = app
        .post_json(
            "/api/uploads/confirm",
            &serde_json::json!({"key": "elsewhere/x.png", "etag": "abc"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("\"key_outside_prefix\""));
}

#[actix_web::test]
async fn the_cli_and_the_api_sign_identical_fields() {
    let at = chrono::Utc::now();
    let app = spawn_full(|_| {}, Clock::Fixed(at)).await;
    let body = serde_json::json!({"filename": "same.png", "content_type": "image/png", "size": 1234, "width": 3, "height": 2});
    let api = app.post_json("/api/presign", &body).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);

    let mut config = test_config(app.dir.path());
    config.bind = app.addr;
    config.embedded_s3_bind = app.s3_addr.unwrap();
    let settings = signpost::config::Settings::from_config(config, None, None).unwrap();
    let args = signpost::config::PresignArgs {
        filename: "same.png".into(),
        content_type: "image/png".into(),
        size: Some(1234),
        width: Some(3),
        height: Some(2),
        owner: "anonymous".into(),
    };
    let cli = signpost::cli::presign::presign(&settings, &args, Clock::Fixed(at)).unwrap();
    assert_eq!(cli, api.body, "identical input and time, identical fields");
    // And with the real clock the key differs, as it should.
    let other = signpost::cli::presign::presign(&settings, &args, Clock::System).unwrap();
    assert_ne!(other, api.body);
}

#[test]
fn the_cli_never_invents_credentials_for_the_embedded_store() {
    // A data dir the store never ran with: signing with fresh keys would only make every
    // upload fail, so `signpost presign` says which data dir to use instead.
    let dir = tempfile::tempdir().unwrap();
    let settings =
        signpost::config::Settings::from_config(test_config(dir.path()), None, None).unwrap();
    let args = signpost::config::PresignArgs {
        filename: "a.png".into(),
        content_type: "image/png".into(),
        size: Some(10),
        width: None,
        height: None,
        owner: "anonymous".into(),
    };
    let e = signpost::cli::presign::presign(&settings, &args, Clock::System).unwrap_err();
    assert!(e.contains("--data-dir"), "{e}");
    assert!(!signpost::store::embedded::credentials_path(dir.path()).exists());
}

/// A well-formed key outside the key prefix (an id of the shape signpost makes, under another
/// prefix) is refused before the store is asked: the confirmation page and the API answer 400
/// `key_outside_prefix`, and an object stored under that key stays untouched. It is no image,
/// so a confirmation that read it would have deleted it, as it does inside the prefix.
#[actix_web::test]
async fn a_well_formed_key_outside_the_prefix_is_refused_and_left_alone() {
    let app = spawn_app().await;
    let id = UploadId::random(chrono::Utc::now());
    let inside = format!("uploads/{id}/x.png");
    let outside = format!("other/{id}/x.png");
    signpost::store::parse_key(&app.settings.prefix, &inside).expect("a key signpost makes");
    let client = app.store_client();
    let bytes = Bytes::from_static(b"not an image, though stored as image/png");
    for key in [&inside, &outside] {
        client.put(key, bytes.clone(), "image/png").await.unwrap();
    }
    let etag = client.head(&outside).await.unwrap().expect("stored").etag;

    let page = app.get(&uploaded_path(&outside, &etag)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert_eq!(
        error_code(&page.body).as_deref(),
        Some("key_outside_prefix"),
        "{}",
        page.body
    );
    let api = app
        .post_json(
            "/api/uploads/confirm",
            &serde_json::json!({"key": outside, "etag": etag}),
        )
        .await;
    assert_eq!(api.status, StatusCode::BAD_REQUEST, "{}", api.body);
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["error"]["code"], "key_outside_prefix", "{}", api.body);

    let head = client.head(&outside).await.unwrap().expect("still stored");
    assert_eq!(head.etag, etag);
    let stored = client
        .get(&outside, 1024)
        .await
        .unwrap()
        .expect("still stored");
    assert_eq!(stored, bytes);

    // The same object under the prefix is read, found to be no image, and deleted (by the
    // background sweep: a page deletes nothing).
    let page = app.get(&uploaded_path(&inside, &etag)).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    app.wait_until_gone(&inside).await;
}
