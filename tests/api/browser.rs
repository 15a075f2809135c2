//! The upload page, multiple files, drag and drop and the gallery in a real browser: headless
//! Chromium through chromedriver, against a signpost started per test with its embedded
//! store, everything on loopback.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the tests print how to install
//! them and pass, unless `CI` is set, where they fail. `SIGNPOST_SCREENSHOT_DIR=/some/dir` saves
//! screenshots of the upload page before and after a file is chosen.

use std::path::{Path, PathBuf};

use crate::helpers::Doc;
use crate::helpers::browser::Browser;
use base64::Engine;
use serde_json::{Value, json};
use signpost::testdata;

/// Write `png(w, h)` as `dir/name`.
fn png_file(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, testdata::png(w, h)).unwrap();
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// The natural size of the image `css` once it has loaded from a URL starting with `scheme`,
/// with that URL.
async fn loaded_image(b: &Browser, what: &str, css: &str, scheme: &str) -> (u64, u64, String) {
    let v = b
        .wait(
            what,
            "const i = document.querySelector(arguments[0]);
             return i && i.complete ? [i.naturalWidth, i.naturalHeight, i.currentSrc] : null;",
            vec![json!(css)],
            |v| {
                v[0].as_u64().is_some_and(|w| w > 0)
                    && v[2].as_str().is_some_and(|src| src.starts_with(scheme))
            },
        )
        .await;
    (
        v[0].as_u64().unwrap(),
        v[1].as_u64().unwrap(),
        v[2].as_str().unwrap_or_default().to_owned(),
    )
}

/// After one file was chosen (picked or dropped): the preview shows it from a blob: URL, the
/// signed image-meta partial carries its name, type and size, and Save is enabled.
async fn expect_single_file_ready(b: &Browser, name: &str, (w, h): (u64, u64)) {
    let (pw, ph, src) = loaded_image(
        b,
        "#imagePreview to show the file",
        "#imagePreview",
        "blob:",
    )
    .await;
    assert!(src.starts_with("blob:"), "preview src is {src}");
    assert_eq!((pw, ph), (w, h), "the preview's natural size");

    let fields = b
        .wait(
            "the image-meta partial signed for the file, and #btnSave enabled",
            "const m = document.getElementById('image-meta');
             const v = (n) => { const f = m.querySelector(`[name=\"${n}\"]`); return f ? f.value : null; };
             return { filename: v('x-amz-meta-filename'), type: v('Content-Type'),
                      width: v('x-amz-meta-width'), height: v('x-amz-meta-height'),
                      hidden: m.querySelector('[name=\"x-amz-meta-filename\"]')?.type,
                      key: v('key'), enabled: !document.getElementById('btnSave').disabled };",
            vec![],
            |v| v["filename"] == json!(name) && v["enabled"] == json!(true),
        )
        .await;
    assert_eq!(fields["hidden"], json!("hidden"), "{fields}");
    assert_eq!(fields["type"], json!("image/png"), "{fields}");
    assert_eq!(fields["width"], json!(w.to_string()), "{fields}");
    assert_eq!(fields["height"], json!(h.to_string()), "{fields}");
    assert!(
        fields["key"].as_str().is_some_and(|k| k.ends_with(".png")),
        "{fields}"
    );
    let caption = b.find("#fileName").await.text().await.unwrap();
    assert!(caption.contains(name), "caption {caption:?}");
}

/// Click Save on a single prepared file and check the confirmation page.
async fn save_and_land_on_uploaded(b: &Browser, name: &str, dims: (u64, u64)) {
    b.find("#btnSave").await.click().await.unwrap();
    b.wait(
        "the browser to land on /uploaded",
        "return document.readyState === 'complete' ? location.pathname : null;",
        vec![],
        |v| v == &json!("/uploaded"),
    )
    .await;
    let (w, h, _) = loaded_image(b, "#uploadedImage to load", "#uploadedImage", "http").await;
    assert_eq!((w, h), dims, "the uploaded image's natural size");
    let shown = b.find("#fileName").await.text().await.unwrap();
    assert_eq!(shown.trim(), name);
}

/// The page's standing budget for its first load: HTML, CSS and JS, uncompressed.
const PAGE_BUDGET: u64 = 20 * 1024;

/// The upload page's first-load weight as the browser saw it: (HTML, CSS, JS) decoded bytes.
async fn page_weight(b: &Browser) -> (u64, u64, u64) {
    let v = b
        .js(
            "const nav = performance.getEntriesByType('navigation')[0];
             const res = performance.getEntriesByType('resource');
             const sum = (ext) => res.filter((r) => new URL(r.name).pathname.endsWith(ext))
                                     .reduce((n, r) => n + r.decodedBodySize, 0);
             return [nav.decodedBodySize, sum('.css'), sum('.js')];",
            vec![],
        )
        .await;
    let n = |i: usize| v[i].as_u64().unwrap_or(0);
    (n(0), n(1), n(2))
}

/// Pick `name` (a `w`×`h` PNG) on the upload page, then Save it.
async fn upload_one(
    b: &Browser,
    app: &crate::helpers::TestApp,
    dir: &Path,
    name: &str,
    w: u32,
    h: u32,
) {
    let path = png_file(dir, name, w, h);
    b.open_upload_page(&app.url("/")).await;
    let before = b
        .js(
            "return document.getElementById('imagePreview').src;",
            vec![],
        )
        .await;
    assert!(!before.as_str().unwrap().starts_with("blob:"));
    let (html, css, js) = page_weight(b).await;
    eprintln!(
        "upload page first load: HTML {html} + CSS {css} + JS {js} = {} bytes",
        html + css + js
    );
    assert!(html > 0 && css > 0 && js > 0, "weights {html} {css} {js}");
    assert!(
        html + css + js <= PAGE_BUDGET,
        "the upload page weighs {} bytes (HTML {html}, CSS {css}, JS {js}), over its {PAGE_BUDGET}-byte budget",
        html + css + js
    );
    b.snap("before").await;
    b.find("#myImage")
        .await
        .send_keys(path_str(&path))
        .await
        .unwrap();
    expect_single_file_ready(b, name, (w.into(), h.into())).await;
    b.snap("after").await;
    save_and_land_on_uploaded(b, name, (w.into(), h.into())).await;
}

/// Record each card's `data-state` and progress `value` changes, to read back with [`CARDS`].
const OBSERVE_CARDS: &str = "
    new MutationObserver((rs) => { for (const r of rs) {
        const li = r.target.closest('li.card'); if (!li) continue;
        (li.__seen ||= []).push(`${r.attributeName}:${r.oldValue}`);
    } }).observe(document.getElementById('cards'),
        { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-state', 'value'] });";

/// Each card of `#cards`: text, state, progress, view link and the history recorded by
/// [`OBSERVE_CARDS`].
const CARDS: &str = "
    return [...document.querySelectorAll('#cards li.card')].map((c) => {
        const p = c.querySelector('progress'), a = c.querySelector('[data-state] a, .state a');
        return { text: c.textContent, state: c.dataset.state || null,
                 reason: c.querySelector('.state')?.textContent ?? null,
                 value: p ? p.value : null, max: p ? p.max : null,
                 view: a ? a.href : null, linkText: a ? a.textContent : null,
                 widths: [c.querySelector('.state')?.getBoundingClientRect().width ?? 0,
                          c.getBoundingClientRect().width],
                 seen: c.__seen || [] };
    });";

fn states(cards: &Value) -> Vec<&str> {
    cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap_or(""))
        .collect()
}

/// The card whose text names `name`.
fn card<'a>(cards: &'a Value, name: &str) -> &'a Value {
    cards
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text"].as_str().unwrap_or("").contains(name))
        .unwrap_or_else(|| panic!("no card for {name}: {cards}"))
}

/// Wait for `n` cards, each waiting or failed, and the Save button offering to upload the
/// waiting ones.
async fn expect_cards(b: &Browser, n: usize) -> Value {
    let cards = b
        .wait(&format!("{n} cards in #cards"), CARDS, vec![], |v| {
            v.as_array().is_some_and(|a| {
                a.len() == n
                    && a.iter()
                        .all(|c| c["state"] == json!("waiting") || c["state"] == json!("failed"))
            })
        })
        .await;
    let waiting = states(&cards).iter().filter(|s| **s == "waiting").count();
    let btn = b.find("#btnSave").await;
    assert_eq!(
        btn.text().await.unwrap(),
        format!("Upload {waiting} images")
    );
    assert!(btn.is_enabled().await.unwrap(), "Save is enabled");
    cards
}

/// Click Save and wait until every card is done or failed; returns the cards.
async fn upload_cards(b: &Browser, n: usize) -> Value {
    b.find("#btnSave").await.click().await.unwrap();
    b.wait(
        &format!("the {n} cards to end done or failed"),
        CARDS,
        vec![],
        |v| {
            v.as_array().is_some_and(|a| {
                a.len() == n
                    && a.iter().all(|c| {
                        c["state"] == json!("failed")
                            || (c["state"] == json!("done") && !c["view"].is_null())
                    })
            })
        },
    )
    .await
}

/// A card that went through the XHR upload to a confirmed end: uploading, then done, its bar
/// full, and a "view" link to its confirmation page (which the server answers with 200).
async fn expect_done(app: &crate::helpers::TestApp, c: &Value) {
    assert_eq!(c["state"], json!("done"), "{c}");
    assert_eq!(c["value"], json!(100), "progress {c}");
    assert_eq!(c["max"], json!(100), "progress {c}");
    let seen: Vec<&str> = c["seen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        seen.contains(&"data-state:uploading"),
        "the card never showed `uploading`: {c}"
    );
    assert_eq!(c["linkText"], json!("view"), "{c}");
    let view = c["view"].as_str().unwrap();
    assert!(
        view.starts_with(&format!("{}/uploaded?", app.base)),
        "view link {view}"
    );
    let page = app.get(view).await;
    assert_eq!(page.status, 200, "{view}: {}", page.body);
}

/// The gallery in the browser: exactly `names`, every thumbnail loaded.
async fn expect_gallery(b: &Browser, app: &crate::helpers::TestApp, names: &[&str]) {
    b.goto(&app.url("/gallery")).await;
    let cards = b
        .wait(
            &format!("{} gallery cards with loaded images", names.len()),
            "return [...document.querySelectorAll('.gallery li.card')].map((c) => {
                 const i = c.querySelector('img');
                 return { name: c.querySelector('.name')?.textContent,
                          loaded: !!i && i.complete, w: i ? i.naturalWidth : 0 };
             });",
            vec![],
            |v| {
                v.as_array().is_some_and(|a| {
                    a.len() == names.len() && a.iter().all(|c| c["loaded"] == json!(true))
                })
            },
        )
        .await;
    let mut shown: Vec<&str> = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    for c in cards.as_array().unwrap() {
        assert!(
            c["w"].as_u64().is_some_and(|w| w > 0),
            "thumbnail not decoded: {c}"
        );
    }
    shown.sort_unstable();
    let mut want = names.to_vec();
    want.sort_unstable();
    assert_eq!(shown, want);
}

/// Cards in the gallery's HTML, read by the server (no browser).
async fn gallery_cards(app: &crate::helpers::TestApp) -> (usize, String) {
    let g = app.get("/gallery").await;
    assert_eq!(g.status, 200, "{}", g.body);
    (Doc::page(&g.body).count("li.card"), g.body)
}

/// Drop `files` (name, PNG bytes) on `#drop` with synthesised drag events; checks the zone's
/// "drop here" state and that the page took the drop.
async fn drop_files(b: &Browser, files: &[(&str, Vec<u8>)]) {
    let files: Vec<Value> = files
        .iter()
        .map(|(n, bytes)| json!([n, base64::engine::general_purpose::STANDARD.encode(bytes)]))
        .collect();
    let n = files.len();
    let r = b
        .js(
            "const dt = new DataTransfer();
             for (const [name, b64] of arguments[0]) {
                 const bin = atob(b64), bytes = new Uint8Array(bin.length);
                 for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                 dt.items.add(new File([bytes], name, { type: 'image/png' }));
             }
             const zone = document.getElementById('drop');
             const opts = { bubbles: true, cancelable: true, composed: true, dataTransfer: dt };
             const over = new DragEvent('dragover', opts);
             zone.dispatchEvent(over);
             const during = zone.classList.contains('over');
             const drop = new DragEvent('drop', opts);
             zone.dispatchEvent(drop);
             return { overPrevented: over.defaultPrevented, during,
                      dropPrevented: drop.defaultPrevented, after: zone.classList.contains('over'),
                      inputFiles: document.getElementById('myImage').files.length };",
            vec![json!(files)],
        )
        .await;
    assert_eq!(
        r["overPrevented"],
        json!(true),
        "dragover must be cancelled for a drop to be allowed: {r}"
    );
    assert_eq!(r["during"], json!(true), "no 'drop here' state: {r}");
    assert_eq!(
        r["dropPrevented"],
        json!(true),
        "the browser would open the file: {r}"
    );
    assert_eq!(r["after"], json!(false), "the 'drop here' state stays: {r}");
    assert_eq!(
        r["inputFiles"],
        json!(n),
        "the input does not hold the drop: {r}"
    );
}

/// Choose a PNG, see it, the form is signed for it, Save lands on /uploaded with it.
#[actix_web::test]
async fn choosing_a_png_previews_signs_and_uploads_it() {
    let Some(b) = Browser::start("choose_and_upload").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let files = tempfile::tempdir().unwrap();
    upload_one(&b, &app, files.path(), "harbour view.png", 64, 48).await;
    b.finish().await;
}

/// A file over --max-bytes shows the inline error, Save stays disabled, nothing lands.
#[actix_web::test]
async fn an_oversized_file_shows_the_error_and_uploads_nothing() {
    let Some(b) = Browser::start("oversized").await else {
        return;
    };
    let app = crate::helpers::spawn_with(|c| c.max_bytes = 2000).await;
    let files = tempfile::tempdir().unwrap();
    let path = png_file(files.path(), "too big.png", 200, 200);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size > 2000,
        "the test file must exceed the limit ({size} bytes)"
    );

    b.open_upload_page(&app.url("/")).await;
    b.find("#myImage")
        .await
        .send_keys(path_str(&path))
        .await
        .unwrap();
    let alert = b
        .wait(
            "an inline role=alert in #status",
            "const s = document.getElementById('status'), a = s.querySelector('[role=alert]');
             return a && !s.hidden && a.offsetParent !== null ? a.textContent : null;",
            vec![],
            |v| v.as_str().is_some_and(|t| !t.trim().is_empty()),
        )
        .await;
    eprintln!("oversized: alert says {alert}");
    b.snap("alert").await;
    let state = b
        .js(
            "return { disabled: document.getElementById('btnSave').disabled,
                      filename: document.querySelector('#image-meta [name=\"x-amz-meta-filename\"]')?.value ?? null };",
            vec![],
        )
        .await;
    assert_eq!(
        state["disabled"],
        json!(true),
        "Save must stay disabled: {state}"
    );
    assert_ne!(
        state["filename"],
        json!("too big.png"),
        "the form must not be signed for it: {state}"
    );
    assert!(!b.find("#btnSave").await.is_enabled().await.unwrap());

    let (n, body) = gallery_cards(&app).await;
    assert_eq!(n, 0, "nothing may be uploaded: {body}");
    assert!(Doc::page(&body).find("p.empty").is_some(), "{body}");
    b.finish().await;
}

/// After an upload from the page, the gallery shows its thumbnail loaded.
#[actix_web::test]
async fn the_gallery_shows_the_uploaded_image() {
    let Some(b) = Browser::start("gallery").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let files = tempfile::tempdir().unwrap();
    upload_one(&b, &app, files.path(), "gallery-one.png", 40, 30).await;
    expect_gallery(&b, &app, &["gallery-one.png"]).await;
    b.finish().await;
}

/// Three files at once: three cards, uploaded with progress, confirmed, in the gallery.
#[actix_web::test]
async fn three_files_at_once_upload_with_progress() {
    let Some(b) = Browser::start("three_at_once").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["first.png", "second.png", "third.png"];
    let paths: Vec<PathBuf> = names
        .iter()
        .zip([(30, 20), (48, 48), (64, 16)])
        .map(|(n, (w, h))| png_file(dir.path(), n, w, h))
        .collect();
    let joined = paths
        .iter()
        .map(|p| path_str(p))
        .collect::<Vec<_>>()
        .join("\n");

    b.open_upload_page(&app.url("/")).await;
    b.js(OBSERVE_CARDS, vec![]).await;
    b.find("#myImage").await.send_keys(&joined).await.unwrap();
    let before = expect_cards(&b, 3).await;
    assert_eq!(states(&before), ["waiting"; 3], "{before}");
    assert!(!b.find("#done").await.is_displayed().await.unwrap());

    b.snap("cards").await;
    let after = upload_cards(&b, 3).await;
    b.snap("done").await;
    eprintln!("three_at_once: {after}");
    for n in names {
        expect_done(&app, card(&after, n)).await;
    }
    b.wait(
        "#done to show when all are done",
        "const d = document.getElementById('done');
         return !d.hidden && d.offsetParent !== null && !!d.querySelector('a[href=\"/gallery\"]');",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    expect_gallery(&b, &app, &names).await;
    b.finish().await;
}

/// One file dropped on the zone behaves like a single choice and uploads.
#[actix_web::test]
async fn a_dropped_file_uploads_like_a_chosen_one() {
    let Some(b) = Browser::start("drop_one").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    drop_files(&b, &[("dropped.png", testdata::png(50, 40))]).await;
    expect_single_file_ready(&b, "dropped.png", (50, 40)).await;
    save_and_land_on_uploaded(&b, "dropped.png", (50, 40)).await;
    b.finish().await;
}

/// Two files dropped at once make two cards that upload.
#[actix_web::test]
async fn two_dropped_files_make_two_cards_that_upload() {
    let Some(b) = Browser::start("drop_two").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    b.js(OBSERVE_CARDS, vec![]).await;
    drop_files(
        &b,
        &[
            ("drop-a.png", testdata::png(20, 30)),
            ("drop-b.png", testdata::png(30, 20)),
        ],
    )
    .await;
    expect_cards(&b, 2).await;
    let after = upload_cards(&b, 2).await;
    for n in ["drop-a.png", "drop-b.png"] {
        expect_done(&app, card(&after, n)).await;
    }
    let (n, body) = gallery_cards(&app).await;
    assert_eq!(n, 2, "{body}");
    b.finish().await;
}

/// Of three files, the one over the limit fails on its card; the others upload.
#[actix_web::test]
async fn a_file_over_the_limit_fails_on_its_card_while_the_others_upload() {
    let Some(b) = Browser::start("one_too_big").await else {
        return;
    };
    let limit = 20_000;
    let app = crate::helpers::spawn_with(|c| c.max_bytes = limit).await;
    let dir = tempfile::tempdir().unwrap();
    let small_a = png_file(dir.path(), "small-a.png", 24, 24);
    let big = png_file(dir.path(), "big.png", 200, 200);
    let small_b = png_file(dir.path(), "small-b.png", 32, 20);
    let big_size = std::fs::metadata(&big).unwrap().len();
    assert!(
        big_size > limit,
        "big.png must exceed the limit ({big_size} bytes)"
    );
    let joined = [&small_a, &big, &small_b]
        .iter()
        .map(|p| path_str(p))
        .collect::<Vec<_>>()
        .join("\n");

    b.open_upload_page(&app.url("/")).await;
    b.js(OBSERVE_CARDS, vec![]).await;
    b.find("#myImage").await.send_keys(&joined).await.unwrap();
    let before = expect_cards(&b, 3).await;
    let failed = card(&before, "big.png");
    assert_eq!(failed["state"], json!("failed"), "{before}");
    let reason = failed["reason"].as_str().unwrap_or("");
    assert!(
        !reason.trim().is_empty() && reason.trim() != "failed",
        "the failed card must say why: {failed}"
    );
    // The reason must be readable: laid out across the card, not squeezed into a narrow column.
    let (reason_w, card_w) = (
        failed["widths"][0].as_f64().unwrap(),
        failed["widths"][1].as_f64().unwrap(),
    );
    assert!(
        reason_w >= card_w / 2.0,
        "the reason is {reason_w}px wide in a {card_w}px card: {failed}"
    );

    let after = upload_cards(&b, 3).await;
    b.snap("done").await;
    eprintln!("one_too_big: {after}");
    let failed = card(&after, "big.png");
    assert_eq!(failed["state"], json!("failed"), "{after}");
    assert!(failed["view"].is_null(), "{failed}");
    for n in ["small-a.png", "small-b.png"] {
        expect_done(&app, card(&after, n)).await;
    }
    assert!(
        !b.find("#done").await.is_displayed().await.unwrap(),
        "#done is for when all are done"
    );
    let (n, body) = gallery_cards(&app).await;
    assert_eq!(n, 2, "{body}");
    assert!(!body.contains("big.png"), "{body}");
    b.finish().await;
}
