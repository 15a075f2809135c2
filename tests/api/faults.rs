//! Store faults: with its store down, hanging, failing with 500 or answering garbage, signpost
//! answers 503/502 quickly with a useful message, still signs (the page and the fragment render),
//! and recovers by itself when the store comes back.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::helpers::fake_store::{FakeStore, Mode, free_port};
use crate::helpers::*;
use awc::http::StatusCode;
use signpost::config::Config;
use signpost::secret::{Credentials, Secret};
use signpost::store::embedded::{EmbeddedOptions, EmbeddedStore};
use signpost::testdata;

const AKID: &str = "SPFAULTTESTKEY000001";
const SECRET: &str = "fault-test-secret-0123456789abcdefghijklm";
/// What "quickly" means.
const QUICK: Duration = Duration::from_secs(5);

/// A real store behind the fake (its proxy mode), with the same credentials as the app.
struct Upstream {
    _dir: tempfile::TempDir,
    store: Option<EmbeddedStore>,
}

impl Upstream {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::start(EmbeddedOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            bucket: "signpost".into(),
            credentials: Credentials {
                access_key_id: AKID.into(),
                secret_access_key: Secret::new(SECRET),
                session_token: None,
            },
            allowed_origins: Vec::new(),
            max_bytes: 10 * 1024 * 1024,
            policy_ttl: std::time::Duration::from_secs(600),
            limits: signpost::store::embedded::Limits::for_max_bytes(10 * 1024 * 1024),
        })
        .unwrap();
        Self {
            _dir: dir,
            store: Some(store),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.store.as_ref().unwrap().addr()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(s) = self.store.take() {
            s.stop();
        }
    }
}

/// The app's store is `http://127.0.0.1:PORT`; `fast`: short timeouts, else the defaults.
fn external(c: &mut Config, port: u16, fast: bool) {
    c.s3_endpoint = Some(format!("http://127.0.0.1:{port}"));
    c.s3_bucket = Some("signpost".into());
    c.access_key_id = Some(AKID.into());
    c.secret_access_key = Some(SECRET.into());
    if fast {
        c.s3_connect_timeout_ms = 300;
        c.s3_timeout_ms = 700;
    }
}

/// Upload a real PNG straight into the upstream store with a form the app signed.
async fn upload(app: &TestApp, upstream: &Upstream) -> (String, String) {
    let png = testdata::png(4, 3);
    let p = app
        .presign("fault-photo.png", "image/png", png.len(), Some((4, 3)))
        .await;
    // The form's action names the fake; the POST policy does not cover the host, so the
    // same form goes to the real store directly.
    let url = format!("http://{}/signpost", upstream.addr());
    let r = app
        .post_form(&url, &api_fields(&p), "fault-photo.png", "image/png", &png)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (p["key"].as_str().unwrap().to_owned(), etag_of(&r.body))
}

const FRAGMENT: &str = "/fragments/image-meta?filename=cat.png&content_type=image%2Fpng&size=1000";

/// Every store-backed endpoint answers one of `statuses` with one of `codes`, quickly and
/// with a useful message; signing still works.
async fn assert_fault(
    app: &TestApp,
    key: &str,
    etag: &str,
    statuses: &[u16],
    codes: &[&str],
    what: &str,
) {
    let start = Instant::now();
    let confirm = serde_json::json!({"key": key, "etag": etag});
    let (gallery, uploaded, api, index, fragment) = futures_util::join!(
        async {
            let r = app.get("/gallery").await;
            (r, start.elapsed())
        },
        async {
            let r = app.get(&uploaded_path(key, etag)).await;
            (r, start.elapsed())
        },
        async {
            let r = app.post_json("/api/uploads/confirm", &confirm).await;
            (r, start.elapsed())
        },
        app.get("/"),
        app.get(FRAGMENT),
    );
    for (name, (r, took)) in [
        ("/gallery", gallery),
        ("/uploaded", uploaded),
        ("/api/uploads/confirm", api),
    ] {
        println!(
            "{what}: {name} → {} in {} ms",
            r.status.as_u16(),
            took.as_millis()
        );
        assert!(
            statuses.contains(&r.status.as_u16()),
            "{what}: {name} answered {}: {}",
            r.status,
            r.body
        );
        assert!(took < QUICK, "{what}: {name} took {took:?}");
        assert!(
            codes.iter().any(|c| r.body.contains(c)),
            "{what}: {name} has none of the codes {codes:?}: {}",
            r.body
        );
        assert!(
            r.body.contains("storage service"),
            "{what}: {name}'s message does not say what failed: {}",
            r.body
        );
        assert!(
            !r.body.contains(SECRET) && !r.body.contains("X-Amz-Signature"),
            "{what}: {name} leaks a signed URL or the secret: {}",
            r.body
        );
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                r.header("retry-after").is_some(),
                "{what}: a 503 without Retry-After"
            );
        }
        if name.starts_with("/api/") {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert!(
                codes.contains(&v["error"]["code"].as_str().unwrap()),
                "{}",
                r.body
            );
        }
    }
    assert_eq!(
        index.status,
        StatusCode::OK,
        "{what}: / fails: {}",
        index.body
    );
    assert!(
        index.body.contains("x-amz-signature"),
        "{what}: / not signed"
    );
    assert_eq!(
        fragment.status,
        StatusCode::OK,
        "{what}: the fragment fails: {}",
        fragment.body
    );
    assert!(fragment.body.contains("x-amz-signature"));
}

/// The store is back: everything works again, without a restart.
async fn assert_recovered(app: &TestApp, key: &str, etag: &str, what: &str) {
    // The confirmation first: the gallery shows confirmed uploads only.
    let uploaded = app.get(&uploaded_path(key, etag)).await;
    assert_eq!(
        uploaded.status,
        StatusCode::OK,
        "{what}: no recovery: {}",
        uploaded.body
    );
    assert!(uploaded.body.contains("fault-photo.png"));
    let gallery = app.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK, "{}", gallery.body);
    assert!(gallery.body.contains("fault-photo.png"), "{}", gallery.body);
    let api = app
        .post_json(
            "/api/uploads/confirm",
            &serde_json::json!({"key": key, "etag": etag}),
        )
        .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["key"], key);
    println!("{what}: recovered");
}

/// One fault, then recovery on the same port.
async fn fault_then_recovery(mode: Mode, statuses: &[u16], codes: &[&str], what: &str) {
    let upstream = Upstream::start();
    let fake = FakeStore::start(mode);
    fake.set_upstream(upstream.addr());
    let app = spawn_with(|c| external(c, fake.port(), true)).await;
    let (key, etag) = upload(&app, &upstream).await;

    assert_fault(&app, &key, &etag, statuses, codes, what).await;
    // Twice: the second request meets whatever the first left in the connection pool.
    assert_fault(&app, &key, &etag, statuses, codes, what).await;
    assert!(fake.accepted() > 0, "{what}: the fake was never asked");

    fake.set_mode(Mode::Proxy);
    assert_recovered(&app, &key, &etag, what).await;
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_hanging_store_times_out_with_503_and_recovers() {
    fault_then_recovery(Mode::Hang, &[503], &["store_timeout"], "hang").await;
}

#[actix_web::test]
async fn a_store_answering_500_gives_502_and_recovers() {
    fault_then_recovery(Mode::Error500, &[502], &["store_failed"], "500").await;
}

#[actix_web::test]
async fn a_store_answering_garbage_gives_502_and_recovers() {
    fault_then_recovery(
        Mode::GarbageBody,
        &[502],
        &["store_bad_response"],
        "garbage body",
    )
    .await;
}

/// Each kind of garbage, as a listing: never an (empty) gallery.
#[actix_web::test]
async fn no_kind_of_garbage_passes_for_a_listing() {
    let fake = FakeStore::start(Mode::GarbageBody);
    let app = spawn_with(|c| external(c, fake.port(), true)).await;
    for i in 0..crate::helpers::fake_store::GARBAGE_KINDS {
        let r = app.get("/gallery").await;
        assert_eq!(
            r.status,
            StatusCode::BAD_GATEWAY,
            "garbage #{i} passed for a listing: {}",
            r.body
        );
        assert!(r.body.contains("store_bad_response"), "{}", r.body);
    }
    app.handle.stop(false).await;
}

#[actix_web::test]
async fn a_store_speaking_no_http_gives_502_or_503_and_recovers() {
    fault_then_recovery(
        Mode::GarbageProtocol,
        &[502, 503],
        &["store_bad_response", "store_unreachable"],
        "garbage protocol",
    )
    .await;
}

#[actix_web::test]
async fn a_store_with_nothing_listening_gives_503_and_recovers_when_it_starts() {
    let upstream = Upstream::start();
    let port = free_port();
    let app = spawn_with(|c| external(c, port, true)).await;
    let (key, etag) = upload(&app, &upstream).await;

    assert_fault(&app, &key, &etag, &[503], &["store_unreachable"], "down").await;
    assert_fault(&app, &key, &etag, &[503], &["store_unreachable"], "down").await;

    // The store comes up on the same port.
    let fake = FakeStore::start_on(format!("127.0.0.1:{port}").parse().unwrap(), Mode::Proxy)
        .expect("the port is free again");
    fake.set_upstream(upstream.addr());
    assert_recovered(&app, &key, &etag, "down").await;
    app.handle.stop(false).await;
}

/// With the default timeouts (1 s connect, 3 s total) a hanging and a down store are still
/// reported within 5 s.
#[actix_web::test]
async fn the_default_timeouts_answer_within_five_seconds() {
    let upstream = Upstream::start();
    let hanging = FakeStore::start(Mode::Hang);
    let down = free_port();
    let app_hang = spawn_with(|c| external(c, hanging.port(), false)).await;
    let app_down = spawn_with(|c| external(c, down, false)).await;
    // The binary's own defaults (the flags), and the tests' base configuration.
    let cli = <signpost::config::Cli as clap::Parser>::try_parse_from(["signpost"]).unwrap();
    assert_eq!(
        (cli.config.s3_connect_timeout_ms, cli.config.s3_timeout_ms),
        (1000, 3000)
    );
    assert_eq!(app_hang.settings.s3_timeout, Duration::from_secs(3));
    assert_eq!(app_hang.settings.s3_connect_timeout, Duration::from_secs(1));
    let (key, etag) = upload(&app_hang, &upstream).await;

    futures_util::join!(
        assert_fault(
            &app_hang,
            &key,
            &etag,
            &[503],
            &["store_timeout"],
            "hang (defaults)"
        ),
        assert_fault(
            &app_down,
            &key,
            &etag,
            &[503],
            &["store_unreachable"],
            "down (defaults)"
        ),
    );
    app_hang.handle.stop(false).await;
    app_down.handle.stop(false).await;
}
