//! What "confirmed" means: an upload shows only once its bytes were verified and its record
//! written. Pixel bombs and broken files are refused and deleted; an upload whose browser
//! never came back is verified by the background sweep; one object the store cannot read
//! affects only itself; uploads stored before records existed are backfilled.

use std::time::{Duration, Instant};

use crate::helpers::*;
use awc::http::StatusCode;
use bytes::Bytes;
use signpost::store::records::record_key;
use signpost::testdata;

/// The API's error code and message.
fn api_error(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    (
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Upload `bytes` as a PNG through the API's fields, unconfirmed; returns (key, etag).
async fn upload_png_bytes(app: &TestApp, name: &str, bytes: &[u8]) -> (String, String) {
    app.upload_via_api(name, bytes, None).await
}

async fn has_record(app: &TestApp, key: &str) -> bool {
    app.store_client()
        .head(&record_key(key))
        .await
        .unwrap()
        .is_some()
}

/// Wait (up to 10 s) for the sweep to write the record of `key`.
async fn wait_for_record(app: &TestApp, key: &str) {
    let start = Instant::now();
    while !has_record(app, key).await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no record for {key} after 10 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Let the sweep's first pass (at start) finish, so that what a test stores next waits for
/// a wake-up or the interval.
async fn let_the_first_sweep_pass(app: &TestApp) {
    let cp = app
        .dir
        .path()
        .join(signpost::sweep::checkpoint::CHECKPOINT_FILE);
    let start = Instant::now();
    while !cp.exists() {
        assert!(start.elapsed() < Duration::from_secs(5), "no first sweep");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
}

#[actix_web::test]
async fn a_pixel_bomb_is_refused_and_deleted() {
    let app = spawn_app().await;
    // A few kilobytes whose header claims 100000 × 100000 pixels.
    let bomb = testdata::png_claiming(100_000, 100_000);
    let (key, etag) = upload_png_bytes(&app, "bomb.png", &bomb).await;
    let r = app.confirm(&key, &etag).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let (code, message) = api_error(&r.body);
    assert_eq!(code, "not_an_image");
    assert!(
        message.contains("100000 × 100000") && message.contains("50000000 pixels"),
        "{message}"
    );
    assert!(message.contains("was deleted"), "{message}");
    assert_eq!(app.store_client().head(&key).await.unwrap(), None);
    assert!(!has_record(&app, &key).await);
    let gallery = app.get("/gallery").await;
    assert_eq!(Doc::page(&gallery.body).count("li.card"), 0);
}

#[actix_web::test]
async fn a_truncated_png_is_refused_and_deleted() {
    let app = spawn_app().await;
    let png = testdata::png(64, 48);
    for (name, cut) in [
        ("cut-end.png", png.len() - 12),
        ("cut-half.png", png.len() / 2),
    ] {
        let (key, etag) = upload_png_bytes(&app, name, &png[..cut]).await;
        let r = app.confirm(&key, &etag).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let (code, message) = api_error(&r.body);
        assert_eq!(code, "not_an_image");
        assert!(message.contains("broken"), "{message}");
        assert_eq!(app.store_client().head(&key).await.unwrap(), None, "{name}");
    }
    // The whole file is fine.
    let (key, etag) = upload_png_bytes(&app, "whole.png", &png).await;
    let r = app.confirm(&key, &etag).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(has_record(&app, &key).await);
}

#[actix_web::test]
async fn an_upload_whose_browser_never_came_back_is_verified_by_the_sweep() {
    // No events configured: the sweep runs anyway.
    let app = spawn_with(|c| c.notify_sweep_secs = 1).await;
    let (good, _) = upload_png_bytes(&app, "good.png", &testdata::png(5, 5)).await;
    let (bad, _) = upload_png_bytes(&app, "bad.png", b"<svg onload=alert(1)>").await;
    wait_for_record(&app, &good).await;
    app.wait_until_gone(&bad).await;
    assert!(!has_record(&app, &bad).await);
    let gallery = app.get("/gallery").await;
    let doc = Doc::page(&gallery.body);
    assert_eq!(doc.count("li.card"), 1, "{}", gallery.body);
    assert!(gallery.body.contains("good.png"));
}

/// The sweep confirms uploads as they land, so it may delete a bad one before its browser
/// comes back: the browser then hears why (422 `not_an_image`, "was deleted"), on the page
/// and through the API, not that the upload cannot be found.
#[actix_web::test]
async fn a_browser_that_comes_back_after_the_sweep_deleted_its_file_hears_why() {
    let app = spawn_with(|c| c.notify_sweep_secs = 1).await;
    let (bad, etag) = upload_png_bytes(&app, "bad.png", b"<svg onload=alert(1)>").await;
    app.wait_until_gone(&bad).await;
    let r = app.confirm(&bad, &etag).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let (code, message) = api_error(&r.body);
    assert_eq!(code, "not_an_image");
    assert!(message.contains("was deleted"), "{message}");
    let page = app
        .get(&format!(
            "/uploaded?bucket=signpost&key={}&etag=%22{etag}%22",
            enc(&bad)
        ))
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("was deleted"), "{}", page.body);
    // A well-formed key that nobody uploaded is still simply not found.
    let other = bad.replace("bad.png", "other.png");
    let r = app.confirm(&other, &etag).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(api_error(&r.body).0, "upload_not_found");
}

#[actix_web::test]
async fn the_gallery_shows_confirmed_uploads_only() {
    let app = spawn_with(|c| c.notify_sweep_secs = 3600).await;
    let_the_first_sweep_pass(&app).await;
    let (key, etag) = upload_png_bytes(&app, "waiting.png", &testdata::png(4, 4)).await;
    let gallery = app.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK);
    assert_eq!(
        Doc::page(&gallery.body).count("li.card"),
        0,
        "not confirmed yet: {}",
        gallery.body
    );
    let page = app.get(&uploaded_path(&key, &etag)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let gallery = app.get("/gallery").await;
    assert!(gallery.body.contains("waiting.png"), "{}", gallery.body);
}

#[actix_web::test]
async fn an_unreadable_object_leaves_the_gallery_up_with_the_others_listed() {
    let app = spawn_app().await;
    let mut keys = Vec::new();
    for name in ["one.png", "two.png", "three.png"] {
        keys.push(
            app.upload_confirmed(name, &testdata::png(3, 3), None)
                .await
                .0,
        );
    }
    // The object of "two.png" cannot be read any more (every GET and HEAD answers 500); the
    // gallery reads records, not objects, and lists it from its record. The record of
    // "three.png" cannot be read either: that one is skipped.
    app.break_object(&keys[1]);
    app.break_object(&record_key(&keys[2]));
    let head = app.store_client().head(&keys[1]).await;
    assert!(head.is_err(), "the store fails that object: {head:?}");
    let rec = app.store_client().get(&record_key(&keys[2]), 65536).await;
    assert!(rec.is_err(), "the store fails that record: {rec:?}");

    // This instance knows the three records (its cache: a record never changes for its
    // ETag); another, which has to read them, skips the one it cannot read.
    let gallery = app.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK, "{}", gallery.body);
    for name in ["one.png", "two.png", "three.png"] {
        assert!(gallery.body.contains(name), "{name}: {}", gallery.body);
    }
    let other = spawn_beside(&app, &format!("http://{}", app.s3_addr.unwrap()), |_| {}).await;
    let gallery = other.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK, "{}", gallery.body);
    assert!(gallery.body.contains("one.png"), "{}", gallery.body);
    assert!(gallery.body.contains("two.png"), "{}", gallery.body);
    assert!(!gallery.body.contains("three.png"));
    other.handle.stop(false).await;
    // A page request deleted nothing.
    let listed = app.store_client().list("uploads/", None, 10).await.unwrap();
    assert_eq!(listed.objects.len(), 3);
}

#[actix_web::test]
async fn uploads_stored_before_records_existed_are_backfilled() {
    let app = spawn_app().await;
    let client = app.store_client();
    // Stored the way an older signpost left them: no records, and ids without a time (which
    // the sweep, reading newest first, never reaches).
    let mut old = Vec::new();
    for (i, bytes) in [testdata::png(6, 4), testdata::png(2, 9)]
        .iter()
        .enumerate()
    {
        let key = format!("uploads/{}/old{i}.png", uuid::Uuid::new_v4());
        client
            .put(&key, Bytes::from(bytes.clone()), "image/png")
            .await
            .unwrap();
        old.push(key);
    }
    let liar = format!("uploads/{}/liar.png", uuid::Uuid::new_v4());
    client
        .put(&liar, Bytes::from_static(b"not a png"), "image/png")
        .await
        .unwrap();
    assert_eq!(
        Doc::page(&app.get("/gallery").await.body).count("li.card"),
        0
    );

    // As on the first start of the new version: no marker yet.
    client
        .delete(&signpost::sweep::backfill::marker_key())
        .await
        .unwrap();
    let backfill = signpost::sweep::backfill::Backfill {
        client: app.store_client(),
        verifier: signpost::store::Verifier::for_settings(&app.settings),
    };
    let summary = backfill.once().await.unwrap().expect("a backfill to do");
    assert_eq!((summary.confirmed, summary.refused), (2, 1), "{summary:?}");
    for key in &old {
        assert!(has_record(&app, key).await, "{key}");
        let thumbs = client
            .list(&format!("thumbs/{key}/"), None, 10)
            .await
            .unwrap();
        assert_eq!(thumbs.objects.len(), 1, "{key}: {thumbs:?}");
    }
    assert_eq!(client.head(&liar).await.unwrap(), None, "deleted");
    let gallery = app.get("/gallery").await;
    assert_eq!(
        Doc::page(&gallery.body).count("li.card"),
        2,
        "{}",
        gallery.body
    );
    // Done once: the marker says so.
    assert!(backfill.once().await.unwrap().is_none());
}

#[actix_web::test]
async fn records_from_before_thumbnails_get_them_on_the_next_start() {
    let app = spawn_app().await;
    let (key, _) = app
        .upload_confirmed("old.png", &testdata::png(900, 600), None)
        .await;
    // As an older signpost left it: a version 1 record, no thumbnails, a version 1 marker.
    let client = app.store_client();
    let rk = record_key(&key);
    let mut record: serde_json::Value =
        serde_json::from_slice(&client.get(&rk, 65536).await.unwrap().unwrap()).unwrap();
    for t in record["thumbnails"].as_array().unwrap().clone() {
        client.delete(t["key"].as_str().unwrap()).await.unwrap();
    }
    record["version"] = 1.into();
    record.as_object_mut().unwrap().remove("thumbnails");
    client
        .put(&rk, Bytes::from(record.to_string()), "application/json")
        .await
        .unwrap();
    let marker = signpost::sweep::backfill::marker_key();
    client
        .put(
            &marker,
            Bytes::from_static(br#"{"confirmed":1,"refused":0,"set_aside":0,"completed_at":"2026-01-01T00:00:00.000Z"}"#),
            "application/json",
        )
        .await
        .unwrap();

    // The next start (another instance here) backfills the thumbnails.
    let other = spawn_beside(&app, &format!("http://{}", app.s3_addr.unwrap()), |c| {
        c.notify_sweep_secs = 3600;
    })
    .await;
    let start = std::time::Instant::now();
    loop {
        let m: serde_json::Value =
            serde_json::from_slice(&client.get(&marker, 65536).await.unwrap().unwrap()).unwrap();
        if m["version"] == 2 {
            break;
        }
        assert!(start.elapsed().as_secs() < 20, "no backfill: {m}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record: serde_json::Value =
        serde_json::from_slice(&client.get(&rk, 65536).await.unwrap().unwrap()).unwrap();
    assert_eq!(record["version"], 2);
    assert_eq!(
        record["thumbnails"].as_array().map(Vec::len),
        Some(2),
        "{record}"
    );
    let gallery = other.get("/gallery").await;
    let src = Doc::page(&gallery.body).attr("li.card img", "src").unwrap();
    assert!(src.contains("/thumbs/uploads/"), "{src}");
    other.handle.stop(false).await;
}
