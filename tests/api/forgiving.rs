//! Uploads that forgive: a type picked wrong (the no-script form's default, say) is a hint,
//! corrected at confirmation by a copy inside the store; descriptions for screen readers
//! (`x-amz-meta-alt`) from the form, the fragment and the API reach the record, the pages,
//! the API and the events.

use awc::http::StatusCode;
use serde_json::{Value, json};
use signpost::testdata;

use crate::helpers::browser::Browser;
use crate::helpers::*;

/// The `key` of an `/uploaded?…` location.
fn key_of(app: &TestApp, location: &str) -> String {
    url::Url::parse(&app.url(location))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .expect("the key in the redirect")
}

/// Post the first page's form (what a browser without JavaScript sends) with `file`,
/// overriding the fields in `set`; the store's redirect location.
async fn post_page_form(app: &TestApp, set: &[(&str, &str)], name: &str, file: &[u8]) -> String {
    let page = app.get("/").await;
    let (action, mut fields) = page_form(&page.body);
    for (name, value) in set {
        let f = fields
            .iter_mut()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("the form has no {name} field"));
        f.1 = (*value).to_owned();
    }
    // The browser names the part's own type; S3 uses the Content-Type field.
    let r = app
        .post_form(&action, &fields, name, "image/png", file)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.header("location").unwrap().to_owned()
}

#[actix_web::test]
async fn a_png_posted_with_the_no_script_jpeg_default_is_kept_as_png() {
    let app = spawn_app().await;
    let png = testdata::png(40, 30);
    let page = app.get("/").await;
    let (_, fields) = page_form(&page.body);
    let declared = fields.iter().find(|(n, _)| n == "Content-Type").unwrap();
    assert_eq!(declared.1, "image/jpeg", "the form's default type");

    let location =
        post_page_form(&app, &[("x-amz-meta-alt", "A red square")], "red.png", &png).await;
    let key = key_of(&app, &location);
    let page = app.get(&location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let doc = Doc::page(&page.body);
    let note = doc.text("#corrected").unwrap_or_default();
    assert!(
        note.contains("image/jpeg") && note.contains("image/png"),
        "{note}"
    );
    assert_eq!(
        doc.attr("#uploadedImage", "alt").as_deref(),
        Some("A red square")
    );

    // The store serves it as PNG, with every header and field it had kept.
    let head = app.store_client().head(&key).await.unwrap().expect("kept");
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    assert!(
        head.kept
            .contains(&("content-disposition".into(), "attachment".into())),
        "{:?}",
        head.kept
    );
    assert_eq!(
        head.metadata.get("owner").map(String::as_str),
        Some("anonymous")
    );
    assert_eq!(
        head.metadata.get("alt").map(String::as_str),
        Some("A red square")
    );
    let served = app.get(&app.image_urls().original(&key, "image/png")).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("content-type"), Some("image/png"));
    assert_eq!(&served.bytes[..], &png[..], "the bytes are untouched");

    // The record carries the copy's ETag: the gallery shows it at once, described.
    let gallery = app.get("/gallery").await;
    assert_eq!(
        Doc::page(&gallery.body)
            .attr("li.card img", "alt")
            .as_deref(),
        Some("A red square"),
        "{}",
        gallery.body
    );
    let c = app
        .post_json("/api/uploads/confirm", &json!({ "key": key }))
        .await;
    let v: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["content_type"], "image/png");
    assert_eq!(v["corrected_from"], "image/jpeg");
    assert_eq!(v["etag"], head.etag.as_str());
}

/// A GIF signed and sent as a PNG, confirmed through the API: its key and the answer.
async fn gif_sent_as_png(app: &TestApp) -> (String, Value) {
    let gif = testdata::gif();
    let p = app.presign("anim.png", "image/png", gif.len(), None).await;
    let r = app.post_presigned(&p, "anim.png", "image/png", &gif).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key = p["key"].as_str().unwrap().to_owned();
    let c = app.confirm(&key, &etag_of(&r.body)).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    (key, serde_json::from_str(&c.body).unwrap())
}

#[actix_web::test]
async fn another_allowed_type_is_corrected_through_the_api_and_its_bytes_kept() {
    let app = spawn_app().await;
    let (key, v) = gif_sent_as_png(&app).await;
    let key = key.as_str();
    assert_eq!(v["content_type"], "image/gif");
    assert_eq!(v["corrected_from"], "image/png");
    let head = app.store_client().head(key).await.unwrap().unwrap();
    assert_eq!(head.content_type.as_deref(), Some("image/gif"));
    assert_eq!(
        head.metadata.get("filename").map(String::as_str),
        Some("anim.png")
    );
    // Confirmed again, from its record: the same answer.
    let again = app.confirm(key, &head.etag).await;
    let w: Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(
        (w["content_type"].clone(), w["corrected_from"].clone()),
        (v["content_type"].clone(), v["corrected_from"].clone())
    );
}

/// On stores where a copy gets a new ETag (multipart uploads, encrypted buckets), the copy
/// that corrects a type leaves the browser with an ETag the object no longer has: the record
/// keeps it, and a confirmation that carries it is still this upload's.
#[actix_web::test]
async fn a_confirmation_with_the_etag_from_before_a_correcting_copy_is_this_uploads() {
    use signpost::store::records;
    use signpost::upload::ObjectKey;

    let app = spawn_app().await;
    let (key, _) = gif_sent_as_png(&app).await;
    let key = key.as_str();
    // The embedded store keeps the ETag through a copy; stand in a store that changes it:
    // the browser holds one the object does not have.
    let client = app.store_client();
    let object = ObjectKey::parse(&app.settings.prefix, key).unwrap();
    let mut record = records::read(&client, &app.settings.prefix, &object)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.uploaded_etag, None, "the embedded store kept it");
    let held = "0cc175b9c0f1b6a831c399e269772661-2";
    record.uploaded_etag = Some(held.to_owned());
    records::write(&client, &record).await.unwrap();
    // Another instance, which has not cached the record.
    let other = spawn_beside(&app, &format!("http://{}", app.s3_addr.unwrap()), |_| {}).await;
    let c = other.confirm(key, held).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let v: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(
        v["etag"],
        record.etag.as_str(),
        "it answers the object's own ETag"
    );
    let page = other.get(&uploaded_path(key, held)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Any other ETag is still another version.
    let c = other.confirm(key, "92eb5ffee6ae2fec3ad71c777531578f").await;
    assert_eq!(c.status, StatusCode::CONFLICT, "{}", c.body);
    other.handle.stop(false).await;
}

#[actix_web::test]
async fn a_correction_never_copies_over_a_newer_version() {
    let app = spawn_app().await;
    let (gif, png) = (testdata::gif(), testdata::png(8, 8));
    let p = app
        .presign("x.png", "image/png", gif.len().max(png.len()), None)
        .await;
    let first = app.post_presigned(&p, "x.png", "image/png", &gif).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let key = p["key"].as_str().unwrap();
    let client = app.store_client();
    let stale = client.head(key).await.unwrap().unwrap();
    // The same signed form, posted again with other bytes (within its lifetime).
    let second = app.post_presigned(&p, "x.png", "image/png", &png).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(
        client
            .retype_in_place(key, &stale, "image/gif", None)
            .await
            .unwrap(),
        None,
        "x-amz-copy-source-if-match refuses the copy"
    );
    let now = client.head(key).await.unwrap().unwrap();
    assert_eq!(now.content_type.as_deref(), Some("image/png"));
    assert_eq!(now.etag, etag_of(&second.body));
}

#[actix_web::test]
async fn bytes_that_are_no_allowed_image_are_still_deleted() {
    let app = spawn_app().await;
    let svg = testdata::svg_script();
    let location = post_page_form(&app, &[("Content-Type", "image/png")], "x.png", &svg).await;
    let page = app.get(&location).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(
        page.body.contains("not an image signpost accepts"),
        "{}",
        page.body
    );
    app.wait_until_gone(&key_of(&app, &location)).await;

    // A GIF where only JPEG and PNG are allowed is refused, not corrected.
    let app = spawn_with(|c| c.allowed_types = vec!["image/jpeg".into(), "image/png".into()]).await;
    let gif = testdata::gif();
    let p = app.presign("a.png", "image/png", gif.len(), None).await;
    let r = app.post_presigned(&p, "a.png", "image/png", &gif).await;
    let c = app
        .confirm(p["key"].as_str().unwrap(), &etag_of(&r.body))
        .await;
    assert_eq!(c.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", c.body);
    assert!(
        c.body.contains("GIF image, which signpost does not accept"),
        "{}",
        c.body
    );
}

#[actix_web::test]
async fn a_description_is_signed_exactly_and_reaches_every_reader() {
    let app = spawn_app().await;
    let png = testdata::png(20, 10);
    let alt = "Two red boxes, one “bigger”";
    let body = json!({"filename": "IMG_2041.png", "content_type": "image/png", "size": png.len(), "alt": format!("  {alt} ")});
    let r = app.post_json("/api/presign", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let p: Value = serde_json::from_str(&r.body).unwrap();
    let signed = p["fields"]["x-amz-meta-alt"].as_str().unwrap().to_owned();
    assert_eq!(signpost::upload::decode_metadata(&signed), alt);

    // Another description than the signed one is refused by the store.
    let mut fields = api_fields(&p);
    for f in &mut fields {
        if f.0 == "x-amz-meta-alt" {
            f.1 = "Something else".into();
        }
    }
    let forged = app
        .post_form(
            p["url"].as_str().unwrap(),
            &fields,
            "IMG_2041.png",
            "image/png",
            &png,
        )
        .await;
    assert!(forged.status.is_client_error(), "{}", forged.body);
    assert!(forged.body.contains("x-amz-meta-alt"), "{}", forged.body);

    let up = app
        .post_presigned(&p, "IMG_2041.png", "image/png", &png)
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.body);
    let key = p["key"].as_str().unwrap();
    let c = app.confirm(key, &etag_of(&up.body)).await;
    let v: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["alt"], alt);
    assert_eq!(v["corrected_from"], Value::Null);
    let gallery = app.get("/gallery").await;
    assert_eq!(
        Doc::page(&gallery.body)
            .attr("li.card img", "alt")
            .as_deref(),
        Some(alt)
    );

    // Without one, the text says what it is, not "IMG_2041.png".
    let (k2, e2) = app.upload_via_api("IMG_2042.png", &png, None).await;
    let c = app.confirm(&k2, &e2).await;
    let v: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["alt"], "PNG image, 20 × 10");
}

#[actix_web::test]
async fn a_description_that_is_not_one_short_line_is_refused_before_signing() {
    let app = spawn_app().await;
    for bad in ["a".repeat(251), "two\nlines".into()] {
        let body =
            json!({"filename": "a.png", "content_type": "image/png", "size": 10, "alt": bad});
        let r = app.post_json("/api/presign", &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("\"alt_invalid\""), "{}", r.body);
        let q = format!(
            "/fragments/image-meta?filename=a.png&content_type=image%2Fpng&size=10&alt={}",
            enc(&bad)
        );
        let f = app.get(&q).await;
        assert_eq!(f.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", f.body);
        assert_eq!(error_code(&f.body).as_deref(), Some("alt_invalid"));
    }
    // The fragment pins a good one in a hidden field.
    let f = app
        .get("/fragments/image-meta?filename=a.png&content_type=image%2Fpng&size=10&alt=A%20cat")
        .await;
    let fields = fragment_fields(&f.body);
    assert!(
        fields.contains(&("x-amz-meta-alt".into(), "A cat".into())),
        "{fields:?}"
    );
}

#[actix_web::test]
async fn a_no_script_description_in_any_script_is_kept_and_a_bad_one_ignored() {
    let app = spawn_app().await;
    let png = testdata::png(10, 10);
    let location = post_page_form(
        &app,
        &[
            ("Content-Type", "image/png"),
            ("x-amz-meta-alt", "Café au lait, 東京"),
        ],
        "cafe.png",
        &png,
    )
    .await;
    let page = app.get(&location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        Doc::page(&page.body).text("#alt").as_deref(),
        Some("Café au lait, 東京")
    );

    // 300 characters (the form's maxlength removed): the image is kept, the text is not;
    // the no-script form has no file name, so it is described by what it is.
    let long = "x".repeat(300);
    let location = post_page_form(
        &app,
        &[("Content-Type", "image/png"), ("x-amz-meta-alt", &long)],
        "long-text.png",
        &png,
    )
    .await;
    let page = app.get(&location).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(
        Doc::page(&page.body).text("#alt").as_deref(),
        Some("PNG image, 10 × 10")
    );
}

/// In a real browser with the page's script blocked: the `<select>` left at its JPEG
/// default, a PNG chosen, Save. The upload is kept and served as PNG.
#[actix_web::test]
async fn in_a_browser_without_javascript_a_wrong_type_pick_is_forgiven() {
    let Some(b) = Browser::start("no_script_type").await else {
        return;
    };
    let app = spawn_app().await;
    b.cdp("Network.enable", json!({})).await;
    b.cdp("Network.setBlockedURLs", json!({ "urls": ["*.js"] }))
        .await;
    b.goto(&app.url("/")).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drawing.png");
    let png = testdata::png_noise(320, 200);
    std::fs::write(&path, &png).unwrap();
    let picked = b
        .js(
            "return document.querySelector('select[name=\"Content-Type\"]').value",
            vec![],
        )
        .await;
    assert_eq!(picked, "image/jpeg");
    b.find("#alt")
        .await
        .send_keys("Noise, grey and white")
        .await
        .unwrap();
    b.find("#myImage")
        .await
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    b.find("#btnSave").await.click().await.unwrap();
    let landed = b
        .wait(
            "the form to land on /uploaded",
            "const c = document.getElementById('corrected');
             return location.pathname === '/uploaded' && c ? [location.href, c.textContent] : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    let note = landed[1].as_str().unwrap();
    assert!(
        note.contains("image/jpeg") && note.contains("image/png"),
        "{note}"
    );
    let key = key_of(&app, landed[0].as_str().unwrap());
    let served = app.get(&app.image_urls().original(&key, "image/png")).await;
    assert_eq!(served.header("content-type"), Some("image/png"));
    assert_eq!(served.bytes.len(), png.len());
    let alt = b
        .js(
            "return document.getElementById('uploadedImage').alt",
            vec![],
        )
        .await;
    assert_eq!(alt, "Noise, grey and white");
    b.finish().await;
}
