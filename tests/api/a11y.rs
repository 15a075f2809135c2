//! Accessibility, checked by machines: axe-core (npm, `tests/a11y/`) on every page and state
//! of the upload flow, with no serious or critical violation allowed; and the whole flow by
//! keyboard alone (choose, upload, retry, open a gallery item), the focus always visible.

use serde_json::{Value, json};
use signpost::testdata;

use crate::helpers::browser::{Browser, ENTER};
use crate::helpers::{TestApp, uploaded_path};
use crate::page::{choose, landed, paths, settled_cards, signed_for, write};

/// The focused element shows a ring: a solid outline at least 2 px wide.
async fn focus_visible(b: &Browser, what: &str) {
    let ring = b.focus_ring().await;
    assert!(
        ring["style"] != json!("none") && ring["width"].as_f64().unwrap_or(0.0) >= 2.0,
        "no visible focus on {what}: {ring}"
    );
}

/// axe on `/` (empty, with cards, with an error), `/gallery` and `/uploaded`.
#[actix_web::test]
async fn axe_finds_no_serious_violation_on_any_page_or_state() {
    let Some(b) = Browser::start("axe").await else {
        return;
    };
    let app = crate::helpers::spawn_with(|c| c.max_bytes = 20_000).await;
    let dir = tempfile::tempdir().unwrap();

    b.open_upload_page(&app.url("/")).await;
    b.axe("the empty upload page").await;

    // Cards: one waiting with its description field, one refused.
    let good = write(dir.path(), "good.png", &testdata::png(40, 30));
    let big = write(dir.path(), "big.png", &testdata::png(200, 200));
    choose(&b, &[&good, &big]).await;
    settled_cards(&b, 2).await;
    b.axe("the upload page with two cards, one refused").await;

    // One file, ready to save.
    choose(&b, &[&good]).await;
    signed_for(&b, "good.png").await;
    b.axe("the upload page with one image ready").await;

    // An error.
    let liar = write(dir.path(), "liar.png", b"not an image");
    choose(&b, &[&liar]).await;
    b.wait(
        "the error",
        "return !document.getElementById('status').hidden;",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    b.axe("the upload page showing an error").await;

    // The gallery and the confirmation page of an upload.
    let png = testdata::png(50, 40);
    let (key, etag) = app
        .upload_confirmed("harbour.png", &png, Some((50, 40)))
        .await;
    b.goto(&app.url("/gallery")).await;
    b.wait(
        "the gallery's picture",
        "const i = document.querySelector('.gallery img'); return !!i && i.complete;",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    b.axe("the gallery").await;
    b.goto(&app.url(&uploaded_path(&key, &etag))).await;
    b.wait(
        "the uploaded image",
        "const i = document.getElementById('uploadedImage'); return !!i && i.complete;",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    b.axe("the uploaded page").await;
    b.finish().await;
}

/// Keyboard only: Tab to the description, type it; Tab to the file input (a path typed into it, as WebDriver does for a
/// picker no script can drive), Tab to Save, Enter; then Tab to the gallery's item, Enter.
#[actix_web::test]
async fn a_keyboard_alone_uploads_and_opens_the_gallery_item() {
    let Some(b) = Browser::start("keyboard_upload").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "keys.png", &testdata::png(40, 30));

    b.open_upload_page(&app.url("/")).await;
    b.tab_to("#alt").await;
    focus_visible(&b, "the description").await;
    b.type_text("Keys on a hook").await;
    b.tab_to("#myImage").await;
    focus_visible(&b, "the file input").await;
    b.type_text(&paths(&[&file])).await;
    signed_for(&b, "keys.png").await;
    b.tab_to("#btnSave").await;
    focus_visible(&b, "Save").await;
    b.key(ENTER).await;
    assert_eq!(landed(&b, "keys.png").await, (40, 30));

    b.goto(&app.url("/gallery")).await;
    b.tab_to(".gallery li.card a").await;
    focus_visible(&b, "the gallery item").await;
    b.key(ENTER).await;
    assert_eq!(landed(&b, "keys.png").await, (40, 30));
    let alt = b
        .js(
            "return document.getElementById('uploadedImage').alt;",
            vec![],
        )
        .await;
    assert_eq!(alt, json!("Keys on a hook"));
    b.finish().await;
}

/// Keyboard only, after a failure: the store refuses the first upload (its signature spoiled
/// on the way), the error's Retry takes the focus, and Enter on it uploads.
#[actix_web::test]
async fn a_keyboard_alone_retries_after_a_failure() {
    let Some(b) = Browser::start("keyboard_retry").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "again.png", &testdata::png(36, 24));

    b.open_upload_page(&app.url("/")).await;
    b.spoil_first_signature().await;
    b.tab_to("#myImage").await;
    b.type_text(&paths(&[&file])).await;
    signed_for(&b, "again.png").await;
    b.tab_to("#btnSave").await;
    b.key(ENTER).await;
    let text = b
        .wait(
            "the store's refusal, with a Retry",
            "const s = document.getElementById('status');
             return s && !s.hidden && s.querySelector('button') ? s.textContent : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert!(
        text.as_str().unwrap().contains("SignatureDoesNotMatch"),
        "{text}"
    );
    b.tab_to("#status button").await;
    focus_visible(&b, "Retry").await;
    b.key(ENTER).await;
    assert_eq!(landed(&b, "again.png").await, (36, 24));
    b.finish().await;
}

/// A card's Retry by keyboard: Tab to it, Enter; the focus stays on the card.
#[actix_web::test]
async fn a_keyboard_alone_retries_a_card() {
    let Some(b) = Browser::start("keyboard_card_retry").await else {
        return;
    };
    let app: TestApp = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one.png", &testdata::png(20, 20));
    let two = write(dir.path(), "two.png", &testdata::png(30, 20));

    b.open_upload_page(&app.url("/")).await;
    b.spoil_first_signature().await;
    b.tab_to("#myImage").await;
    b.type_text(&paths(&[&one, &two])).await;
    settled_cards(&b, 2).await;
    b.tab_to("#btnSave").await;
    b.key(ENTER).await;
    let states = b
        .wait(
            "one card failed with a Retry, the other done",
            "const s = [...document.querySelectorAll('#cards li.card')].map((c) => c.dataset.state);
             return s.every((x) => x === 'done' || x === 'failed') ? s : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    let failed = states
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| **s == json!("failed"))
        .count();
    assert_eq!(failed, 1, "{states}");
    b.tab_to("#cards button").await;
    focus_visible(&b, "the card's Retry").await;
    b.key(ENTER).await;
    let v: Value = b
        .wait(
            "both cards done",
            "const s = [...document.querySelectorAll('#cards li.card')].map((c) => c.dataset.state);
             return s.every((x) => x === 'done') ? document.activeElement.className : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert_eq!(v, json!("card"), "the focus left the card");
    b.finish().await;
}
