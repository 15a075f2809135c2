//! Real-size photos through the page in headless Chromium, on the default embedded store:
//! six single saves from 150 KiB to 6 MiB and a batch of eight, with no failure allowed, then
//! a gallery of thumbnails that weighs kilobytes; a store error shown in plain words with a
//! Retry that works; and the signed form posting itself when the page cannot reach the
//! store with XHR.
//!
//! The photos are JPEGs drawn in the page (a gradient under per-pixel noise, so that they do
//! not compress below camera sizes) and handed to the file input as a user's choice would be.

use serde_json::{Value, json};

use crate::helpers::browser::Browser;

/// Draw a JPEG of about `arguments[1]` bytes, keep it as `window.__photos[arguments[0]]`,
/// and return `[bytes, width, height]`.
const MAKE_PHOTO: &str = "
    const [name, target] = arguments;
    const draw = (w, h) => {
        const c = document.createElement('canvas');
        c.width = w; c.height = h;
        const ctx = c.getContext('2d'), img = ctx.createImageData(w, h), d = img.data;
        let s = (target ^ 0x9e3779b9) >>> 0;
        for (let i = 0, p = 0; i < d.length; i += 4, p++) {
            s = (Math.imul(s, 1103515245) + 12345) >>> 0;
            const n = s >>> 25, x = p % w, y = (p / w) | 0;
            d[i] = ((x * 255) / w + n) & 255;
            d[i + 1] = ((y * 255) / h + (n >> 1)) & 255;
            d[i + 2] = (n * 3 + x) & 255;
            d[i + 3] = 255;
        }
        ctx.putImageData(img, 0, 0);
        const url = c.toDataURL('image/jpeg', 0.92);
        const bin = atob(url.slice(url.indexOf(',') + 1)), bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        return bytes;
    };
    let w = 640, h = 480, bytes = draw(w, h);
    for (let k = 0; k < 4 && Math.abs(bytes.length - target) > target * 0.06; k++) {
        const f = Math.sqrt(target / bytes.length);
        w = Math.max(64, Math.round(w * f));
        h = Math.max(48, Math.round(h * f));
        bytes = draw(w, h);
    }
    (window.__photos ||= {})[name] = new File([bytes], name, { type: 'image/jpeg' });
    return [bytes.length, w, h];";

/// Choose the photos named in `arguments[0]`, as the file picker would.
const CHOOSE: &str = "
    const dt = new DataTransfer();
    for (const n of arguments[0]) dt.items.add(window.__photos[n]);
    const input = document.getElementById('myImage');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
    return input.files.length;";

/// A photo drawn in the page: its name, size in bytes and dimensions.
struct Photo {
    name: String,
    bytes: u64,
    dims: (u64, u64),
}

async fn make_photo(b: &Browser, name: &str, target: u64) -> Photo {
    let v = b.js(MAKE_PHOTO, vec![json!(name), json!(target)]).await;
    let n = |i: usize| v[i].as_u64().unwrap();
    Photo {
        name: name.to_owned(),
        bytes: n(0),
        dims: (n(1), n(2)),
    }
}

/// Wait until Save is enabled for a single chosen file, signed for it.
async fn ready_to_save(b: &Browser, name: &str) {
    b.wait(
        "the form signed for the photo and Save enabled",
        "const f = document.querySelector('#image-meta [name=\"x-amz-meta-filename\"]');
         return f && f.value === arguments[0] && !document.getElementById('btnSave').disabled;",
        vec![json!(name)],
        |v| v == &json!(true),
    )
    .await;
}

/// Click Save and land on the confirmation page, showing the photo at its size.
async fn save_and_land(b: &Browser, photo: &Photo) {
    b.find("#btnSave").await.click().await.unwrap();
    let landed = b
        .wait(
            &format!("{} ({} bytes) to land on /uploaded", photo.name, photo.bytes),
            "const s = document.getElementById('status');
             if (s && !s.hidden && s.textContent) return { failed: s.textContent };
             const i = document.getElementById('uploadedImage');
             return location.pathname === '/uploaded' && i && i.complete && i.naturalWidth
                 ? { w: i.naturalWidth, h: i.naturalHeight, name: document.getElementById('fileName').textContent }
                 : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert!(
        landed.get("failed").is_none(),
        "{}: the page shows a failure: {landed}",
        photo.name
    );
    assert_eq!(
        (landed["w"].as_u64().unwrap(), landed["h"].as_u64().unwrap()),
        photo.dims,
        "{}",
        photo.name
    );
    assert_eq!(landed["name"], json!(photo.name));
}

#[actix_web::test]
async fn real_photos_upload_one_by_one_and_eight_at_once() {
    let Some(b) = Browser::start_logging_network("real_photos").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let mut originals = 0;

    // Six single saves, 150 KiB to 6 MiB.
    for (i, kib) in [150u64, 400, 900, 1800, 3500, 6000].into_iter().enumerate() {
        b.open_upload_page(&app.url("/")).await;
        let photo = make_photo(&b, &format!("IMG_{i:04}.jpg"), kib * 1024).await;
        assert!(
            (140 * 1024..=6 * 1024 * 1024 + 400 * 1024).contains(&photo.bytes),
            "{} is {} bytes",
            photo.name,
            photo.bytes
        );
        b.js(CHOOSE, vec![json!([photo.name])]).await;
        ready_to_save(&b, &photo.name).await;
        save_and_land(&b, &photo).await;
        originals += photo.bytes;
        eprintln!(
            "saved {} ({} bytes, {} × {})",
            photo.name, photo.bytes, photo.dims.0, photo.dims.1
        );
    }

    // A batch of eight, 180 KiB to 6 MiB.
    b.open_upload_page(&app.url("/")).await;
    let mut names = Vec::new();
    for (i, kib) in [180u64, 6000, 450, 2500, 900, 4200, 300, 1200]
        .into_iter()
        .enumerate()
    {
        let photo = make_photo(&b, &format!("batch_{i}.jpg"), kib * 1024).await;
        originals += photo.bytes;
        names.push(photo.name);
    }
    b.js(CHOOSE, vec![json!(names)]).await;
    b.wait(
        "eight cards and Save offering to upload them",
        "return document.querySelectorAll('#cards li.card[data-state=waiting]').length === 8
             && document.getElementById('btnSave').textContent;",
        vec![],
        |v| v == &json!("Upload 8 images"),
    )
    .await;
    b.find("#btnSave").await.click().await.unwrap();
    let states = b
        .wait(
            "the eight cards to end",
            "const s = [...document.querySelectorAll('#cards li.card')]
                 .map((c) => [c.dataset.state, c.querySelector('.state').textContent]);
             return s.every(([st]) => st === 'done' || st === 'failed') ? s : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    let failed: Vec<&Value> = states
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] != json!("done"))
        .collect();
    assert!(failed.is_empty(), "failed uploads: {failed:?}");

    // All fourteen are confirmed and in the gallery.
    let gallery = app.get("/gallery").await;
    for name in names.iter().chain(
        (0..6)
            .map(|i| format!("IMG_{i:04}.jpg"))
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert!(
            gallery.body.contains(name.as_str()),
            "{name} is not in the gallery"
        );
    }

    // The gallery at 1280 px and DPR 1 downloads thumbnails: counted from Chromium's
    // network events, which (unlike Resource Timing) see cross-origin responses' sizes.
    b.viewport(1280, 900, false).await;
    b.network_events().await;
    b.goto(&app.url("/gallery")).await;
    b.wait(
        "every gallery picture to load",
        "const i = [...document.querySelectorAll('li.card img')];
         return i.length && i.every((x) => x.complete && x.naturalWidth > 0) ? i.length : null;",
        vec![],
        |v| v == &json!(14),
    )
    .await;
    let mut images = std::collections::HashMap::new();
    let start = std::time::Instant::now();
    while images.len() < 14 && start.elapsed() < std::time::Duration::from_secs(10) {
        images.extend(b.received_bytes("Image").await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(images.len(), 14, "{images:#?}");
    assert!(images.keys().all(|u| u.contains("/thumbs/")), "{images:#?}");
    let total: u64 = images.values().sum();
    let largest = images.values().copied().max().unwrap_or_default();
    let average = total / 14;
    eprintln!(
        "gallery of 14 photos at 1280 px: {total} bytes of thumbnails (average {average}, largest {largest}); the originals are {originals} bytes"
    );
    assert!(average <= 80 * 1024, "average {average} bytes an image");
    assert!(largest <= 150 * 1024, "largest {largest} bytes");

    // Two columns on a phone.
    b.viewport(375, 800, true).await;
    b.goto(&app.url("/gallery")).await;
    let columns = b
        .js(
            "return new Set([...document.querySelectorAll('li.card')].map((c) => c.offsetLeft)).size;",
            vec![],
        )
        .await;
    assert_eq!(columns, json!(2));
    b.finish().await;
}

/// A store error lands on the page in plain words, with a Retry that signs again and works;
/// the page never shows the store's XML.
#[actix_web::test]
async fn a_store_error_is_shown_with_a_retry_that_works() {
    let Some(b) = Browser::start("store_error_retry").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    let photo = make_photo(&b, "retry.jpg", 200 * 1024).await;
    // The first signature the page gets is spoiled, so the store refuses that upload.
    b.spoil_first_signature().await;
    b.js(CHOOSE, vec![json!([photo.name])]).await;
    ready_to_save(&b, &photo.name).await;
    b.find("#btnSave").await.click().await.unwrap();
    let shown = b
        .wait(
            "the store's refusal on the page",
            "const s = document.getElementById('status');
             return s && !s.hidden && s.querySelector('button')
                 ? { text: s.textContent, path: location.pathname } : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    let text = shown["text"].as_str().unwrap();
    assert!(
        text.contains("The storage service refused the upload (SignatureDoesNotMatch"),
        "{text}"
    );
    assert!(!text.contains('<'), "no XML: {text}");
    assert_eq!(shown["path"], json!("/"));
    b.find("#status button").await.click().await.unwrap();
    save_and_land_wait(&b, &photo).await;
    b.finish().await;
}

/// When XHR cannot reach the store (a bucket whose CORS does not allow the site), the signed
/// form posts itself, and the upload lands as it did before the page had a script.
#[actix_web::test]
async fn without_xhr_access_to_the_store_the_form_posts_itself() {
    let Some(b) = Browser::start("form_fallback").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    b.open_upload_page(&app.url("/")).await;
    let photo = make_photo(&b, "fallback.jpg", 300 * 1024).await;
    // What a browser does when CORS refuses a request: an error, no status.
    b.js(
        "XMLHttpRequest.prototype.send = function () {
             setTimeout(() => this.dispatchEvent(new ProgressEvent('error')), 10);
         };",
        vec![],
    )
    .await;
    b.js(CHOOSE, vec![json!([photo.name])]).await;
    ready_to_save(&b, &photo.name).await;
    save_and_land(&b, &photo).await;
}

/// [`save_and_land`] without the click (after a Retry).
async fn save_and_land_wait(b: &Browser, photo: &Photo) {
    let landed = b
        .wait(
            "the retried upload to land on /uploaded",
            "const i = document.getElementById('uploadedImage');
             return location.pathname === '/uploaded' && i && i.complete && i.naturalWidth
                 ? [i.naturalWidth, i.naturalHeight] : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert_eq!(
        (landed[0].as_u64().unwrap(), landed[1].as_u64().unwrap()),
        photo.dims
    );
}
