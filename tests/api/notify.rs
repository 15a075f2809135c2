//! Upload events delivered to a real receiver on loopback (an actix-web
//! server started here, recording every request and able to answer 500 for a while).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, enc, spawn_with, uploaded_path};
use actix_web::dev::ServerHandle;
use actix_web::{HttpRequest, HttpResponse, web};
use awc::http::StatusCode;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use signpost::config::{CheckpointArg, Config, EventsArgs, StoreSettings};
use signpost::notify::signature::verify;
use signpost::notify::{EVENT_ID_HEADER, SIGNATURE_HEADER, event_id};
use signpost::secret::Secret;
use signpost::sweep::checkpoint::{CHECKPOINT_FILE, bucket_key};

use signpost::testdata;
use signpost::upload::UploadId;

pub(crate) const SECRET: &str = "whsec_test_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    status: u16,
    signature: Option<String>,
    event_id: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

impl Hit {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub(crate) fn key(&self) -> String {
        self.json()["key"].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn assert_signed(&self) {
        let header = self
            .signature
            .as_deref()
            .expect("a Signpost-Signature header");
        verify(
            &Secret::new(SECRET),
            header,
            &self.body,
            Utc::now().timestamp(),
            300,
        )
        .unwrap_or_else(|e| panic!("bad signature {header:?}: {e}"));
        assert_eq!(
            self.event_id.as_deref(),
            self.json()["id"].as_str(),
            "Signpost-Event-Id is the body's id"
        );
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
    }
}

#[derive(Default)]
struct Shared {
    hits: Mutex<Vec<Hit>>,
    failing: AtomicBool,
    /// Keys whose events are refused with a 400, for as long as they are here.
    refused: Mutex<Vec<String>>,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

async fn record(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let key = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["key"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let status = if shared.failing.load(Ordering::SeqCst) {
        500
    } else if shared.refused.lock().unwrap().contains(&key) {
        400
    } else {
        200
    };
    shared.hits.lock().unwrap().push(Hit {
        status,
        signature: header(SIGNATURE_HEADER),
        event_id: header(EVENT_ID_HEADER),
        content_type: header("content-type"),
        body,
    });
    HttpResponse::build(StatusCode::from_u16(status).unwrap()).body("ok")
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let data = web::Data::from(shared.clone());
        let handle = crate::helpers::serve(listener, move |cfg| {
            cfg.app_data(data.clone())
                .route("/hooks/signpost", web::post().to(record));
        });
        Self {
            url: format!("http://{addr}/hooks/signpost"),
            shared,
            handle,
        }
    }

    pub(crate) fn fail(&self, on: bool) {
        self.shared.failing.store(on, Ordering::SeqCst);
    }

    /// Answer 400 to the events of `key` (a receiver that refuses one event forever).
    pub(crate) fn refuse(&self, key: &str) {
        self.shared.refused.lock().unwrap().push(key.to_owned());
    }

    pub(crate) fn accept_all(&self) {
        self.shared.refused.lock().unwrap().clear();
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// The requests answered 2xx: the deliveries.
    pub(crate) fn delivered(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }

    pub(crate) fn delivered_count(&self, key: &str) -> usize {
        self.delivered().iter().filter(|h| h.key() == key).count()
    }

    /// Wait until `cond` holds for the hits so far; false after `within`.
    pub(crate) async fn wait(&self, within: Duration, cond: impl Fn(&[Hit]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if cond(&self.hits()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn wait_delivered(&self, keys: &[&str], within: Duration) {
        let ok = self
            .wait(within, |hits| {
                keys.iter()
                    .all(|k| hits.iter().any(|h| h.status == 200 && h.key() == *k))
            })
            .await;
        assert!(
            ok,
            "not all of {keys:?} delivered within {within:?}; the receiver got: {:#?}",
            self.hits()
                .iter()
                .map(|h| (h.status, h.key()))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

fn notifying(
    rx: &Receiver,
    sweep_secs: u64,
    data_dir: Option<PathBuf>,
    checkpoint: CheckpointArg,
) -> impl FnOnce(&mut Config) {
    let url = rx.url.clone();
    move |c: &mut Config| {
        c.notify_url = Some(url);
        c.notify_secret = Some(SECRET.into());
        c.notify_sweep_secs = sweep_secs;
        c.notify_checkpoint = checkpoint;
        if let Some(d) = data_dir {
            c.data_dir = d;
        }
    }
}

async fn follow_redirect(app: &TestApp, key: &str, etag: &str) {
    let r = app.get(&uploaded_path(key, etag)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn upload_png(app: &TestApp, name: &str, w: u32, h: u32) -> (String, String) {
    app.upload_via_api(name, &testdata::png(w, h), Some((w, h)))
        .await
}

/// An SVG posted as image/png with genuinely signed fields: the store accepts it, the bytes
/// are no image signpost accepts.
async fn upload_liar(app: &TestApp) -> String {
    let svg = testdata::svg_script();
    let p = app.presign("liar.png", "image/png", svg.len(), None).await;
    let r = app.post_presigned(&p, "liar.png", "image/png", &svg).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    p["key"].as_str().unwrap().to_owned()
}

async fn sleep_ms(ms: u64) {
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
}

#[actix_web::test]
async fn a_redirect_confirmed_upload_is_delivered_within_two_seconds_signed_and_complete() {
    let rx = Receiver::start().await;
    // A 30 s sweep: only the wake-up from /uploaded can deliver within 2 s.
    let app = spawn_with(notifying(&rx, 30, None, CheckpointArg::File)).await;
    // Let the first sweep (at start) finish on the empty bucket: it writes the checkpoint.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !app.dir.path().join(CHECKPOINT_FILE).exists() {
        assert!(Instant::now() < deadline, "no checkpoint written at start");
        sleep_ms(20).await;
    }
    sleep_ms(300).await;
    let (key, etag) = upload_png(&app, "Crème brûlée.png", 40, 30).await;
    sleep_ms(200).await;
    assert!(rx.hits().is_empty(), "nothing is sent before the redirect");

    let start = Instant::now();
    follow_redirect(&app, &key, &etag).await;
    rx.wait_delivered(&[&key], Duration::from_secs(2)).await;
    let took = start.elapsed();

    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    let hit = &hits[0];
    hit.assert_signed();
    let v = hit.json();
    assert_eq!(v["id"], event_id(&key, &etag));
    assert_eq!(v["bucket"], "signpost");
    assert_eq!(v["key"], key.as_str());
    assert_eq!(v["etag"], etag.as_str());
    assert_eq!(v["size"], testdata::png(40, 30).len());
    assert_eq!(v["content_type"], "image/png");
    assert_eq!(v["filename"], "Crème brûlée.png");
    assert_eq!(v["width"], 40);
    assert_eq!(v["height"], 30);
    let at = DateTime::parse_from_rfc3339(v["uploaded_at"].as_str().unwrap()).unwrap();
    let age = Utc::now().signed_duration_since(at);
    assert!(age.num_seconds() >= 0 && age.num_seconds() < 60, "{at}");
    assert_eq!(v["type"], "upload.created");
    assert_eq!(v["owner"], "anonymous");
    // One thumbnail (a small image keeps its size), whose URL works for the receiver.
    let thumbs = v["thumbnails"].as_array().unwrap();
    assert_eq!(thumbs.len(), 1, "{v}");
    assert_eq!(
        (thumbs[0]["width"].as_u64(), thumbs[0]["height"].as_u64()),
        (Some(40), Some(30))
    );
    let thumb = app.get(thumbs[0]["url"].as_str().unwrap()).await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    assert_eq!(v.as_object().unwrap().len(), 14, "{v}");

    // Delivered once, not again by later wake-ups for the same upload.
    follow_redirect(&app, &key, &etag).await;
    sleep_ms(700).await;
    assert_eq!(rx.hits().len(), 1);
    eprintln!("delivered {took:?} after the redirect");
}

#[actix_web::test]
async fn an_upload_whose_browser_never_comes_back_is_delivered_by_the_sweep() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let (key, etag) = upload_png(&app, "lost.png", 8, 8).await;
    // No /uploaded: only the periodic sweep can find it.
    rx.wait_delivered(&[&key], Duration::from_secs(8)).await;
    let d = rx.delivered();
    assert_eq!(d.len(), 1);
    d[0].assert_signed();
    assert_eq!(d[0].json()["id"], event_id(&key, &etag));
    assert_eq!(d[0].json()["width"], 8);
    // Later sweeps do not send it again.
    sleep_ms(2_200).await;
    assert_eq!(rx.hits().len(), 1, "{:#?}", rx.hits());
}

#[actix_web::test]
async fn a_receiver_that_fails_for_a_while_gets_every_event_once_it_recovers() {
    let rx = Receiver::start().await;
    rx.fail(true);
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let mut keys = Vec::new();
    for (i, name) in ["one.png", "two.png", "three.png"].iter().enumerate() {
        let (key, etag) = upload_png(&app, name, 10 + i as u32, 10).await;
        if i == 0 {
            follow_redirect(&app, &key, &etag).await;
        }
        keys.push((key, etag));
    }
    // The receiver answers 500 for a while: attempts are made, and retried.
    assert!(
        rx.wait(Duration::from_secs(10), |h| h
            .iter()
            .filter(|h| h.status == 500)
            .count()
            >= 3)
            .await,
        "retries happen while the receiver fails: {:#?}",
        rx.hits().iter().map(|h| h.status).collect::<Vec<_>>()
    );
    sleep_ms(1_000).await;
    assert!(rx.delivered().is_empty());
    rx.fail(false);

    let key_refs: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    rx.wait_delivered(&key_refs, Duration::from_secs(30)).await;
    sleep_ms(1_500).await;

    // Every attempt, failed or not, carried a valid signature.
    for h in rx.hits() {
        h.assert_signed();
    }
    let mut by_key = BTreeMap::new();
    for h in rx.delivered() {
        *by_key.entry(h.key()).or_insert(0) += 1;
        let (_, etag) = keys.iter().find(|(k, _)| *k == h.key()).unwrap();
        assert_eq!(h.json()["id"], event_id(&h.key(), etag));
    }
    let expected: BTreeMap<String, i32> = keys.iter().map(|(k, _)| (k.clone(), 1)).collect();
    assert_eq!(by_key, expected, "each event delivered exactly once");
}

async fn restart_neither_loses_nor_resends(mode: CheckpointArg) {
    let rx = Receiver::start().await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();

    let first = spawn_with(notifying(&rx, 1, Some(dir.clone()), mode)).await;
    let (ka, ea) = upload_png(&first, "a.png", 5, 5).await;
    follow_redirect(&first, &ka, &ea).await;
    rx.wait_delivered(&[&ka], Duration::from_secs(8)).await;

    // The at-least-once window: between the receiver's 2xx and the checkpoint write.
    // Outside it (the checkpoint holds the event), a restart must not re-send.
    let id_a = event_id(&ka, &ea);
    let client = first.store_client();
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let stored = match mode {
            CheckpointArg::File => std::fs::read(dir.join(CHECKPOINT_FILE)).ok(),
            CheckpointArg::Bucket => client
                .get(
                    &bucket_key(&first.settings.prefix, &first.settings.instance_id),
                    1 << 20,
                )
                .await
                .unwrap()
                .map(|b| b.to_vec()),
        };
        if stored.is_some_and(|s| String::from_utf8_lossy(&s).contains(&id_a)) {
            break;
        }
        assert!(Instant::now() < deadline, "the checkpoint never recorded A");
        sleep_ms(50).await;
    }

    // C lands while the receiver is down; signpost stops before delivering it.
    rx.fail(true);
    let (kc, _) = upload_png(&first, "c.png", 6, 6).await;
    assert!(
        rx.wait(Duration::from_secs(8), |h| h
            .iter()
            .any(|h| h.status == 500 && h.key() == kc))
            .await
    );
    first.handle.stop(true).await;
    sleep_ms(500).await;
    rx.fail(false);
    let before_restart = rx.hits().len();

    // A new signpost on the same data dir (and so the same bucket and checkpoint).
    let second = spawn_with(notifying(&rx, 1, Some(dir.clone()), mode)).await;
    let (kb, eb) = upload_png(&second, "b.png", 7, 7).await;
    follow_redirect(&second, &kb, &eb).await;
    rx.wait_delivered(&[&kb, &kc], Duration::from_secs(15))
        .await;
    sleep_ms(2_500).await; // a few more sweeps

    assert_eq!(
        rx.delivered_count(&ka),
        1,
        "A was re-sent after the restart"
    );
    assert_eq!(rx.delivered_count(&kb), 1);
    assert_eq!(rx.delivered_count(&kc), 1, "C was lost or duplicated");
    let after: Vec<String> = rx.hits()[before_restart..].iter().map(Hit::key).collect();
    assert!(!after.contains(&ka), "{after:?}");
    for h in rx.hits() {
        h.assert_signed();
    }
    second.handle.stop(true).await;
}

#[actix_web::test]
async fn a_restart_neither_loses_nor_resends_with_the_file_checkpoint() {
    restart_neither_loses_nor_resends(CheckpointArg::File).await;
}

#[actix_web::test]
async fn a_restart_neither_loses_nor_resends_with_the_bucket_checkpoint() {
    restart_neither_loses_nor_resends(CheckpointArg::Bucket).await;
}

#[actix_web::test]
async fn a_forged_redirect_for_a_missing_object_delivers_nothing() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let ghost = format!("uploads/{}/ghost.png", UploadId::random(Utc::now()));
    let r = app
        .get(&format!(
            "/uploaded?bucket=signpost&key={}&etag=0123456789abcdef0123456789abcdef",
            enc(&ghost)
        ))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    sleep_ms(2_500).await;
    assert!(rx.hits().is_empty(), "{:#?}", rx.hits());

    // The receiver does work: a real upload arrives, and only it.
    let (key, _) = upload_png(&app, "real.png", 3, 3).await;
    rx.wait_delivered(&[&key], Duration::from_secs(8)).await;
    assert!(rx.hits().iter().all(|h| h.key() == key));
}

#[actix_web::test]
async fn a_file_that_fails_verification_is_deleted_and_not_delivered() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let client = app.store_client();
    // The store took it (201); the 1 s sweep may delete it at any moment from now on.
    let liar = upload_liar(&app).await;
    let (good, _) = upload_png(&app, "good.png", 4, 4).await;

    rx.wait_delivered(&[&good], Duration::from_secs(8)).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while client.head(&liar).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the liar was not deleted");
        sleep_ms(100).await;
    }
    sleep_ms(1_200).await;
    assert!(
        rx.hits().iter().all(|h| h.key() != liar),
        "{:#?}",
        rx.hits()
    );
    assert_eq!(rx.hits().len(), 1);
}

#[actix_web::test]
async fn a_pixel_bomb_is_deleted_and_never_announced() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let bomb = testdata::png_claiming(100_000, 100_000);
    let (bomb_key, _) = app.upload_via_api("bomb.png", &bomb, None).await;
    let (good, _) = upload_png(&app, "good.png", 4, 4).await;
    rx.wait_delivered(&[&good], Duration::from_secs(8)).await;
    app.wait_until_gone(&bomb_key).await;
    sleep_ms(1_200).await;
    assert!(rx.hits().iter().all(|h| h.key() != bomb_key));
}

/// An upload the store cannot read (every read of it answers 500) holds back no event: the
/// uploads after it are announced, and it is retried, then set aside.
#[actix_web::test]
async fn an_unreadable_upload_holds_back_no_event_and_is_set_aside() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let (broken, _) = upload_png(&app, "broken.png", 4, 4).await;
    app.break_object(&broken);
    // No read of it can fail before this.
    let broken_at = Instant::now();
    let (later1, _) = upload_png(&app, "later1.png", 5, 5).await;
    let (later2, _) = upload_png(&app, "later2.png", 6, 6).await;
    rx.wait_delivered(&[&later1, &later2], Duration::from_secs(10))
        .await;
    assert_eq!(rx.delivered_count(&broken), 0);

    // Retried on later sweeps, one more sweep interval (here a second) apart each time: 1,
    // 2, 3 and 4 s after its failures, however often sweeps run (each upload wakes one).
    // Then set aside, with a marker: 10 s after its first failure at the soonest.
    let read_cp = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(app.dir.path().join(CHECKPOINT_FILE)).unwrap())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_cp()["failing"].get(&broken).is_none() {
        assert!(Instant::now() < deadline, "{}", read_cp());
        sleep_ms(100).await;
    }
    let marker = signpost::store::records::set_aside_key(&broken);
    let client = app.store_client();
    while client.head(&marker).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "not set aside after 30 s");
        upload_png(&app, "waker.png", 2, 2).await;
        sleep_ms(200).await;
    }
    assert!(
        broken_at.elapsed() >= Duration::from_millis(9_500),
        "set aside {:?} after it broke: a store's passing trouble used up its attempts",
        broken_at.elapsed()
    );
    // The marker is written during the pass, the checkpoint at its end.
    while read_cp()["failing"].get(&broken).is_some() {
        assert!(Instant::now() < deadline, "{}", read_cp());
        sleep_ms(200).await;
    }
    assert_eq!(rx.delivered_count(&broken), 0);
    // Still in the bucket: a store error is no verdict.
    assert!(
        client
            .list("uploads/", None, 1000)
            .await
            .unwrap()
            .objects
            .iter()
            .any(|o| o.key == broken)
    );
}

/// An upload removed from the bucket while its event is still being retried: the event can
/// no longer be built, so it is dropped, not kept waiting (and waking the sweep) for a day.
#[actix_web::test]
async fn an_event_whose_upload_is_removed_meanwhile_is_dropped() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let (key, _) = upload_refused(&app, &rx, "gone.png").await;
    let read_cp = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(app.dir.path().join(CHECKPOINT_FILE)).unwrap())
            .unwrap()
    };
    let retried = |cp: &serde_json::Value| {
        cp["retrying"]
            .as_object()
            .is_some_and(|m| m.values().any(|r| r["key"] == key.as_str()))
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !retried(&read_cp()) {
        assert!(Instant::now() < deadline, "never retried: {}", read_cp());
        sleep_ms(100).await;
    }
    assert!(refusals(&rx, &key) >= 1);

    app.store_client().delete(&key).await.unwrap();
    while retried(&read_cp()) {
        assert!(Instant::now() < deadline, "still retried: {}", read_cp());
        sleep_ms(100).await;
    }
    assert_eq!(rx.delivered_count(&key), 0);
}

/// More outbox events waiting for their next attempt than one listing page holds: the
/// events after them are still delivered at once.
#[actix_web::test]
async fn events_waiting_in_the_outbox_hold_back_none_behind_them() {
    use signpost::notify::Event;
    use signpost::notify::outbox;
    use signpost::store::records;
    use signpost::upload::ObjectKey;

    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let (key, _) = upload_png(&app, "model.png", 3, 3).await;
    rx.wait_delivered(&[&key], Duration::from_secs(10)).await;
    let client = app.store_client();
    let prefix = &app.settings.prefix;
    let object = ObjectKey::parse(prefix, &key).unwrap();
    let record = records::read(&client, prefix, &object)
        .await
        .unwrap()
        .unwrap();
    let model = Event::deleted("signpost", &record, Utc::now());
    // 120 deletions in the outbox, in key order: the first 110 refused by the receiver (they
    // wait for their next attempt), then 10 it takes.
    let mut taken = Vec::new();
    for i in 0..120 {
        let mut event = model.clone();
        event.id = format!("{:03}{}", i, &model.id[3..]);
        event.key = format!("{key}-{i:03}");
        if i < 110 {
            rx.refuse(&event.key);
        } else {
            taken.push(event.key.clone());
        }
        outbox::enqueue(&client, &event).await.unwrap();
    }
    let taken: Vec<&str> = taken.iter().map(String::as_str).collect();
    rx.wait_delivered(&taken, Duration::from_secs(15)).await;
}

#[actix_web::test]
async fn events_prints_what_would_be_delivered_and_deletes_nothing() {
    // The background sweep (which would delete the liar) runs once at start, then hourly:
    // only `events` reads the bucket after the uploads.
    let app = spawn_with(|c| c.notify_sweep_secs = 3600).await;
    let cp = app.dir.path().join(CHECKPOINT_FILE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cp.exists() {
        assert!(Instant::now() < deadline, "no first sweep");
        sleep_ms(20).await;
    }
    sleep_ms(300).await;
    let client = app.store_client();
    let since = Utc::now() - chrono::Duration::seconds(5);
    let (k1, e1) = upload_png(&app, "first.png", 2, 3).await;
    let (k2, e2) = upload_png(&app, "second.png", 4, 5).await;
    let liar = upload_liar(&app).await;

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let summary = signpost::cli::events::write_events(
        &client,
        &app.image_urls(),
        &app.settings,
        since,
        Utc::now(),
        &mut out,
        &mut err,
    )
    .await
    .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summary.printed, 2, "{lines:#?}");
    assert_eq!(summary.rejected, 1);
    let ids: Vec<&str> = lines.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&event_id(&k1, &e1).as_str()));
    assert!(ids.contains(&event_id(&k2, &e2).as_str()));
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains(&liar), "{err}");
    assert!(
        client.head(&liar).await.unwrap().is_some(),
        "a read-only command must not delete"
    );

    // Nothing at or after a later time.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let later = Utc::now() + chrono::Duration::seconds(5);
    let s = signpost::cli::events::write_events(
        &client,
        &app.image_urls(),
        &app.settings,
        later,
        Utc::now(),
        &mut out,
        &mut err,
    )
    .await
    .unwrap();
    assert_eq!(s.printed, 0);
    assert!(out.is_empty());

    // The command itself, against the running store.
    let mut settings = app.settings.clone();
    settings.store = StoreSettings::Embedded {
        bind: app.s3_addr.unwrap(),
    };
    let code = signpost::cli::events::run(
        &settings,
        &EventsArgs {
            action: None,
            since: Some(since.to_rfc3339()),
        },
    )
    .await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let bad = signpost::cli::events::run(
        &settings,
        &EventsArgs {
            action: None,
            since: Some("last tuesday".into()),
        },
    )
    .await;
    assert_eq!(bad, std::process::ExitCode::from(2));
}

#[actix_web::test]
async fn the_secret_is_in_no_request_but_the_signature() {
    let rx = Receiver::start().await;
    let app = spawn_with(notifying(&rx, 1, None, CheckpointArg::File)).await;
    let (key, _) = upload_png(&app, "s.png", 2, 2).await;
    rx.wait_delivered(&[&key], Duration::from_secs(8)).await;
    for h in rx.hits() {
        assert!(!String::from_utf8_lossy(&h.body).contains(SECRET));
        assert!(!h.signature.unwrap_or_default().contains(SECRET));
    }
    let cp = std::fs::read_to_string(app.dir.path().join(CHECKPOINT_FILE)).unwrap();
    assert!(!cp.contains(SECRET));
}

/// The sweep itself, with a zero window (the watermark would pass the upload at once if it
/// were allowed to) and a clock the test moves: a failed delivery holds the watermark, is
/// attempted again only once its backoff is over, and the watermark passes it once it is
/// delivered.
#[actix_web::test]
async fn the_checkpoint_never_passes_an_undelivered_upload() {
    use signpost::notify::delivery::Deliverer;
    use signpost::store::Verifier;
    use signpost::sweep::checkpoint::{Checkpoint, CheckpointStore};
    use signpost::sweep::{Sweeper, Swept};
    use signpost::upload::Clock;

    let rx = Receiver::start().await;
    rx.fail(true);
    let app = spawn_with(|_| {}).await; // no background sweep
    let (key, etag) = upload_png(&app, "x.png", 3, 3).await;
    let id = event_id(&key, &etag);
    let at_ms = signpost::upload::ObjectKey::parse(&app.settings.prefix, &key)
        .unwrap()
        .id()
        .time()
        .unwrap()
        .timestamp_millis();
    let cp_path = app.dir.path().join("cp.json");
    let mut sweeper = Sweeper::new(
        app.store_client(),
        Some(Deliverer::new(rx.url.parse().unwrap(), Secret::new(SECRET))),
        CheckpointStore::File(cp_path.clone()),
        app.settings.bucket.clone(),
        Verifier::for_settings(&app.settings),
        Clock::System,
        Duration::ZERO,
    );
    sweeper.checkpoint = Some(Checkpoint::fresh(
        &app.settings.bucket,
        &app.settings.prefix,
        at_ms - 1_000,
    ));
    let t0 = Utc::now();
    sweeper.clock = Clock::Fixed(t0);

    // Refused: the pass goes on (nothing else waits behind it), the watermark stops at it.
    assert_eq!(sweeper.sweep().await.unwrap(), Swept::Idle);
    let cp = sweeper.checkpoint.clone().unwrap();
    assert_eq!(cp.watermark_ms, at_ms, "stops at the undelivered upload");
    assert!(cp.delivered.is_empty());
    assert_eq!(cp.retrying[&id].attempts, 1);
    assert!(cp.retrying[&id].last_error.contains("500"), "{cp:?}");
    assert_eq!(rx.hits().len(), 1);
    let wait = sweeper.next_retry_in().expect("a retry is scheduled");
    assert!(wait <= Duration::from_millis(500), "{wait:?}");

    // Within its backoff, it is not attempted again.
    assert_eq!(sweeper.sweep().await.unwrap(), Swept::Idle);
    assert_eq!(rx.hits().len(), 1);
    // After it, it is.
    sweeper.clock = Clock::Fixed(t0 + chrono::Duration::seconds(1));
    assert_eq!(sweeper.sweep().await.unwrap(), Swept::Idle);
    assert_eq!(rx.hits().len(), 2);
    assert_eq!(
        sweeper.checkpoint.as_ref().unwrap().retrying[&id].attempts,
        2
    );
    assert_eq!(sweeper.checkpoint.as_ref().unwrap().watermark_ms, at_ms);

    rx.fail(false);
    sweeper.clock = Clock::Fixed(t0 + chrono::Duration::seconds(10));
    assert_eq!(sweeper.sweep().await.unwrap(), Swept::Idle);
    assert_eq!(rx.delivered_count(&key), 1);
    let cp = sweeper.checkpoint.clone().unwrap();
    assert!(cp.watermark_ms > at_ms, "passes it once delivered");
    assert!(cp.retrying.is_empty());
    let saved: Checkpoint = serde_json::from_slice(&std::fs::read(&cp_path).unwrap()).unwrap();
    assert_eq!(saved, cp);
    // Behind the watermark, it is never listed again.
    assert_eq!(sweeper.sweep().await.unwrap(), Swept::Idle);
    assert_eq!(rx.hits().len(), 3);
    assert_eq!(rx.delivered()[0].json()["id"], id);
}

/// Presign and upload a PNG whose event the receiver refuses (400) from the start.
async fn upload_refused(app: &TestApp, rx: &Receiver, name: &str) -> (String, String) {
    let png = testdata::png(7, 7);
    let p = app
        .presign(name, "image/png", png.len(), Some((7, 7)))
        .await;
    let key = p["key"].as_str().unwrap().to_owned();
    rx.refuse(&key);
    let r = app.post_presigned(&p, name, "image/png", &png).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (key, crate::helpers::etag_of(&r.body))
}

fn thumbs_len(parked: &serde_json::Value) -> usize {
    parked["event"]["thumbnails"].as_array().map_or(0, Vec::len)
}

fn refusals(rx: &Receiver, key: &str) -> usize {
    rx.hits()
        .iter()
        .filter(|h| h.status == 400 && h.key() == key)
        .count()
}

/// A receiver that refuses one event forever: the events after it arrive as usual, before
/// and after it is parked; it is parked (and then not retried), listed by
/// `events dead-letters`, and sent again by `events redeliver ID` and `--all`.
#[actix_web::test]
async fn an_event_refused_forever_holds_nothing_back_and_is_parked_then_redelivered() {
    use signpost::cli::events::{redeliver, write_dead_letters};
    use signpost::notify::dead_letter::dead_letter_key;
    use signpost::notify::delivery::Deliverer;

    let rx = Receiver::start().await;
    let app = spawn_with(|c| {
        notifying(&rx, 1, None, CheckpointArg::File)(c);
        c.notify_dead_letter_after = "6s".into();
    })
    .await;
    let client = app.store_client();
    let (poison, poison_etag) = upload_refused(&app, &rx, "poison.png").await;
    let poison_id = event_id(&poison, &poison_etag);
    let (later1, _) = upload_png(&app, "later1.png", 5, 5).await;

    // Before parking: the later upload arrives while the refused one is retried.
    rx.wait_delivered(&[&later1], Duration::from_secs(5)).await;
    assert!(refusals(&rx, &poison) >= 1, "{:#?}", rx.hits());
    assert!(
        client
            .head(&dead_letter_key(&poison_id))
            .await
            .unwrap()
            .is_none(),
        "parked too early"
    );
    assert!(
        rx.wait(Duration::from_secs(10), |_| refusals(&rx, &poison) >= 2)
            .await,
        "the refused event is retried"
    );

    // Parked after --notify-dead-letter-after.
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .head(&dead_letter_key(&poison_id))
        .await
        .unwrap()
        .is_none()
    {
        assert!(Instant::now() < deadline, "not parked within 20 s");
        sleep_ms(100).await;
    }
    // A second refused event, to be parked too.
    let (poison2, poison2_etag) = upload_refused(&app, &rx, "poison2.png").await;
    let poison2_id = event_id(&poison2, &poison2_etag);

    // After parking: later events arrive, and the parked one is not tried again.
    let (later2, _) = upload_png(&app, "later2.png", 6, 6).await;
    rx.wait_delivered(&[&later2], Duration::from_secs(5)).await;
    let tried = refusals(&rx, &poison);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client
        .head(&dead_letter_key(&poison2_id))
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the second one not parked within 20 s"
        );
        sleep_ms(100).await;
    }
    // Parked means done: no retry state left, and counted as delivered in the checkpoint.
    let cp_path = app.dir.path().join(CHECKPOINT_FILE);
    let read_cp = || -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&cp_path).unwrap()).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while read_cp()["retrying"].get(&poison_id).is_some() {
        assert!(Instant::now() < deadline, "{}", read_cp());
        sleep_ms(100).await;
    }
    assert!(
        read_cp()["delivered"].get(&poison_id).is_some(),
        "{}",
        read_cp()
    );
    sleep_ms(1_500).await; // a sweep or more
    assert_eq!(refusals(&rx, &poison), tried, "a parked event is retried");
    assert_eq!(rx.delivered_count(&poison), 0);

    // `signpost events dead-letters`: one line each.
    let mut out = Vec::new();
    assert_eq!(write_dead_letters(&client, &mut out).await.unwrap(), 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let line = lines
        .iter()
        .find(|l| l["id"] == poison_id.as_str())
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(line["key"], poison.as_str());
    assert_eq!(line["type"], "upload.created");
    assert!(line["attempts"].as_u64().unwrap() >= 2, "{line}");
    assert!(
        line["last_error"].as_str().unwrap().contains("400"),
        "{line}"
    );
    let parked_at = DateTime::parse_from_rfc3339(line["parked_at"].as_str().unwrap()).unwrap();
    let first = DateTime::parse_from_rfc3339(line["first_failed_at"].as_str().unwrap()).unwrap();
    assert!(parked_at - first >= chrono::Duration::seconds(6), "{line}");

    // A parked event's thumbnail URLs were signed for an hour or so: stand in for an old
    // one whose links have expired.
    let letter = dead_letter_key(&poison_id);
    let mut parked: serde_json::Value =
        serde_json::from_slice(&client.get(&letter, 1 << 20).await.unwrap().unwrap()).unwrap();
    let thumbs = parked["event"]["thumbnails"].as_array_mut().unwrap();
    assert!(!thumbs.is_empty(), "{parked}");
    for t in thumbs.iter_mut() {
        t["url"] = "http://127.0.0.1:9/expired".into();
    }
    let body = Bytes::from(serde_json::to_vec(&parked).unwrap());
    client.put(&letter, body, "application/json").await.unwrap();

    // `signpost events redeliver ID`, then `--all`, once the receiver takes them.
    rx.accept_all();
    let urls = signpost::store::ImageUrls::new(Arc::new(app.store_target()), None);
    let deliverer =
        Deliverer::new(rx.url.parse().unwrap(), Secret::new(SECRET)).with_image_urls(urls);
    let prefix = &app.settings.prefix;
    let mut out = Vec::new();
    let r = redeliver(&client, &deliverer, prefix, Some(&poison_id), &mut out)
        .await
        .unwrap();
    assert_eq!((r.delivered, r.failed, r.missing), (1, 0, 0));
    assert_eq!(rx.delivered_count(&poison), 1);
    // Its thumbnails come with links signed for this delivery, which work.
    let sent = rx
        .delivered()
        .into_iter()
        .find(|h| h.key() == poison)
        .unwrap();
    let sent = sent.json();
    let links = sent["thumbnails"].as_array().unwrap();
    assert_eq!(links.len(), thumbs_len(&parked), "{sent}");
    for link in links {
        let url = link["url"].as_str().unwrap();
        assert!(!url.contains("expired"), "{sent}");
        let got = app.get(url).await;
        assert_eq!(got.status, StatusCode::OK, "{url}");
    }
    assert_eq!(rx.delivered_count(&poison2), 0);
    let r = redeliver(&client, &deliverer, prefix, Some(&poison_id), &mut out)
        .await
        .unwrap();
    assert_eq!(r.missing, 1, "a redelivered event leaves the dead letters");
    // The real commands, against the running store.
    let cli = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend([
            "--data-dir".into(),
            app.dir.path().display().to_string(),
            "--embedded-s3-bind".into(),
            app.s3_addr.unwrap().to_string(),
        ]);
        actix_web::rt::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            crate::process::run_to_end(&refs, &[])
        })
    };
    let (status, listed) = cli(&["events", "dead-letters"]).await.unwrap();
    assert!(status.success(), "{listed}");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        listed.contains(&poison2_id) && !listed.contains(&poison_id),
        "{listed}"
    );
    let url = rx.url.clone();
    let (status, text) = cli(&[
        "events",
        "redeliver",
        "--all",
        "--notify-url",
        &url,
        "--notify-secret",
        SECRET,
    ])
    .await
    .unwrap();
    assert!(status.success(), "{text}");
    assert_eq!(rx.delivered_count(&poison2), 1);
    let (status, listed) = cli(&["events", "dead-letters"]).await.unwrap();
    assert!(status.success() && listed.trim().is_empty(), "{listed}");
    let mut out = Vec::new();
    assert_eq!(write_dead_letters(&client, &mut out).await.unwrap(), 0);
    for h in rx.delivered() {
        h.assert_signed();
    }
    // The sweep does not send them again.
    sleep_ms(1_500).await;
    assert_eq!(rx.delivered_count(&poison), 1);
    assert_eq!(rx.delivered_count(&poison2), 1);
}

/// The real binary says it at error level when it parks an event.
#[actix_web::test]
async fn a_parked_event_is_logged_at_error_level() {
    let rx = Receiver::start().await;
    rx.fail(true);
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--notify-url",
        rx.url.as_str(),
        "--notify-secret",
        SECRET,
        "--notify-sweep-secs",
        "1",
        "--notify-dead-letter-after",
        "2s",
    ];
    let mut server = crate::process::Server::start(dir.path(), &args, &[]);
    server.ready().await;
    let key = crate::scale_out::upload(&server, "refused.png", 4).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.stdout_text();
        let line = log
            .lines()
            .find(|l| l.contains("parked as a dead letter") && l.contains(&key));
        if let Some(line) = line {
            assert!(line.contains("ERROR"), "{line}");
            assert!(line.contains("500"), "the last error: {line}");
            break;
        }
        assert!(Instant::now() < deadline, "no dead letter logged: {log}");
        sleep_ms(100).await;
    }
    assert!(rx.hits().len() >= 2, "retried before it was parked");
}
