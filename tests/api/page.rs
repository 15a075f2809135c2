//! The upload page as people use it, in headless Chromium: a pasted image, a file the browser
//! cannot read refused before anything is signed, buttons that count only what will upload,
//! the camera beside (never inside) the signed form, the drop zone's words, and descriptions
//! that reach the gallery's `alt`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use signpost::testdata;

use crate::helpers::browser::Browser;
use crate::helpers::{Doc, TestApp};

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

pub fn paths(p: &[&PathBuf]) -> String {
    p.iter()
        .map(|p| p.to_str().expect("temporary paths are UTF-8"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Choose `files` in the file input, as the picker would (chromedriver adds to what a
/// `multiple` input holds, so it is emptied first).
pub async fn choose(b: &Browser, files: &[&PathBuf]) {
    b.js("document.getElementById('myImage').value = '';", vec![])
        .await;
    if let Err(e) = b.find("#myImage").await.send_keys(&paths(files)).await {
        b.fail(&format!("files not chosen: {e}")).await;
    }
}

/// Wait until the form is signed for `name` and Save is enabled.
pub async fn signed_for(b: &Browser, name: &str) {
    b.wait(
        &format!("the form signed for {name} and Save enabled"),
        "const f = document.querySelector('#image-meta [name=\"x-amz-meta-filename\"]');
         return f && f.value === arguments[0] && !document.getElementById('btnSave').disabled;",
        vec![json!(name)],
        |v| v == &json!(true),
    )
    .await;
}

/// Wait to land on the confirmation page of `name`, its image loaded; returns its size.
pub async fn landed(b: &Browser, name: &str) -> (u64, u64) {
    let v = b
        .wait(
            &format!("{name} to land on /uploaded"),
            "const s = document.getElementById('status');
             if (s && !s.hidden && s.textContent) return { failed: s.textContent };
             const i = document.getElementById('uploadedImage');
             return location.pathname === '/uploaded' && i && i.complete && i.naturalWidth
                 ? { w: i.naturalWidth, h: i.naturalHeight,
                     name: document.getElementById('fileName').textContent } : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert!(v.get("failed").is_none(), "the page shows a failure: {v}");
    assert_eq!(v["name"], json!(name), "{v}");
    (v["w"].as_u64().unwrap(), v["h"].as_u64().unwrap())
}

/// The visible error in #status.
async fn alert(b: &Browser) -> String {
    let v = b
        .wait(
            "an error in #status",
            "const s = document.getElementById('status'), a = s.querySelector('[role=alert]');
             return a && !s.hidden && a.offsetParent !== null ? a.textContent : null;",
            vec![],
            |v| v.as_str().is_some_and(|t| !t.trim().is_empty()),
        )
        .await;
    v.as_str().unwrap_or_default().to_owned()
}

/// Each card's name, state and state text.
const CARDS: &str = "return [...document.querySelectorAll('#cards li.card')].map((c) =>
    [c.querySelector('b').textContent, c.dataset.state, c.querySelector('.state').textContent]);";

/// Wait until no card is still being checked; returns [`CARDS`].
pub async fn settled_cards(b: &Browser, n: usize) -> Value {
    b.wait(&format!("{n} cards checked"), CARDS, vec![], |v| {
        v.as_array().is_some_and(|a| {
            a.len() == n
                && a.iter()
                    .all(|c| c[1] == json!("waiting") || c[1] == json!("failed"))
        })
    })
    .await
}

/// The signing requests the browser made since the last look: (URL, posted body).
async fn signing_requests(b: &Browser) -> Vec<(String, String)> {
    b.network_events()
        .await
        .into_iter()
        .filter(|e| e["method"] == "Network.requestWillBeSent")
        .map(|e| {
            let r = &e["params"]["request"];
            (
                r["url"].as_str().unwrap_or_default().to_owned(),
                r["postData"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .filter(|(url, _)| url.contains("/api/presign") || url.contains("/fragments/image-meta"))
        .collect()
}

/// Paste an image (a PNG drawn on a canvas, `w`×`h`) as a `paste` event on `css` would bring
/// it; returns whether the page took it (the event cancelled, the file input holding it).
pub const PASTE: &str = "
    const [css, name, w, h] = arguments;
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#3a7'; ctx.fillRect(0, 0, w, h);
    ctx.fillStyle = '#f5c'; ctx.fillRect(0, 0, w / 2, h / 2);
    return new Promise((ok) => c.toBlob((blob) => {
        const dt = new DataTransfer();
        dt.items.add(new File([blob], name, { type: 'image/png' }));
        const e = new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true });
        document.querySelector(css).dispatchEvent(e);
        ok({ prevented: e.defaultPrevented, files: document.getElementById('myImage').files.length });
    }, 'image/png'));";

/// An image pasted on the page (a screenshot from the clipboard, say) is taken like a chosen
/// file: previewed, signed, saved.
#[actix_web::test]
async fn a_pasted_image_uploads() {
    let Some(b) = Browser::start("paste").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    let r = b
        .js(
            PASTE,
            vec![json!("body"), json!("image.png"), json!(90), json!(60)],
        )
        .await;
    assert_eq!(
        r,
        json!({ "prevented": true, "files": 1 }),
        "the paste was not taken"
    );
    signed_for(&b, "image.png").await;
    let preview = b
        .js(
            "const i = document.getElementById('imagePreview');
             return [i.hidden, i.naturalWidth, i.src.slice(0, 5)];",
            vec![],
        )
        .await;
    assert_eq!(preview, json!([false, 90, "blob:"]));
    b.find("#btnSave").await.click().await.unwrap();
    assert_eq!(landed(&b, "image.png").await, (90, 60));
    b.finish().await;
}

/// A text file named `liar.png` is refused by the page itself, alone or in a batch: nothing is
/// signed for it (no fragment or presign request names it), Save stays off for it, and the
/// batch's button counts only the file that will upload.
#[actix_web::test]
async fn a_file_the_browser_cannot_read_is_refused_before_signing() {
    let Some(b) = Browser::start_logging_network("liar").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let liar = write(
        dir.path(),
        "liar.png",
        b"this is not a picture, just some text\n",
    );
    let good = write(dir.path(), "good.png", &testdata::png(30, 20));

    // Alone: the message, Save off.
    b.open_upload_page(&app.url("/")).await;
    signing_requests(&b).await;
    choose(&b, &[&liar]).await;
    let said = alert(&b).await;
    assert_eq!(said, "liar.png is not an image this browser can read.");
    assert!(!b.find("#btnSave").await.is_enabled().await.unwrap());
    let hidden = b
        .js(
            "return document.getElementById('imagePreview').hidden;",
            vec![],
        )
        .await;
    assert_eq!(hidden, json!(true), "no preview for it");
    // A real image after it is signed: the only signing request is for that one.
    choose(&b, &[&good]).await;
    signed_for(&b, "good.png").await;
    let asked = signing_requests(&b).await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].0.contains("filename=good.png"), "{asked:?}");

    // In a batch: its card fails with the message, the button counts one.
    b.open_upload_page(&app.url("/")).await;
    signing_requests(&b).await;
    choose(&b, &[&liar, &good]).await;
    let cards = settled_cards(&b, 2).await;
    assert_eq!(
        cards,
        json!([
            [
                "liar.png",
                "failed",
                "liar.png is not an image this browser can read."
            ],
            ["good.png", "waiting", "waiting"]
        ])
    );
    let btn = b.find("#btnSave").await;
    assert_eq!(btn.text().await.unwrap(), "Upload 1 image");
    assert!(btn.is_enabled().await.unwrap());
    btn.click().await.unwrap();
    b.wait(
        "good.png's card to be done",
        "return document.querySelector('#cards li.card:nth-child(2)').dataset.state;",
        vec![],
        |v| v == &json!("done"),
    )
    .await;
    let asked = signing_requests(&b).await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(asked[0].0.ends_with("/api/presign"), "{asked:?}");
    assert!(asked[0].1.contains("\"good.png\""), "{asked:?}");
    let after = b
        .js(
            "const b = document.getElementById('btnSave'); return [b.textContent, b.disabled];",
            vec![],
        )
        .await;
    assert_eq!(after, json!(["Save", true]), "nothing is left to upload");
    b.finish().await;
}

/// Counts leave out cards that failed their checks, and no button is offered for none.
#[actix_web::test]
async fn the_upload_button_counts_only_what_will_upload() {
    let Some(b) = Browser::start("counts").await else {
        return;
    };
    let app = crate::helpers::spawn_with(|c| c.max_bytes = 20_000).await;
    let dir = tempfile::tempdir().unwrap();
    let small = write(dir.path(), "small.png", &testdata::png(24, 24));
    let other = write(dir.path(), "other.png", &testdata::png(20, 30));
    let big = write(dir.path(), "big.png", &testdata::png(200, 200));
    let text = write(dir.path(), "notes.txt", b"hello");
    assert!(std::fs::metadata(&big).unwrap().len() > 20_000);

    b.open_upload_page(&app.url("/")).await;
    choose(&b, &[&small, &big, &other]).await;
    settled_cards(&b, 3).await;
    let btn = b.find("#btnSave").await;
    assert_eq!(btn.text().await.unwrap(), "Upload 2 images");
    assert!(btn.is_enabled().await.unwrap());

    // Two files that cannot upload: nothing to press.
    b.open_upload_page(&app.url("/")).await;
    choose(&b, &[&big, &text]).await;
    let cards = settled_cards(&b, 2).await;
    assert!(
        cards
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c[1] == json!("failed")),
        "{cards}"
    );
    let btn = b.find("#btnSave").await;
    assert!(!btn.is_enabled().await.unwrap(), "a button for zero images");
    assert_eq!(btn.text().await.unwrap(), "Save");
    b.finish().await;
}

/// The script adds a "Take a photo" input with `capture`, outside the signed form, which
/// keeps exactly one file input, its last field, with or without the script; a photo taken
/// with it is handled like a chosen file.
#[actix_web::test]
async fn the_camera_input_is_outside_the_signed_form() {
    let Some(b) = Browser::start("camera").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;

    // As served (no script): one file input, the last field.
    let page = app.get("/").await;
    let doc = Doc::page(&page.body);
    assert_eq!(doc.all("input[type=file]").len(), 1, "{}", page.body);
    let last = doc
        .all("#formBlob input, #formBlob select, #formBlob textarea")
        .last()
        .map(|e| e.value().attr("id").unwrap_or_default().to_owned());
    assert_eq!(last.as_deref(), Some("myImage"));

    b.open_upload_page(&app.url("/")).await;
    let v = b
        .js(
            "const form = document.getElementById('formBlob'), cam = document.getElementById('camera');
             const fields = [...form.elements].filter((e) => e.tagName !== 'BUTTON');
             return { inForm: form.querySelectorAll('input[type=file]').length,
                      last: fields[fields.length - 1].id,
                      camera: cam && { inside: form.contains(cam), form: cam.form && cam.form.id,
                                       capture: cam.getAttribute('capture'), accept: cam.accept,
                                       name: cam.name, label: cam.labels[0] && cam.labels[0].textContent } };",
            vec![],
        )
        .await;
    assert_eq!(
        v,
        json!({ "inForm": 1, "last": "myImage",
                "camera": { "inside": false, "form": null, "capture": "environment",
                            "accept": "image/*", "name": "", "label": "Take a photo" } })
    );

    // A photo from the camera input is previewed and signed like a chosen file.
    b.js(
        "const dt = new DataTransfer();
         dt.items.add(new File([Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0))],
                               'camera.png', { type: 'image/png' }));
         const cam = document.getElementById('camera');
         cam.files = dt.files;
         cam.dispatchEvent(new Event('change', { bubbles: true }));",
        vec![json!(base64_png(48, 32))],
    )
    .await;
    signed_for(&b, "camera.png").await;
    let held = b
        .js(
            "return document.getElementById('myImage').files.length;",
            vec![],
        )
        .await;
    assert_eq!(held, json!(1), "the signed form holds the photo too");
    b.finish().await;
}

pub fn base64_png(w: u32, h: u32) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(testdata::png(w, h))
}

/// Without a touch screen, the zone invites a drop, is not a second "Choose Files" button, and shows
/// no empty picture before an image is chosen.
#[actix_web::test]
async fn the_drop_zone_says_drop_and_shows_no_empty_box() {
    let Some(b) = Browser::start("zone").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    let v = b
        .js(
            "const z = document.getElementById('drop'), i = document.getElementById('imagePreview');
             return { coarse: matchMedia('(pointer: coarse)').matches,
                      text: document.getElementById('fileName').textContent,
                      role: z.getAttribute('role'), tabIndex: z.tabIndex,
                      previewShown: i.offsetParent !== null && i.getBoundingClientRect().height > 0 };",
            vec![],
        )
        .await;
    assert_eq!(
        v,
        json!({ "coarse": false, "text": "Drop images here, or paste one.", "role": null,
                "tabIndex": -1, "previewShown": false })
    );
    b.finish().await;
}

/// The gallery's `alt` for each picture, by file name.
pub async fn gallery_alts(b: &Browser, app: &TestApp, n: usize) -> Value {
    b.goto(&app.url("/gallery")).await;
    b.wait(
        &format!("{n} pictures in the gallery"),
        "const c = [...document.querySelectorAll('.gallery li.card')];
         return c.length === arguments[0]
             ? Object.fromEntries(c.map((x) => [x.querySelector('.name').textContent, x.querySelector('img').alt]))
             : null;",
        vec![json!(n)],
        |v| !v.is_null(),
    )
    .await
}

/// Descriptions typed on the page reach the gallery's `alt`: the form's (signed again as it
/// changes, pinned in the signed fields, never posted beside them) and each card's own.
#[actix_web::test]
async fn descriptions_reach_the_gallerys_alt() {
    let Some(b) = Browser::start("descriptions").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "IMG_0001.png", &testdata::png(40, 30));
    let two = write(dir.path(), "IMG_0002.png", &testdata::png(30, 40));
    let three = write(dir.path(), "IMG_0003.png", &testdata::png(20, 20));

    // One file: the description typed after signing is signed again before Save.
    b.open_upload_page(&app.url("/")).await;
    let named = b
        .js("return document.getElementById('alt').name;", vec![])
        .await;
    assert_eq!(
        named,
        json!(""),
        "the form would post the description twice"
    );
    choose(&b, &[&one]).await;
    signed_for(&b, "IMG_0001.png").await;
    b.find("#alt")
        .await
        .send_keys("A red kite over the hill")
        .await
        .unwrap();
    b.wait(
        "the form signed again with the description",
        "const f = document.querySelector('#image-meta [name=\"x-amz-meta-alt\"]');
         return f && f.type === 'hidden' && !document.getElementById('btnSave').disabled ? f.value : null;",
        vec![],
        |v| v == &json!("A red kite over the hill"),
    )
    .await;
    b.find("#btnSave").await.click().await.unwrap();
    landed(&b, "IMG_0001.png").await;

    // Two files: each card's description goes with its own signature; the form's is hidden.
    b.open_upload_page(&app.url("/")).await;
    choose(&b, &[&two, &three]).await;
    settled_cards(&b, 2).await;
    let form_alt = b
        .js(
            "return document.getElementById('alt').offsetParent === null;",
            vec![],
        )
        .await;
    assert_eq!(
        form_alt,
        json!(true),
        "the form's description shows beside the cards'"
    );
    let fields = b
        .js(
            "return [...document.querySelectorAll('#cards li.card input')].map((i) =>
             [i.labels[0].textContent.trim(), i.maxLength]);",
            vec![],
        )
        .await;
    assert_eq!(
        fields,
        json!([
            ["Description (for screen readers)", 250],
            ["Description (for screen readers)", 250]
        ])
    );
    b.find("#cards li.card:nth-child(1) input")
        .await
        .send_keys("Boats in the harbour")
        .await
        .unwrap();
    b.find("#btnSave").await.click().await.unwrap();
    b.wait(
        "both cards done",
        "return [...document.querySelectorAll('#cards li.card')].every((c) => c.dataset.state === 'done');",
        vec![],
        |v| v == &json!(true),
    )
    .await;

    let alts = gallery_alts(&b, &app, 3).await;
    assert_eq!(
        alts["IMG_0001.png"],
        json!("A red kite over the hill"),
        "{alts}"
    );
    assert_eq!(
        alts["IMG_0002.png"],
        json!("Boats in the harbour"),
        "{alts}"
    );
    // No description: the server's default, never the file name.
    let default = alts["IMG_0003.png"].as_str().unwrap();
    assert!(!default.contains("IMG_0003"), "{alts}");
    b.finish().await;
}

/// A description the server refuses (a control character, which no keyboard types but a
/// paste or a script can) is shown like any signing error, and Save stays off.
#[actix_web::test]
async fn a_refused_description_is_shown_and_save_stays_off() {
    let Some(b) = Browser::start("bad_description").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "bell.png", &testdata::png(40, 30));
    b.open_upload_page(&app.url("/")).await;
    choose(&b, &[&one]).await;
    signed_for(&b, "bell.png").await;
    b.js(
        "const a = document.getElementById('alt');
         a.value = 'ding\\u0007dong';
         a.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![],
    )
    .await;
    let said = alert(&b).await;
    eprintln!("bad description: {said}");
    assert!(said.to_lowercase().contains("description"), "{said}");
    assert!(!b.find("#btnSave").await.is_enabled().await.unwrap());
    b.finish().await;
}
