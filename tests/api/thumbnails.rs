//! Thumbnails: made once at confirmation from the verified pixels, right-sized and turned
//! upright, without metadata, in the bucket outside the key prefix; a light gallery (one S3
//! request for a warm view of 24); a replaced upload verified again before it shows; broken
//! and oversized images.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use awc::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};
use signpost::testdata;

use crate::helpers::*;

/// Upload `bytes` as `ct` through the API and confirm it; the confirm answer.
async fn confirmed(app: &TestApp, name: &str, ct: &str, bytes: &[u8]) -> Value {
    let p = app.presign(name, ct, bytes.len(), None).await;
    let r = app.post_presigned(&p, name, ct, bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let c = app
        .confirm(p["key"].as_str().unwrap(), &etag_of(&r.body))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    serde_json::from_str(&c.body).unwrap()
}

/// Each thumbnail of a confirm answer, fetched: (width, height, content type, bytes).
async fn fetch_thumbnails(app: &TestApp, answer: &Value) -> Vec<(u32, u32, String, Bytes)> {
    let mut out = Vec::new();
    for t in answer["thumbnails"].as_array().unwrap() {
        let r = app.get(t["url"].as_str().unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{t}");
        assert_eq!(
            r.header("cache-control"),
            Some(signpost::store::thumbnails::CACHE_CONTROL)
        );
        let img = image::load_from_memory(&r.bytes).unwrap();
        assert_eq!(
            (u64::from(img.width()), u64::from(img.height())),
            (t["width"].as_u64().unwrap(), t["height"].as_u64().unwrap()),
            "the answer says the thumbnail's own size"
        );
        out.push((
            img.width(),
            img.height(),
            r.header("content-type").unwrap_or_default().to_owned(),
            r.bytes,
        ));
    }
    out
}

/// The objects under the thumbnail prefix.
async fn thumbnail_objects(app: &TestApp) -> Vec<String> {
    let listing = app
        .store_client()
        .list(app.settings.thumb_prefix.as_str(), None, 1000)
        .await
        .unwrap();
    listing.objects.into_iter().map(|o| o.key).collect()
}

/// A photo in a wide-gamut colour space (Display P3, Adobe RGB) keeps its profile in its
/// thumbnails: without it, their pixels would be read as sRGB and their colours shift.
#[actix_web::test]
async fn thumbnails_keep_the_colour_profile_of_their_photo() {
    let app = spawn_app().await;
    let profile = b"a stand-in for a Display P3 profile".to_vec();
    let photo = testdata::jpeg_with_icc(1200, 900, &profile);
    let answer = confirmed(&app, "p3.jpg", "image/jpeg", &photo).await;
    let thumbs = fetch_thumbnails(&app, &answer).await;
    assert_eq!(thumbs.len(), 2);
    for (w, _, _, bytes) in &thumbs {
        assert!(
            bytes.windows(profile.len()).any(|b| b == profile),
            "the {w} px thumbnail has no colour profile"
        );
    }
}

#[actix_web::test]
async fn a_phone_photo_gets_upright_jpegs_of_400_and_800_without_its_metadata() {
    let app = spawn_app().await;
    // Stored 1600 × 1200, to be shown turned a quarter clockwise: 1200 × 1600.
    let photo = testdata::jpeg_oriented(1600, 1200, 6);
    assert!(photo.windows(4).any(|w| w == b"Exif"));
    let answer = confirmed(&app, "IMG_2041.jpg", "image/jpeg", &photo).await;
    // The record, like the thumbnails, is upright: the dimensions as shown.
    assert_eq!(
        (answer["width"].as_u64(), answer["height"].as_u64()),
        (Some(1200), Some(1600))
    );
    let alt = answer["alt"].as_str().unwrap();
    assert!(alt.contains("1200 × 1600"), "{alt}");
    let thumbs = fetch_thumbnails(&app, &answer).await;
    let dims: Vec<_> = thumbs.iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(dims, [(300, 400), (600, 800)]);
    for (_, _, ct, bytes) in &thumbs {
        assert_eq!(ct, "image/jpeg");
        assert!(!bytes.windows(4).any(|w| w == b"Exif"), "metadata stripped");
    }
    // Outside the key prefix, named by the upload's key and ETag.
    let key = answer["key"].as_str().unwrap();
    let etag = answer["etag"].as_str().unwrap();
    let stored = thumbnail_objects(&app).await;
    assert_eq!(
        stored,
        [
            format!("thumbs/{key}/{etag}-400.jpg"),
            format!("thumbs/{key}/{etag}-800.jpg")
        ]
    );
    // The original is untouched.
    let original = app.store_client().get(key, 1 << 20).await.unwrap().unwrap();
    assert_eq!(original.as_ref(), photo.as_slice());
}

#[actix_web::test]
async fn transparency_is_kept_in_a_webp_thumbnail() {
    let app = spawn_app().await;
    let answer = confirmed(
        &app,
        "logo.png",
        "image/png",
        &testdata::png_translucent(1000, 500, 0),
    )
    .await;
    let thumbs = fetch_thumbnails(&app, &answer).await;
    assert_eq!(thumbs.len(), 2);
    for (w, _, ct, bytes) in &thumbs {
        assert_eq!(ct, "image/webp");
        let rgba = image::load_from_memory(bytes).unwrap().to_rgba8();
        assert_eq!(rgba.get_pixel(2, 2).0[3], 0, "clear stays clear");
        assert_eq!(rgba.get_pixel(w - 3, 2).0[3], 255);
    }
}

#[actix_web::test]
async fn the_gallery_shows_thumbnails_with_srcset_size_and_lazy_loading() {
    let app = spawn_app().await;
    let answer = confirmed(
        &app,
        "wide.jpg",
        "image/jpeg",
        &testdata::photo(2000, 1000, 1),
    )
    .await;
    let page = app.get("/gallery").await;
    let doc = Doc::page(&page.body);
    let img = doc.attr("li.card img", "src").unwrap();
    assert!(img.contains("/thumbs/uploads/"), "{img}");
    assert_eq!(doc.attr("li.card img", "width").as_deref(), Some("400"));
    assert_eq!(doc.attr("li.card img", "height").as_deref(), Some("200"));
    assert_eq!(doc.attr("li.card img", "loading").as_deref(), Some("lazy"));
    let srcset = doc.attr("li.card img", "srcset").unwrap();
    assert!(
        srcset.ends_with(" 800w") && srcset.contains(" 400w, "),
        "{srcset}"
    );
    // The card opens the original's page.
    let link = doc.attr("li.card a", "href").unwrap();
    assert!(link.starts_with("/uploaded?"), "{link}");
    assert_eq!(answer["url"].as_str(), Some(link.as_str()));
    // The same URL for the next view: browsers keep it.
    let again = Doc::page(&app.get("/gallery").await.body)
        .attr("li.card img", "src")
        .unwrap();
    assert_eq!(again, img);
}

/// Forwards every request to `upstream` unchanged (the Host header included, which SigV4
/// signs) and counts them.
struct CountingProxy {
    url: String,
    count: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

async fn forward(
    req: actix_web::HttpRequest,
    body: Bytes,
    upstream: actix_web::web::Data<(String, Arc<AtomicUsize>)>,
) -> actix_web::HttpResponse {
    let (target, count) = upstream.get_ref();
    count.fetch_add(1, Ordering::SeqCst);
    let mut fwd = client().request(req.method().clone(), format!("{target}{}", req.uri()));
    for (k, v) in req.headers() {
        fwd = fwd.insert_header((k.clone(), v.clone()));
    }
    let mut resp = fwd.send_body(body).await.unwrap();
    let bytes = resp.body().limit(64 << 20).await.unwrap();
    let mut out = actix_web::HttpResponse::build(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.append_header((k.clone(), v.clone()));
        }
    }
    out.body(bytes)
}

impl CountingProxy {
    fn start(upstream: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let data = actix_web::web::Data::new((upstream, count.clone()));
        let handle = serve(listener, move |cfg| {
            cfg.app_data(data.clone())
                .default_service(actix_web::web::to(forward));
        });
        Self { url, count, handle }
    }

    fn take(&self) -> usize {
        self.count.swap(0, Ordering::SeqCst)
    }
}

#[actix_web::test]
async fn a_warm_gallery_view_of_24_costs_one_s3_request() {
    let app = spawn_app().await;
    for i in 0..24 {
        app.upload_confirmed(&format!("p{i}.png"), &testdata::png(8 + i, 6), None)
            .await;
    }
    // Another instance, whose every S3 request is counted; its sweep mostly sleeps.
    let proxy = CountingProxy::start(format!("http://{}", app.s3_addr.unwrap()));
    let other = spawn_beside(&app, &proxy.url, |c| c.notify_sweep_secs = 3600).await;
    let settle = std::time::Instant::now();
    // Its first sweep and backfill read the bucket at start: wait until they are quiet.
    loop {
        proxy.take();
        actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
        if proxy.take() == 0 {
            break;
        }
        assert!(settle.elapsed().as_secs() < 30, "the start never settles");
    }

    let cold = other.get("/gallery").await;
    assert_eq!(Doc::page(&cold.body).count("li.card"), 24, "{}", cold.body);
    let cold_requests = proxy.take();
    let warm = other.get("/gallery").await;
    assert_eq!(Doc::page(&warm.body).count("li.card"), 24);
    let warm_requests = proxy.take();
    // Cold, it reads what its start-up sweep has not already read.
    eprintln!("gallery of 24: {cold_requests} S3 requests cold, {warm_requests} warm");
    assert!(cold_requests <= 1 + 24, "a LIST and each record at most");
    assert!(
        warm_requests <= 2,
        "{warm_requests} requests for a warm view"
    );
    assert_eq!(warm_requests, 1, "the LIST only");
    other.handle.stop(false).await;
    proxy.handle.stop(false).await;
}

#[actix_web::test]
async fn a_replaced_upload_is_verified_again_with_new_thumbnails_before_it_shows() {
    let app = spawn_with(|c| c.notify_sweep_secs = 3600).await;
    // One signed form, posted twice within its lifetime: the second file replaces the first.
    let first = testdata::png(40, 20);
    let second = testdata::png(30, 60);
    let p = app
        .presign("same.png", "image/png", first.len().max(second.len()), None)
        .await;
    let key = p["key"].as_str().unwrap().to_owned();
    let r = app
        .post_presigned(&p, "same.png", "image/png", &first)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let c = app.confirm(&key, &etag_of(&r.body)).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let card = |body: &str| Doc::page(body).attr("li.card img", "width");
    assert_eq!(card(&app.get("/gallery").await.body).as_deref(), Some("40"));
    let old_thumbs = thumbnail_objects(&app).await;
    assert_eq!(old_thumbs.len(), 1);

    let r = app
        .post_presigned(&p, "same.png", "image/png", &second)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let new_etag = etag_of(&r.body);
    // Its record is for the first version: not shown until verified again.
    let page = app.get("/gallery").await;
    assert_eq!(Doc::page(&page.body).count("li.card"), 0, "{}", page.body);

    let c = app
        .post_json("/api/uploads/confirm", &json!({ "key": key }))
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    let v: Value = serde_json::from_str(&c.body).unwrap();
    assert_eq!(v["etag"], new_etag.as_str());
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(30), Some(60))
    );
    assert_eq!(card(&app.get("/gallery").await.body).as_deref(), Some("30"));
    // The first version's thumbnail is gone; the new one is named by the new ETag.
    let now = thumbnail_objects(&app).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(now[0].contains(&new_etag) && now != old_thumbs, "{now:?}");
}

#[actix_web::test]
async fn broken_images_get_no_thumbnail_and_are_not_shown() {
    let app = spawn_app().await;
    let png = testdata::png(300, 200);
    let bomb = testdata::png_claiming(100_000, 100_000);
    for (name, bytes) in [("cut.png", &png[..png.len() / 2]), ("bomb.png", &bomb[..])] {
        let (key, etag) = app.upload_via_api(name, bytes, None).await;
        let r = app.confirm(&key, &etag).await;
        // The sweep confirms new uploads too; when it got there first the file is already
        // deleted, and the API can only say that it is not there.
        let swept = r.status == StatusCode::NOT_FOUND
            && app.store_client().head(&key).await.unwrap().is_none();
        assert!(
            r.status == StatusCode::UNPROCESSABLE_ENTITY || swept,
            "{name}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(thumbnail_objects(&app).await, Vec::<String>::new());
    let page = app.get("/gallery").await;
    assert_eq!(Doc::page(&page.body).count("li.card"), 0, "{}", page.body);
}

#[actix_web::test]
async fn an_image_too_large_to_decode_is_shown_as_a_placeholder_with_its_size() {
    // Files over 1 MiB are checked from their header and first bytes, not decoded.
    let app = spawn_with(|c| c.max_decode_bytes = 1 << 20).await;
    let big = testdata::png_noise(700, 600);
    assert!(big.len() > 1 << 20);
    let answer = confirmed(&app, "scan.png", "image/png", &big).await;
    assert_eq!(answer["thumbnails"], json!([]));
    assert!(thumbnail_objects(&app).await.is_empty());
    let page = app.get("/gallery").await;
    let doc = Doc::page(&page.body);
    assert_eq!(doc.count("li.card"), 1, "{}", page.body);
    assert_eq!(doc.count("li.card img"), 0);
    let label = doc.attr("li.card .placeholder", "aria-label").unwrap();
    assert!(label.contains("700 × 600"), "{label}");
}
