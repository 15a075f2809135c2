//! The README's Uppy 6 recipe, as a user runs it: the code block is bundled with
//! `@uppy/core` and `@uppy/aws-s3` 6.3 from npm (`tests/uppy/`, installed by `scripts/test`
//! with `npm ci`) by esbuild, served from the site's origin, and run in headless Chromium
//! against the embedded store. Two small images go up as POST forms (`fields`), a 7 MiB one
//! in parts; all three are confirmed and shown in the gallery with their names and owner.
//!
//! Without the npm packages (or Chromium) the test says how to get them and passes, unless
//! `CI` is set, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::browser::Browser;
use crate::helpers::html::text;
use crate::helpers::{Doc, spawn_with};

const MIB: u64 = 1024 * 1024;

fn uppy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/uppy")
}

/// The code block after the README's `uppy-recipe` marker.
fn readme_recipe() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let (_, after) = readme
        .split_once("<!-- uppy-recipe")
        .expect("the README marks its Uppy recipe");
    let (_, code) = after.split_once("```js\n").expect("a js block");
    let (code, _) = code.split_once("\n```").expect("the block ends");
    code.to_owned()
}

/// esbuild from `tests/uppy/node_modules`, or `None` (with the reason) when npm never
/// installed it.
fn esbuild() -> Result<PathBuf, String> {
    let bin = uppy_dir().join("node_modules/.bin/esbuild");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "{} is missing: run `npm ci` in tests/uppy (scripts/test does, installing Debian's nodejs and npm if needed)",
            bin.display()
        ))
    }
}

/// Bundle the README's recipe with the test's harness into `out`.
fn bundle(esbuild: &Path, out: &Path) {
    // Inside tests/uppy, so that the imports resolve from its node_modules.
    let build = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(uppy_dir())
        .unwrap();
    std::fs::write(build.path().join("recipe.js"), readme_recipe()).unwrap();
    for f in ["harness.js", "spy.js"] {
        std::fs::copy(uppy_dir().join(f), build.path().join(f)).unwrap();
    }
    let status = Command::new(esbuild)
        .current_dir(uppy_dir())
        .arg(build.path().join("harness.js"))
        .args(["--bundle", "--format=esm", "--log-level=warning"])
        .arg(format!("--outfile={}", out.display()))
        .status()
        .expect("esbuild runs");
    assert!(status.success(), "esbuild failed to bundle the recipe");
}

/// A static dir with the site's files, the test page and the bundle.
fn static_dir(esbuild: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    for entry in std::fs::read_dir(&site).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::copy(uppy_dir().join("uppy.html"), dir.path().join("uppy.html")).unwrap();
    bundle(esbuild, &dir.path().join("uppy-test.js"));
    dir
}

#[actix_web::test]
async fn the_readme_recipe_uploads_small_files_as_forms_and_a_large_one_in_parts() {
    let esbuild = match esbuild() {
        Ok(b) => b,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set, so the Uppy test must run, but {why}")
        }
        Err(why) => {
            eprintln!("skipping the Uppy test: {why}");
            return;
        }
    };
    let Some(b) = Browser::start("uppy_recipe").await else {
        return;
    };
    let assets = static_dir(&esbuild);
    let app = spawn_with(|c| {
        c.max_bytes = 16 * MIB;
        c.static_dir = assets.path().to_owned();
    })
    .await;

    b.goto(&app.url("/static/uppy.html")).await;
    b.wait(
        "the bundle to load",
        "return !!window.harness;",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    b.js("window.harness.start(); return true;", vec![]).await;
    let sizes = b
        .wait(
            "the three images to be drawn and added",
            "const h = window.harness;
             return h.failures.length ? {failures: h.failures} : h.ready ? h.sizes : null;",
            vec![],
            |v| !v.is_null(),
        )
        .await;
    assert!(sizes.get("failures").is_none(), "{sizes}");
    let large = sizes["panorama.png"].as_u64().unwrap_or(0);
    assert!((6 * MIB..=12 * MIB).contains(&large), "{sizes}");

    // Three uploads, one of them 7 MiB in parts, on a busy machine: a generous deadline,
    // polled.
    let deadline = Instant::now() + Duration::from_secs(120);
    let state = loop {
        let state = b
            .js(
                "const h = window.harness;
                 return {confirmed: h.confirmed, failures: h.failures, sent: h.sent};",
                vec![],
            )
            .await;
        let failures = state["failures"].as_array().map_or(0, Vec::len);
        let confirmed = state["confirmed"].as_array().map_or(0, Vec::len);
        if failures > 0 || confirmed == 3 {
            break state;
        }
        if Instant::now() > deadline {
            b.fail(&format!("uploads did not finish: {state}")).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state["failures"], json!([]), "{state}");

    // What the recipe asked: two single-file PUTs (answered with fields), one create, its
    // parts and one completion, each signed.
    let sent = state["sent"].as_array().unwrap();
    let count = |method: &str, continued: bool| {
        sent.iter()
            .filter(|r| r["method"] == json!(method) && r["uploadId"].is_string() == continued)
            .count()
    };
    assert!(sent.iter().all(|r| r["status"] == json!(200)), "{sent:?}");
    assert_eq!(count("PUT", false), 2, "{sent:?}");
    assert_eq!(count("POST", false), 1, "{sent:?}");
    assert_eq!(count("PUT", true), 2, "7 MiB in 5 MiB parts: {sent:?}");
    assert_eq!(count("POST", true), 1, "{sent:?}");
    assert!(
        sent.iter()
            .filter(|r| !r["uploadId"].is_string())
            .all(|r| r["filename"].is_string()),
        "first requests say what the file is: {sent:?}"
    );

    let mut confirmed: Vec<Value> = state["confirmed"].as_array().unwrap().clone();
    confirmed.sort_by_key(|c| c["filename"].as_str().unwrap_or_default().to_owned());
    let names: Vec<&str> = confirmed
        .iter()
        .map(|c| c["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["panorama.png", "scan 2.png", "Été à Paris.jpg"]);
    for c in &confirmed {
        assert_eq!(c["owner"], json!("anonymous"), "{c}");
        let name = c["filename"].as_str().unwrap();
        assert_eq!(c["size"].as_u64(), sizes[name].as_u64(), "{c}");
    }
    assert_eq!(confirmed[0]["content_type"], json!("image/png"));
    assert_eq!(
        (
            confirmed[0]["width"].clone(),
            confirmed[0]["height"].clone()
        ),
        (json!(1800), json!(1400))
    );
    // The multipart upload's ETag is S3's `md5-parts`.
    assert!(
        confirmed[0]["etag"].as_str().unwrap().ends_with("-2"),
        "{}",
        confirmed[0]
    );

    // The gallery shows all three by name; each one's page names its owner.
    let gallery = Doc::page(&app.get("/gallery").await.body);
    let shown: Vec<String> = gallery.all(".card .name").iter().map(text).collect();
    for name in names {
        assert!(shown.iter().any(|s| s == name), "{name} not in {shown:?}");
    }
    for c in &confirmed {
        let page = app.get(c["url"].as_str().unwrap()).await;
        assert_eq!(page.status, awc::http::StatusCode::OK);
        assert!(
            page.body.contains("anonymous") && page.body.contains(c["filename"].as_str().unwrap()),
            "{}",
            page.body
        );
    }
    b.finish().await;
    app.handle.stop(false).await;
}
