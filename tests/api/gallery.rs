//! The gallery (S3 is the database) and the verified metadata it shows.

use std::time::Instant;

use crate::helpers::*;
use awc::http::StatusCode;
use signpost::testdata;

/// Cards on a gallery page.
const GALLERY_PAGE: usize = 24;

/// A gallery card: its text and its thumbnail's URL.
#[derive(Debug)]
struct Card {
    text: String,
    img: String,
}

/// The cards of a gallery page, in order.
fn cards(html: &str) -> Vec<Card> {
    let img = html::selector("img");
    Doc::page(html)
        .all("li.card")
        .into_iter()
        .map(|c| Card {
            text: html::text(&c),
            img: c
                .select(&img)
                .next()
                .and_then(|i| i.attr("src"))
                .expect("a thumbnail")
                .to_owned(),
        })
        .collect()
}

/// The gallery's link to the next page, if it has one.
fn more_link(html: &str) -> Option<String> {
    Doc::page(html).attr("a.more", "href")
}

#[actix_web::test]
async fn the_gallery_lists_exactly_the_uploads_newest_first() {
    let app = spawn_app().await;
    let empty = app.get("/gallery").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(
        empty.body.contains("Nothing has been uploaded yet"),
        "{}",
        empty.body
    );
    assert!(empty.body.contains("href=\"/\""));

    let images = [
        ("first.png", (3, 2)),
        ("second.png", (5, 4)),
        ("third.png", (7, 6)),
    ];
    for (name, (w, h)) in images {
        let png = testdata::png(w, h);
        app.upload_confirmed(name, &png, Some((w, h))).await;
        // Ids carry milliseconds: keep the order unambiguous.
        actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let page = app.get("/gallery").await;
    assert_eq!(page.status, StatusCode::OK);
    let found = cards(&page.body);
    assert_eq!(found.len(), 3, "{}", page.body);
    for (card, (name, (w, h))) in found.iter().zip(images.iter().rev()) {
        assert!(card.text.contains(name), "{card:?}");
        assert!(card.text.contains(&format!("{w} × {h}")), "{card:?}");
    }
    assert_eq!(more_link(&page.body), None, "no more link for 3");
    // The pictures are the thumbnails (small images keep their size), cacheable for good.
    for (card, (_, (w, h))) in found.iter().zip(images.iter().rev()) {
        assert!(card.img.contains("/thumbs/uploads/"), "{card:?}");
        let r = app.get(&card.img).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(
            r.header("cache-control"),
            Some(signpost::store::thumbnails::CACHE_CONTROL)
        );
        let thumb = image::load_from_memory(&r.bytes).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (*w, *h));
    }
}

#[actix_web::test]
async fn server_dimensions_win_over_the_browsers() {
    let app = spawn_app().await;
    // The browser claims 999×999; the header says 6×4.
    let (key, etag) = app
        .upload_via_api("lying-dims.png", &testdata::png(6, 4), Some((999, 999)))
        .await;
    let page = app.get(&uploaded_path(&key, &etag)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        Doc::page(&page.body).text("#dimensions").as_deref() == Some("6 × 4")
            && !page.body.contains("999 × 999"),
        "{}",
        page.body
    );
    let gallery = app.get("/gallery").await;
    assert!(gallery.body.contains("6 × 4") && !gallery.body.contains("999 × 999"));
}

#[actix_web::test]
async fn a_more_link_appears_only_past_24() {
    let app = spawn_app().await;
    let png = testdata::png(1, 1);
    for i in 0..24 {
        app.upload_confirmed(&format!("img{i}.png"), &png, None)
            .await;
    }
    let page = app.get("/gallery").await;
    assert_eq!(cards(&page.body).len(), 24);
    assert_eq!(more_link(&page.body), None, "exactly 24: no more link");
    app.upload_confirmed("img24.png", &png, None).await;
    let page = app.get("/gallery").await;
    assert_eq!(cards(&page.body).len(), 24);
    assert!(page.body.contains("img24.png"), "newest first");
    let more = more_link(&page.body).expect("a more link");
    let next = app.get(&more).await;
    assert_eq!(next.status, StatusCode::OK);
    let rest = cards(&next.body);
    assert_eq!(rest.len(), 1, "{}", next.body);
    assert!(rest[0].text.contains("img0.png"), "the oldest is last");
    // A forged cursor is refused clearly.
    let bad = app.get("/gallery?after=..%2F..%2Fetc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("gallery_cursor_invalid"));
}

#[actix_web::test]
async fn a_broken_object_is_skipped() {
    let app = spawn_app().await;
    app.upload_confirmed("good.png", &testdata::png(2, 2), None)
        .await;
    // Bytes that are not the declared type: listed, but never confirmed, so not shown.
    let p = app.presign("bad.png", "image/png", 6, None).await;
    let r = app
        .post_presigned(&p, "bad.png", "image/png", b"nopeno")
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let page = app.get("/gallery").await;
    assert_eq!(page.status, StatusCode::OK);
    let found = cards(&page.body);
    assert_eq!(found.len(), 1);
    assert!(found[0].text.contains("good.png"));
}

#[actix_web::test]
async fn an_unreachable_store_is_a_clear_503_within_5_seconds() {
    let app = spawn_with(|c| {
        c.s3_endpoint = Some("http://127.0.0.1:9".into());
        c.s3_bucket = Some("signpost".into());
        c.access_key_id = Some("AKID".into());
        c.secret_access_key = Some("secret-secret-secret".into());
    })
    .await;
    let t = Instant::now();
    let r = app.get("/gallery").await;
    assert!(t.elapsed().as_secs_f64() < 5.0);
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.body.contains("is unreachable"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // Signing still works.
    assert_eq!(app.get("/").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_page_ending_on_a_foreign_object_still_links_to_the_next() {
    let app = spawn_app().await;
    let png = testdata::png(1, 1);
    for i in 0..(GALLERY_PAGE - 1) {
        app.upload_confirmed(&format!("img{i}.png"), &png, None)
            .await;
    }
    // Objects signpost did not make, under the prefix: one last on the first page, one
    // after it.
    let client = app.store_client();
    for key in ["uploads/ff-foreign.txt", "uploads/zz-foreign.txt"] {
        client.put(key, "x".into(), "text/plain").await.unwrap();
    }
    let page = app.get("/gallery").await;
    assert_eq!(cards(&page.body).len(), GALLERY_PAGE - 1);
    let href = more_link(&page.body).expect("a more link");
    assert!(href.contains("ff-foreign"), "{href}");
    let next = app.get(&href).await;
    assert_eq!(next.status, StatusCode::OK, "{}", next.body);
    assert!(next.body.contains("No older images"), "{}", next.body);
}
