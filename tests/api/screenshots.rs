//! `scripts/screenshots`: PNGs of the upload flow's main states at 1280 and 375 CSS pixels,
//! taken by the browser tests' headless Chromium, for a reviewer who would rather look than
//! run. Ignored by `cargo test`; the script runs it with `--ignored` and names the folder in
//! `SIGNPOST_SCREENSHOTS` (default `target/screenshots`).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;
use signpost::testdata;

use crate::helpers::browser::Browser;
use crate::helpers::uploaded_path;
use crate::page::{choose, settled_cards, signed_for, write};

/// Save the page as `dir/<state>-<width>.png`, the whole page, not only the window.
async fn shot(b: &Browser, dir: &Path, state: &str, width: u32) {
    let v = b
        .cdp(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().expect("a screenshot"))
        .expect("base64 from Chromium");
    let path = dir.join(format!("{state}-{width}.png"));
    std::fs::write(&path, png).expect("screenshot written");
    eprintln!("{}", path.display());
}

#[actix_web::test]
#[ignore = "run by scripts/screenshots"]
async fn screenshots() {
    let out = std::env::var_os("SIGNPOST_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&out).expect("the screenshots folder");
    let Some(b) = Browser::start("screenshots").await else {
        return;
    };
    let app = crate::helpers::spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let photo = write(dir.path(), "harbour at dusk.png", &testdata::png(640, 420));
    let second = write(dir.path(), "boats.png", &testdata::png(300, 400));
    let liar = write(dir.path(), "liar.png", b"not an image at all");
    let (key, etag) = app
        .upload_confirmed("lighthouse.png", &testdata::png(480, 320), Some((480, 320)))
        .await;
    app.upload_confirmed("pier.png", &testdata::png(200, 300), Some((200, 300)))
        .await;

    for (width, height, phone) in [(1280, 900, false), (375, 812, true)] {
        b.viewport(width, height, phone).await;
        // A phone's coarse pointer: the page offers the camera instead of a drop.
        b.cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({ "enabled": phone, "maxTouchPoints": if phone { 5 } else { 1 } }),
        )
        .await;
        b.open_upload_page(&app.url("/")).await;
        shot(&b, &out, "1-empty", width).await;
        choose(&b, &[&photo]).await;
        signed_for(&b, "harbour at dusk.png").await;
        shot(&b, &out, "2-one-image", width).await;
        choose(&b, &[&photo, &liar, &second]).await;
        settled_cards(&b, 3).await;
        shot(&b, &out, "3-batch-with-a-failure", width).await;
        b.goto(&app.url("/gallery")).await;
        b.wait(
            "the gallery's pictures",
            "const i = [...document.querySelectorAll('.gallery img')];
             return i.length === 2 && i.every((x) => x.complete && x.naturalWidth);",
            vec![],
            |v| v == &json!(true),
        )
        .await;
        shot(&b, &out, "4-gallery", width).await;
        b.goto(&app.url(&uploaded_path(&key, &etag))).await;
        b.wait(
            "the uploaded image",
            "const i = document.getElementById('uploadedImage'); return !!i && i.complete;",
            vec![],
            |v| v == &json!(true),
        )
        .await;
        shot(&b, &out, "5-uploaded", width).await;
    }
    println!("screenshots in {}", out.display());
    b.finish().await;
}
