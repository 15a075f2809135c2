//! Several instances of the real binary on one bucket (the bucket checkpoint): instance `a`
//! runs the embedded store, the others use it as their `--s3-endpoint`. Each upload's event
//! is delivered by one instance; when one is killed, the others take over its share.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use signpost::store::multipart::form_body;
use signpost::sweep::members::owner;
use signpost::testdata;

use crate::helpers::{api_fields, etag_of};
use crate::notify::{Receiver, SECRET};
use crate::process::Server;

/// Short, so that a takeover happens within seconds; not so short that a heartbeat late on
/// a loaded machine (beats come every third of it) looks like a death.
const TTL_SECS: u64 = 8;

fn args(rx: &Receiver, id: &str, ttl_secs: u64) -> Vec<String> {
    let ttl = ttl_secs.to_string();
    [
        "--notify-url",
        &rx.url,
        "--notify-secret",
        SECRET,
        "--notify-checkpoint",
        "bucket",
        "--notify-sweep-secs",
        "1",
        "--instance-ttl-secs",
        &ttl,
        "--instance-id",
        id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn start(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Server {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(dir, &refs, env)
}

/// Instances `a` (with the embedded store), then `b`, `c`… on its store, all ready and each
/// seeing all the others.
struct Cluster {
    servers: Vec<(String, Server)>,
    /// Killed instances (kept for their logs).
    dead: Vec<(String, Server)>,
    /// `a`'s first: it runs the embedded store.
    dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    async fn start(rx: &Receiver, n: usize) -> Self {
        Self::start_with_ttl(rx, n, TTL_SECS).await
    }

    async fn start_with_ttl(rx: &Receiver, n: usize, ttl_secs: u64) -> Self {
        let ids: Vec<String> = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        let mut dirs = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let mut a = start(dir.path(), &args(rx, "a", ttl_secs), &[]);
        a.ready().await;
        let creds = signpost::store::embedded::load_credentials(dir.path())
            .unwrap()
            .expect("the embedded store made its credentials");
        let endpoint = format!("http://{}", a.s3);
        dirs.push(dir);
        let mut servers = vec![("a".to_owned(), a)];
        for id in &ids[1..] {
            let dir = tempfile::tempdir().unwrap();
            let mut more = args(rx, id, ttl_secs);
            more.extend([
                "--s3-endpoint".into(),
                endpoint.clone(),
                "--s3-bucket".into(),
                "signpost".into(),
            ]);
            let env = [
                ("AWS_ACCESS_KEY_ID", creds.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key.expose()),
            ];
            let mut s = start(dir.path(), &more, &env);
            s.ready().await;
            servers.push((id.clone(), s));
            dirs.push(dir);
        }
        let cluster = Self {
            servers,
            dead: Vec::new(),
            dirs,
        };
        // Uploads start once every instance sees every other (a joining instance takes a
        // share from each, and a share can be delivered twice while views differ).
        cluster.wait_for_live().await;
        cluster
    }

    fn server(&self, id: &str) -> &Server {
        let all = self.servers.iter().chain(&self.dead);
        &all.into_iter().find(|(i, _)| i == id).unwrap().1
    }

    fn log(&self, id: &str) -> String {
        let s = self.server(id);
        format!("{}{}", s.stdout_text(), s.stderr_text())
    }

    /// Wait until the last heartbeat line of each running instance names exactly the
    /// running instances.
    async fn wait_for_live(&self) {
        let ids: Vec<&str> = self.servers.iter().map(|(i, _)| i.as_str()).collect();
        let what = format!("live={} count={}", ids.join(","), ids.len());
        let deadline = Instant::now() + Duration::from_secs(30);
        for (id, _) in &self.servers {
            loop {
                let log = self.log(id);
                let last = log
                    .lines()
                    .rfind(|l| l.contains("instances sharing this bucket"))
                    .unwrap_or_default()
                    .to_owned();
                if last.contains(&what) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "instance {id} never logged {what:?}: {log}"
                );
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Whether instance `id` logged the delivery of `key`.
    fn logged(&self, id: &str, key: &str) -> bool {
        self.log(id)
            .lines()
            .any(|l| l.contains("event delivered") && l.contains(key))
    }

    /// Wait for instance `id` to log the delivery of `key` (logs are written in the
    /// background, after the receiver has answered).
    async fn wait_logged(&self, id: &str, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.logged(id, key) {
            assert!(
                Instant::now() < deadline,
                "{id} did not log the delivery of {key}: {}",
                self.log(id)
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until instance `id`'s checkpoint in the bucket holds each event of `ids`: it
    /// logs a delivery before it saves the checkpoint.
    async fn wait_checkpointed(&self, id: &str, ids: &[String]) {
        let store = self.server("a").store_client(self.dirs[0].path());
        let prefix = signpost::upload::KeyPrefix::parse("uploads/").unwrap();
        let key = signpost::sweep::checkpoint::bucket_key(&prefix, id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let saved = store.get(&key, 1 << 20).await.unwrap().unwrap_or_default();
            let saved = String::from_utf8_lossy(&saved);
            if ids.iter().all(|e| saved.contains(e.as_str())) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id}'s checkpoint never held {ids:?}: {saved}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no heartbeat removal, no last checkpoint save.
    fn kill(&mut self, id: &str) {
        self.stop(id, "KILL");
    }

    fn stop(&mut self, id: &str, signal: &str) {
        let at = self.servers.iter().position(|(i, _)| i == id).unwrap();
        let (id, mut s) = self.servers.remove(at);
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(s.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        s.child.wait().unwrap();
        self.dead.push((id, s));
    }
}

/// Sign through `server`'s API, post to the store, confirm through the API (as the page
/// does); returns the key.
pub(crate) async fn upload(server: &Server, name: &str, w: u32) -> String {
    let client = crate::helpers::client();
    let base = server.base();
    let file = testdata::png(w, 4);
    let body =
        serde_json::json!({"filename": name, "content_type": "image/png", "size": file.len()});
    let mut r = client
        .post(format!("{base}/api/presign"))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let p: serde_json::Value = r.json().await.unwrap();
    let fields = api_fields(&p);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (ct, form) = form_body(&refs, name, "image/png", &file);
    let mut r = client
        .post(p["url"].as_str().unwrap())
        .insert_header(("content-type", ct))
        .send_body(form)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&r.body().await.unwrap()).into_owned();
    assert_eq!(r.status(), StatusCode::CREATED, "{text}");
    let key = p["key"].as_str().unwrap().to_owned();
    let c = client
        .post(format!("{base}/api/uploads/confirm"))
        .send_json(&serde_json::json!({"key": key, "etag": etag_of(&text)}))
        .await
        .unwrap();
    assert_eq!(c.status(), StatusCode::OK);
    key
}

/// Deliveries per key so far (2xx answers only).
fn deliveries(rx: &Receiver) -> BTreeMap<String, usize> {
    let mut by_key = BTreeMap::new();
    for h in rx.delivered() {
        *by_key.entry(h.key()).or_insert(0) += 1;
    }
    by_key
}

async fn wait_all_delivered(rx: &Receiver, keys: &[String], within: Duration) {
    let ok = rx
        .wait(within, |_| {
            let d = deliveries(rx);
            keys.iter().all(|k| d.contains_key(k))
        })
        .await;
    let d = deliveries(rx);
    let missing: Vec<&String> = keys.iter().filter(|k| !d.contains_key(*k)).collect();
    assert!(
        ok,
        "{} of {} never delivered: {missing:?}",
        missing.len(),
        keys.len()
    );
}

/// Uploads through every instance in turn; with `kill`, instance `b` is killed halfway.
/// Returns (uploads, deliveries).
async fn run(n: usize, uploads: usize, kill: bool) -> (usize, usize) {
    let rx = Receiver::start().await;
    let mut cluster = Cluster::start(&rx, n).await;
    let mut up: Vec<String> = cluster.servers.iter().map(|(i, _)| i.clone()).collect();
    let mut keys = Vec::new();
    for i in 0..uploads {
        if kill && i == uploads / 2 {
            cluster.kill("b");
            up.retain(|id| id != "b");
        }
        let via = &up[i % up.len()];
        keys.push(upload(cluster.server(via), &format!("photo-{i}.png"), 4 + i as u32).await);
    }
    wait_all_delivered(&rx, &keys, Duration::from_secs(60)).await;
    // Late duplicates would come within a sweep or a heartbeat's lifetime.
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    for h in rx.hits() {
        h.assert_signed();
    }
    let d = deliveries(&rx);
    assert!(
        d.keys().all(|k| keys.contains(k)),
        "unknown keys delivered: {d:?}"
    );
    (keys.len(), d.values().sum())
}

#[actix_web::test]
async fn three_instances_deliver_every_upload_once_even_when_one_is_killed() {
    let (uploads, delivered) = run(3, 60, true).await;
    let duplicates = delivered - uploads;
    eprintln!(
        "3 instances, b killed halfway: {uploads} uploads, {delivered} deliveries, {duplicates} duplicates"
    );
    assert!(
        duplicates * 20 <= delivered,
        "{duplicates} duplicates of {delivered} deliveries is more than 5%"
    );
}

/// The figures of the closing note: deliveries per upload with 1, 2 and 3 instances.
#[actix_web::test]
async fn deliveries_per_upload_with_one_two_and_three_instances() {
    for n in 1..=3 {
        let (uploads, delivered) = run(n, 30, false).await;
        eprintln!("{n} instance(s): {uploads} uploads, {delivered} deliveries");
        assert!(
            (delivered - uploads) * 20 <= delivered,
            "{n} instances: {delivered} deliveries for {uploads} uploads"
        );
    }
}

/// Each upload is delivered by its instance; when that instance is killed, the other takes
/// its share over once its heartbeat lapses (3 s here; 30 s by default).
#[actix_web::test]
async fn a_killed_instances_share_is_taken_over() {
    let rx = Receiver::start().await;
    let mut cluster = Cluster::start(&rx, 2).await;
    let live = ["a".to_owned(), "b".to_owned()];
    // Steady state: uploads through `a` that belong to `b` are delivered by `b` alone.
    let mut of_b = Vec::new();
    let mut i = 0;
    while of_b.len() < 2 {
        let key = upload(cluster.server("a"), &format!("steady-{i}.png"), 5).await;
        i += 1;
        if owner(&live, &key) == Some("b") {
            of_b.push(key);
        }
    }
    wait_all_delivered(&rx, &of_b, Duration::from_secs(20)).await;
    for key in &of_b {
        cluster.wait_logged("b", key).await;
        assert!(!cluster.logged("a", key), "{}", cluster.log("a"));
    }
    // Killed before its checkpoint is saved, `b` would leave them to `a` (at least once).
    let ids: Vec<String> = rx
        .hits()
        .iter()
        .filter(|h| of_b.contains(&h.key()))
        .map(|h| h.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.len() >= of_b.len(), "{ids:?}");
    cluster.wait_checkpointed("b", &ids).await;

    // `b` dies; uploads that are its share land meanwhile.
    cluster.kill("b");
    let killed = Instant::now();
    let mut orphans = Vec::new();
    while orphans.len() < 3 {
        let key = upload(cluster.server("a"), &format!("orphan-{i}.png"), 6).await;
        i += 1;
        if owner(&live, &key) == Some("b") {
            orphans.push(key);
        }
    }
    wait_all_delivered(&rx, &orphans, Duration::from_secs(60)).await;
    let took = killed.elapsed();
    eprintln!("takeover: {took:?} from the kill to the last of b's share delivered");
    for key in &orphans {
        cluster.wait_logged("a", key).await;
    }
    cluster.wait_for_live().await;
    let d = deliveries(&rx);
    assert!(d.values().all(|n| *n == 1), "{d:?}");
}

/// An instance stopped with SIGTERM removes its heartbeat: the other takes its share at its
/// next heartbeat (a third of the TTL), not once the TTL has lapsed.
#[actix_web::test]
async fn a_stopped_instance_hands_its_share_over_at_once() {
    const TTL: u64 = 15;
    let rx = Receiver::start().await;
    let mut cluster = Cluster::start_with_ttl(&rx, 2, TTL).await;
    let live = ["a".to_owned(), "b".to_owned()];
    cluster.stop("b", "TERM");
    let stopped = Instant::now();
    let mut of_b = Vec::new();
    let mut i = 0;
    while of_b.len() < 2 {
        let key = upload(cluster.server("a"), &format!("handed-{i}.png"), 5).await;
        i += 1;
        if owner(&live, &key) == Some("b") {
            of_b.push(key);
        }
    }
    // Its heartbeat would keep it alive for 15 s; a notices its departure within 5 s.
    wait_all_delivered(&rx, &of_b, Duration::from_secs(TTL - 3)).await;
    eprintln!("handover: {:?} after SIGTERM", stopped.elapsed());
    for key in &of_b {
        cluster.wait_logged("a", key).await;
    }
}
