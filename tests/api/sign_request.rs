//! `POST /api/sign-request` (Uppy 6's `signRequest`) against the embedded store: a single
//! file through the POST policy it answers as `fields`, a multipart upload through the
//! presigned requests it answers, and everything it (or the store) refuses, with nothing
//! stored.

use awc::http::{Method, StatusCode};
use serde_json::{Value, json};
use signpost::testdata;

use crate::helpers::*;

const MIB: usize = 1024 * 1024;
/// What these tests allow: large enough for a multipart upload of three parts.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

async fn app() -> TestApp {
    spawn_with(|c| c.max_bytes = MAX_BYTES).await
}

/// Ask for a signature; the status and the answer.
async fn sign(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let r = app.post_json("/api/sign-request", body).await;
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

async fn signed(app: &TestApp, body: &Value) -> Value {
    let (status, v) = sign(app, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

/// The error code of a refused signature, after checking its status.
async fn refused(app: &TestApp, body: &Value, status: StatusCode) -> String {
    let (got, v) = sign(app, body).await;
    assert_eq!(got, status, "{v}");
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// Send what a browser sends to a presigned URL.
async fn send(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> (StatusCode, String, Option<String>) {
    let mut req = client().request(method, url);
    for (k, v) in headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req.send_body(body).await.unwrap();
    let bytes = resp.body().limit(1024 * 1024).await.unwrap();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned());
    (
        resp.status(),
        String::from_utf8_lossy(&bytes).into_owned(),
        etag,
    )
}

fn headers_of(answer: &Value) -> Vec<(String, String)> {
    answer["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn create_request(name: &str, content_type: &str, size: usize) -> Value {
    json!({"method": "POST", "key": "proposal-1", "filename": name, "content_type": content_type, "size": size})
}

/// Start a multipart upload: (key, upload id).
async fn start_multipart(app: &TestApp, name: &str, size: usize) -> (String, String) {
    let create = signed(app, &create_request(name, "image/png", size)).await;
    let (status, body, _) = send(
        Method::POST,
        create["url"].as_str().unwrap(),
        &headers_of(&create),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let upload_id = xml_text(&body, "UploadId").expect("an UploadId");
    (create["key"].as_str().unwrap().to_owned(), upload_id)
}

/// Sign and send part `n`: its ETag.
async fn put_part(app: &TestApp, key: &str, upload_id: &str, n: u32, bytes: &[u8]) -> String {
    let part = signed(
        app,
        &json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": n}),
    )
    .await;
    let (status, body, etag) = send(
        Method::PUT,
        part["url"].as_str().unwrap(),
        &[],
        bytes.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "part {n}: {body}");
    etag.expect("a part's ETag header")
}

fn complete_xml(etags: &[String]) -> String {
    let parts: String = etags
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{e}\"</ETag></Part>",
                i + 1
            )
        })
        .collect();
    format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
}

/// What the store holds under the upload prefix.
async fn stored(app: &TestApp) -> Vec<String> {
    let listing = app
        .store_client()
        .list("uploads/", None, 100)
        .await
        .unwrap();
    listing.objects.into_iter().map(|o| o.key).collect()
}

#[actix_web::test]
async fn a_single_file_gets_the_post_policy_as_fields_and_confirms_by_key_alone() {
    let app = app().await;
    let png = testdata::png(64, 48);
    let answer = signed(
        &app,
        &json!({"method": "PUT", "key": "b7c1-cat.png", "contentType": "image/png",
                "filename": "Crème brûlée.png", "size": png.len()}),
    )
    .await;
    let key = answer["key"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("uploads/") && key.ends_with("/Creme-brulee.png"),
        "{key}"
    );
    let fields = answer["fields"].as_object().expect("fields");
    assert_eq!(fields["key"], json!(key));
    assert_eq!(fields["Content-Type"], json!("image/png"));
    assert_eq!(fields["success_action_status"], json!("201"));
    assert_eq!(fields["x-amz-meta-owner"], json!("anonymous"));
    assert!(fields.contains_key("policy") && fields.contains_key("x-amz-signature"));
    let policy = policy_of(&api_fields(&answer));
    assert!(
        policy["conditions"].as_array().unwrap().contains(&json!([
            "content-length-range",
            1,
            MAX_BYTES
        ])),
        "{policy}"
    );

    let r = app
        .post_form(
            answer["url"].as_str().unwrap(),
            &api_fields(&answer),
            "cat.png",
            "image/png",
            &png,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Uppy's upload-success body, as it is.
    let location = format!("{}/{key}", answer["url"].as_str().unwrap());
    let c = app
        .post_json(
            "/api/uploads/confirm",
            &json!({"location": location, "key": key}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let c: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(c["filename"], json!("Crème brûlée.png"));
    assert_eq!(c["owner"], json!("anonymous"));
    assert_eq!(c["etag"], json!(etag_of(&r.body)));
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_single_file_of_another_type_or_over_the_limit_is_refused_and_nothing_stored() {
    let app = app().await;
    let put = |ct: &str, size: u64| json!({"method": "PUT", "key": "k", "contentType": ct, "filename": "a.png", "size": size});
    assert_eq!(
        refused(
            &app,
            &put("image/svg+xml", 10),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
        .await,
        "content_type_not_allowed"
    );
    assert_eq!(
        refused(
            &app,
            &put("image/png", MAX_BYTES + 1),
            StatusCode::PAYLOAD_TOO_LARGE
        )
        .await,
        "file_too_large"
    );
    // The integrator's content_type wins over Uppy's.
    let mut body = put("image/png", 10);
    body["content_type"] = json!("text/html");
    assert_eq!(
        refused(&app, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE).await,
        "content_type_not_allowed"
    );

    // A form signed for a PNG does not take another type, or more than the limit.
    let answer = signed(&app, &put("image/png", 100)).await;
    let url = answer["url"].as_str().unwrap();
    let mut other_type = api_fields(&answer);
    for (k, v) in &mut other_type {
        if k == "Content-Type" {
            *v = "image/gif".into();
        }
    }
    let r = app
        .post_form(url, &other_type, "a.gif", "image/gif", &testdata::gif())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("InvalidPolicyDocument"), "{}", r.body);
    let big = vec![0x89; MAX_BYTES as usize + 1];
    let r = app
        .post_form(url, &api_fields(&answer), "a.png", "image/png", &big)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("EntityTooLarge"), "{}", r.body);
    assert_eq!(stored(&app).await, Vec::<String>::new());
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_large_file_uploads_in_parts_under_pinned_headers_and_confirms() {
    let app = app().await;
    let png = testdata::png_uncompressed(1600, 1400);
    assert!((6 * MIB..=12 * MIB).contains(&png.len()), "{}", png.len());
    let create = signed(
        &app,
        &create_request("big photo.png", "image/png", png.len()),
    )
    .await;
    let headers = headers_of(&create);
    for pinned in [
        ("Content-Type", "image/png"),
        ("x-amz-meta-filename", "big photo.png"),
        ("x-amz-meta-owner", "anonymous"),
    ] {
        assert!(
            headers.contains(&(pinned.0.to_owned(), pinned.1.to_owned())),
            "{headers:?}"
        );
    }
    let url = create["url"].as_str().unwrap();
    assert!(
        url.contains("uploads") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    let signed_headers = url.split("X-Amz-SignedHeaders=").nth(1).unwrap();
    assert!(
        signed_headers.contains("content-type") && signed_headers.contains("x-amz-meta-owner"),
        "{url}"
    );
    let (status, body, _) = send(Method::POST, url, &headers, Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = create["key"].as_str().unwrap().to_owned();
    assert!(key.ends_with("/big-photo.png"), "{key}");
    let upload_id = xml_text(&body, "UploadId").unwrap();

    let mut etags = Vec::new();
    for (i, chunk) in png.chunks(5 * MIB).enumerate() {
        etags.push(put_part(&app, &key, &upload_id, i as u32 + 1, chunk).await);
    }
    assert_eq!(etags.len(), 2);
    // Uppy resumes by listing the parts.
    let list = signed(
        &app,
        &json!({"method": "GET", "key": key, "uploadId": upload_id}),
    )
    .await;
    let (status, body, _) = send(Method::GET, list["url"].as_str().unwrap(), &[], vec![]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.matches("<Part>").count(), 2, "{body}");

    let complete = signed(
        &app,
        &json!({"method": "POST", "key": key, "uploadId": upload_id}),
    )
    .await;
    let (status, body, _) = send(
        Method::POST,
        complete["url"].as_str().unwrap(),
        &[("content-type".into(), "application/xml".into())],
        complete_xml(&etags).into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Uppy needs the Location and the Key of the answer.
    assert!(
        xml_text(&body, "Location").is_some_and(|l| l.ends_with(&key)),
        "{body}"
    );
    assert_eq!(xml_text(&body, "Key").as_deref(), Some(key.as_str()));

    let c = app
        .post_json("/api/uploads/confirm", &json!({"key": key}))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let c: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(c["filename"], json!("big photo.png"));
    assert_eq!(c["owner"], json!("anonymous"));
    assert_eq!(c["size"], json!(png.len()));
    assert_eq!(
        (c["width"].clone(), c["height"].clone()),
        (json!(1600), json!(1400))
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_multipart_create_with_another_content_type_than_signed_is_refused() {
    let app = app().await;
    let create = signed(&app, &create_request("a.png", "image/png", 6 * MIB)).await;
    // Another type or owner than signed; or metadata or an ACL that nobody signed (AWS
    // refuses unsigned x-amz-* headers; so does the embedded store).
    for (name, value, why) in [
        ("Content-Type", "text/html", "SignatureDoesNotMatch"),
        ("x-amz-meta-owner", "admin", "SignatureDoesNotMatch"),
        ("x-amz-meta-link", "someone-elses", "not signed"),
        ("x-amz-acl", "public-read", "not signed"),
    ] {
        let mut headers = headers_of(&create);
        match headers.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.into(),
            None => headers.push((name.into(), value.into())),
        }
        let (status, body, _) = send(
            Method::POST,
            create["url"].as_str().unwrap(),
            &headers,
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}: {body}");
        assert!(body.contains(why), "{name}: {body}");
    }
    // Creates are signed only for allowed types, like single files.
    assert_eq!(
        refused(
            &app,
            &create_request("a.svg", "image/svg+xml", 6 * MIB),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        )
        .await,
        "content_type_not_allowed"
    );
    assert_eq!(stored(&app).await, Vec::<String>::new());
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn parts_past_the_declared_size_are_refused_at_complete_and_aborted() {
    let app = app().await;
    let declared = 6 * MIB;
    let (key, upload_id) = start_multipart(&app, "a.png", declared).await;
    // Part numbers are capped by the declared size (parts are at least 5 MiB): two here.
    assert_eq!(
        refused(
            &app,
            &json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 3}),
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "part_number_invalid"
    );
    let bytes = vec![7u8; 7 * MIB];
    put_part(&app, &key, &upload_id, 1, &bytes[..5 * MIB]).await;
    put_part(&app, &key, &upload_id, 2, &bytes[5 * MIB..]).await;
    assert_eq!(
        refused(
            &app,
            &json!({"method": "POST", "key": key, "uploadId": upload_id}),
            StatusCode::PAYLOAD_TOO_LARGE
        )
        .await,
        "parts_too_large"
    );
    // The upload is gone with its parts, and nothing was stored.
    let left = app
        .store_client()
        .list_parts(&key, &upload_id)
        .await
        .unwrap();
    assert_eq!(left, None);
    assert_eq!(stored(&app).await, Vec::<String>::new());
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn parts_and_completions_for_keys_signpost_did_not_issue_are_refused() {
    let app = app().await;
    let (key, upload_id) = start_multipart(&app, "a.png", 6 * MIB).await;
    // A single file's key, a renamed key, a key outside the prefix, no key.
    let single = signed(
        &app,
        &json!({"method": "PUT", "key": "k", "contentType": "image/png", "filename": "a.png", "size": 10}),
    )
    .await;
    let renamed = format!("{}b.png", key.strip_suffix("a.png").unwrap());
    let outside = key.replacen("uploads/", "other/", 1);
    for bad in [
        json!(single["key"]),
        json!(renamed),
        json!(outside),
        Value::Null,
    ] {
        for (method, n) in [
            ("PUT", json!(1)),
            ("POST", Value::Null),
            ("GET", Value::Null),
        ] {
            let body =
                json!({"method": method, "key": bad, "uploadId": upload_id, "partNumber": n});
            assert_eq!(
                refused(&app, &body, StatusCode::FORBIDDEN).await,
                "key_not_issued",
                "{body}"
            );
        }
    }
    // A key signpost issued, with another key's upload: the store refuses it.
    let (other_key, _) = start_multipart(&app, "b.png", 6 * MIB).await;
    let part = signed(
        &app,
        &json!({"method": "PUT", "key": other_key, "uploadId": upload_id, "partNumber": 1}),
    )
    .await;
    let (status, body, _) = send(
        Method::PUT,
        part["url"].as_str().unwrap(),
        &[],
        vec![1; 1024],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("NoSuchUpload"), "{body}");
    assert_eq!(stored(&app).await, Vec::<String>::new());
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_plain_delete_is_never_signed_and_an_abort_is() {
    let app = app().await;
    let (key, upload_id) = start_multipart(&app, "a.png", 6 * MIB).await;
    assert_eq!(
        refused(
            &app,
            &json!({"method": "DELETE", "key": key}),
            StatusCode::FORBIDDEN
        )
        .await,
        "delete_not_signed"
    );
    assert_eq!(
        refused(
            &app,
            &json!({"method": "GET", "key": key}),
            StatusCode::UNPROCESSABLE_ENTITY
        )
        .await,
        "request_not_signed"
    );
    let abort = signed(
        &app,
        &json!({"method": "DELETE", "key": key, "uploadId": upload_id}),
    )
    .await;
    let (status, body, _) = send(Method::DELETE, abort["url"].as_str().unwrap(), &[], vec![]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        app.store_client()
            .list_parts(&key, &upload_id)
            .await
            .unwrap(),
        None
    );
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn expired_urls_and_uploads_are_refused() {
    // Everything this app signs was signed an hour ago: its URLs (10 minutes) have expired.
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let app = spawn_full(
        |c| c.max_bytes = MAX_BYTES,
        signpost::upload::Clock::Fixed(past),
    )
    .await;
    let create = signed(&app, &create_request("a.png", "image/png", 6 * MIB)).await;
    let (status, body, _) = send(
        Method::POST,
        create["url"].as_str().unwrap(),
        &headers_of(&create),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("expired"), "{body}");
    let single = signed(
        &app,
        &json!({"method": "PUT", "key": "k", "contentType": "image/png", "filename": "a.png", "size": 10}),
    )
    .await;
    let r = app
        .post_form(
            single["url"].as_str().unwrap(),
            &api_fields(&single),
            "a.png",
            "image/png",
            &testdata::png(2, 2),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(stored(&app).await, Vec::<String>::new());
    app.handle.stop(false).await;

    // A multipart upload is continued only within --multipart-ttl of its start.
    let app = spawn_with(|c| {
        c.max_bytes = MAX_BYTES;
        c.multipart_ttl = "1s".into();
    })
    .await;
    let (key, upload_id) = start_multipart(&app, "a.png", 6 * MIB).await;
    let part = json!({"method": "PUT", "key": key, "uploadId": upload_id, "partNumber": 1});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (status, v) = sign(&app, &part).await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(v["error"]["code"], json!("upload_expired"), "{v}");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn every_request_needs_an_identity_and_the_create_pins_its_owner() {
    let app = spawn_with(|c| {
        c.max_bytes = MAX_BYTES;
        c.auth_header = Some("Remote-User".into());
        c.trusted_proxies = Some("127.0.0.1/32".into());
    })
    .await;
    let create = create_request("a.png", "image/png", 6 * MIB);
    let as_alice = |body: &Value| {
        app.client
            .post(app.url("/api/sign-request"))
            .insert_header(("Remote-User", "alice"))
            .send_json(body)
    };
    let mut r = as_alice(&create).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert!(
        headers_of(&answer).contains(&("x-amz-meta-owner".into(), "alice".into())),
        "{answer}"
    );
    // Without the proxy's header: nothing is signed, first request or not.
    assert_eq!(
        refused(&app, &create, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    let part = json!({"method": "PUT", "key": answer["key"], "uploadId": "x", "partNumber": 1});
    assert_eq!(
        refused(&app, &part, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    let r = as_alice(&part).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.handle.stop(false).await;
}

/// A completion that lists its parts wrongly (too small, out of order, missing) is refused as
/// S3 refuses it, and leaves the upload as it was: it is completed once its parts are right.
#[actix_web::test]
async fn a_completion_with_wrong_parts_is_refused_and_the_upload_kept() {
    let app = app().await;
    let (key, upload_id) = start_multipart(&app, "a.png", 12 * MIB).await;
    let mut etags = vec![
        put_part(&app, &key, &upload_id, 1, &vec![1u8; MIB]).await,
        put_part(&app, &key, &upload_id, 2, &vec![2u8; MIB]).await,
    ];
    let complete = signed(
        &app,
        &json!({"method": "POST", "key": key, "uploadId": upload_id}),
    )
    .await;
    let url = complete["url"].as_str().unwrap().to_owned();
    let finish = |xml: String| {
        let url = url.clone();
        async move {
            let xml_type = [("content-type".to_owned(), "application/xml".to_owned())];
            send(Method::POST, &url, &xml_type, xml.into_bytes()).await
        }
    };
    let part = |n: u32, etag: &str| {
        format!("<Part><PartNumber>{n}</PartNumber><ETag>\"{etag}\"</ETag></Part>")
    };
    let (status, body, _) = finish(complete_xml(&etags)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(xml_text(&body, "Code").as_deref(), Some("EntityTooSmall"));

    etags[0] = put_part(&app, &key, &upload_id, 1, &vec![1u8; 5 * MIB]).await;
    let swapped = format!(
        "<CompleteMultipartUpload>{}{}</CompleteMultipartUpload>",
        part(2, &etags[1]),
        part(1, &etags[0])
    );
    let missing = format!(
        "<CompleteMultipartUpload>{}{}{}</CompleteMultipartUpload>",
        part(1, &etags[0]),
        part(2, &etags[1]),
        part(3, &etags[1])
    );
    for (xml, code) in [
        (swapped, "InvalidPartOrder"),
        (missing, "InvalidPart"),
        (
            "<CompleteMultipartUpload></CompleteMultipartUpload>".to_owned(),
            "MalformedXML",
        ),
    ] {
        let (status, body, _) = finish(xml).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code}: {body}");
        assert_eq!(xml_text(&body, "Code").as_deref(), Some(code), "{body}");
    }

    // The upload is still there, parts and all, and completes.
    let parts = app
        .store_client()
        .list_parts(&key, &upload_id)
        .await
        .unwrap();
    assert!(parts.is_some(), "the refused completions ended the upload");
    let (status, body, _) = finish(complete_xml(&etags)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let head = app.store_client().head(&key).await.unwrap().unwrap();
    assert_eq!(head.size, 6 * MIB as u64);
}
