//! The real binary: secrets never leak (also under `RUST_LOG=trace` and in start-up errors), the
//! embedded store keeps its objects across a restart and after a SIGKILL mid-upload, SIGTERM lets
//! in-flight requests finish and stops both servers, and every request gets one structured log line
//! and an `X-Request-Id`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use base64::Engine;
use bytes::Bytes;
use signpost::store::multipart::form_body;
use signpost::testdata;

use crate::helpers::fake_store::{FakeStore, Mode, free_port};
use crate::helpers::{
    Doc, api_fields, enc, etag_of, fragment_fields, page_form, stored_secret, uploaded_path,
};

/// Variables of the host that must not reach the child (they would change its store).
const HOST_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "SIGNPOST_BIND",
    "SIGNPOST_PUBLIC_URL",
    "SIGNPOST_DATA_DIR",
    "SIGNPOST_EMBEDDED_S3_BIND",
    "SIGNPOST_S3_BUCKET",
    "SIGNPOST_LOG_FORMAT",
    "SIGNPOST_SIGN_RATE_PER_MINUTE",
    "SIGNPOST_NOTIFY_URL",
    "SIGNPOST_NOTIFY_SECRET",
    "RUST_LOG",
];

type Buffer = Arc<Mutex<Vec<u8>>>;

fn reader(mut from: impl Read + Send + 'static, into: Buffer) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match from.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    })
}

/// A signpost process. Dropping it kills it (and waits), so no test leaves one behind.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) web: SocketAddr,
    pub(crate) s3: SocketAddr,
    stdout: Buffer,
    stderr: Buffer,
    readers: Vec<JoinHandle<()>>,
    /// How it was started, to start it again on other ports.
    started: (PathBuf, Vec<String>, Vec<(String, String)>),
}

impl Server {
    /// A signed S3 client for the server's embedded store (its credentials are in
    /// `data_dir`), to see what the bucket holds.
    pub(crate) fn store_client(&self, data_dir: &Path) -> signpost::store::S3Client {
        let settings = signpost::config::Settings::from_config(
            crate::helpers::test_config(data_dir),
            None,
            None,
        )
        .unwrap();
        let creds = signpost::store::embedded::load_credentials(data_dir)
            .unwrap()
            .expect("the store has run with this data dir");
        let endpoint = signpost::store::embedded::endpoint_url(self.s3);
        signpost::store::S3Client::new(std::sync::Arc::new(
            signpost::store::StoreTarget::new(&settings, Some(&endpoint), &creds).unwrap(),
        ))
    }

    /// Start on free loopback ports with the embedded store in `data_dir`.
    pub(crate) fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let started = (
            data_dir.to_owned(),
            args.iter().map(|a| (*a).to_owned()).collect(),
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let s3: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--bind")
            .arg(web.to_string())
            .arg("--embedded-s3-bind")
            .arg(s3.to_string())
            .args(args);
        for k in HOST_ENV {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the signpost binary starts");
        let stdout = Buffer::default();
        let stderr = Buffer::default();
        let readers = vec![
            reader(child.stdout.take().unwrap(), stdout.clone()),
            reader(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Self {
            child,
            web,
            s3,
            stdout,
            stderr,
            readers,
            started,
        }
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.web)
    }

    /// Wait until it says it is serving and `/healthz` answers. A port that something else
    /// took between `free_port()` and the bind is no failure of signpost's: it is started
    /// again on other ports (then `web` and `s3` change).
    pub(crate) async fn ready(&mut self) {
        let client = crate::helpers::client();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut restarts = 0;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let said = format!("{}{}", self.stdout_text(), self.stderr_text());
                if said.contains("Address already in use") && restarts < 3 {
                    restarts += 1;
                    let (dir, args, env) = self.started.clone();
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    *self = Self::start(&dir, &args, &env);
                    continue;
                }
                panic!("signpost exited at start ({status}): {said}");
            }
            // Its own words: the answer below comes from it, not from whatever else holds
            // the port.
            let serving = self.stdout_text().contains("signpost is serving");
            if serving
                && let Ok(r) = client
                    .get(format!("{}/healthz", self.base()))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                && r.status() == StatusCode::OK
            {
                return;
            }
            assert!(Instant::now() < deadline, "signpost did not become ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Wait for the process to exit, at most `within`.
    async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "signpost did not exit within {within:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        // A failing test shows what its server said: the end of its log.
        if std::thread::panicking() {
            let log = self.stderr_text();
            let tail = log.len().saturating_sub(16 << 10);
            let start = (tail..=log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            eprintln!("--- the server's log (its end) ---\n{}", &log[start..]);
        }
    }
}

/// Run the binary to completion (for start-up failures).
pub(crate) fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
    for k in HOST_ENV {
        cmd.env_remove(k);
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

// ---------------------------------------------------------------------------------------
// An HTTP client that keeps everything it received.

struct Resp {
    status: StatusCode,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Web {
    client: awc::Client,
    base: String,
    /// Every status line, header and body received.
    transcript: Mutex<Vec<u8>>,
}

impl Web {
    fn new(base: String) -> Self {
        Self {
            client: crate::helpers::client(),
            base,
            transcript: Mutex::new(Vec::new()),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn finish(
        &self,
        mut r: awc::ClientResponse<
            impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
        >,
    ) -> Resp {
        let body = r.body().limit(16 * 1024 * 1024).await.unwrap();
        let mut t = self.transcript.lock().unwrap();
        t.extend_from_slice(format!("{}\n", r.status()).as_bytes());
        for (k, v) in r.headers() {
            t.extend_from_slice(format!("{k}: ").as_bytes());
            t.extend_from_slice(v.as_bytes());
            t.push(b'\n');
        }
        t.extend_from_slice(&body);
        t.push(b'\n');
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Resp {
        self.get_with(path, &[]).await
    }

    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        self.finish(req.send().await.unwrap()).await
    }

    async fn post(&self, path: &str, ct: &str, body: impl Into<Bytes>) -> Resp {
        let r = self
            .client
            .post(self.url(path))
            .insert_header(("content-type", ct))
            .send_body(body.into())
            .await
            .unwrap();
        self.finish(r).await
    }

    async fn post_form(&self, url: &str, fields: &[(String, String)], file: &[u8]) -> Resp {
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (ct, body) = form_body(&refs, "photo.png", "image/png", file);
        self.post(url, &ct, body).await
    }

    /// Sign a PNG of `size` bytes through the API: the answer.
    async fn presign(&self, name: &str, size: usize) -> serde_json::Value {
        let body = serde_json::json!({
            "filename": name, "content_type": "image/png", "size": size,
        });
        let r = self
            .post("/api/presign", "application/json", body.to_string())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Sign `file` through the API: the answer, and the form to post (content type, body).
    async fn signed_form(&self, name: &str, file: &[u8]) -> (serde_json::Value, String, Bytes) {
        let p = self.presign(name, file.len()).await;
        let fields = api_fields(&p);
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (ct, body) = form_body(&refs, name, "image/png", file);
        (p, ct, body)
    }

    /// Sign through the API and upload; returns (key, etag).
    async fn upload_via_api(&self, name: &str, file: &[u8]) -> (String, String) {
        let p = self.presign(name, file.len()).await;
        let fields = api_fields(&p);
        let r = self
            .post_form(p["url"].as_str().unwrap(), &fields, file)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let (key, etag) = (p["key"].as_str().unwrap().to_owned(), etag_of(&r.body));
        // Confirmed, as the page does after sending it.
        let c = self
            .post(
                "/api/uploads/confirm",
                "application/json",
                serde_json::json!({"key": key, "etag": etag}).to_string(),
            )
            .await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.body);
        (key, etag)
    }

    fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript.lock().unwrap()).into_owned()
    }
}

/// The forms a leaked secret could take.
fn leak_forms(secret: &str) -> Vec<(&'static str, String)> {
    let e = base64::engine::general_purpose::STANDARD;
    let u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    vec![
        ("raw", secret.to_owned()),
        ("base64", e.encode(secret)),
        (
            "base64 (unpadded)",
            e.encode(secret).trim_end_matches('=').to_owned(),
        ),
        ("base64url", u.encode(secret)),
        ("hex", hex::encode(secret)),
        ("HEX", hex::encode_upper(secret)),
    ]
}

fn assert_no_leak(what: &str, text: &str, secret: &str) {
    assert!(secret.len() >= 16, "a secret too short to search for");
    for (form, value) in leak_forms(secret) {
        assert!(
            !text.contains(&value),
            "the secret ({form}) appears in {what}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// a. Secrets.

/// A whole upload (page, fragment, POST to the store, confirmation, gallery, thumbnail, the
/// API, errors) under `RUST_LOG=trace`: the secret appears in no output and no response.
#[actix_web::test]
async fn the_secret_never_leaks_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[("RUST_LOG", "trace")]);
    server.ready().await;
    let secret = stored_secret(dir.path());
    let web = Web::new(server.base());
    let png = testdata::png(8, 6);

    // The page, the fragment, the form POST to the store, the redirect.
    let page = web.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let (action, _) = page_form(&page.body);
    let frag = web
        .get(&format!(
            "/fragments/image-meta?filename=photo.png&content_type=image%2Fpng&size={}&width=8&height=6",
            png.len()
        ))
        .await;
    assert_eq!(frag.status, StatusCode::OK, "{}", frag.body);
    let fields = fragment_fields(&frag.body);
    let posted = web.post_form(&action, &fields, &png).await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
    let location = posted.header("location").unwrap().to_owned();
    let uploaded = web.get(&location).await;
    assert_eq!(uploaded.status, StatusCode::OK, "{}", uploaded.body);

    // The gallery and a thumbnail (a presigned GET to the store).
    let gallery = web.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK);
    assert!(gallery.body.contains("photo.png"));
    let img = Doc::page(&gallery.body)
        .attr(".gallery img", "src")
        .expect("a thumbnail");
    let thumb = web.get(&img).await;
    assert_eq!(thumb.status, StatusCode::OK, "{}", thumb.body);

    // The API: sign, upload, confirm.
    let (key, etag) = web.upload_via_api("api.png", &png).await;
    let confirm = web
        .post(
            "/api/uploads/confirm",
            "application/json",
            serde_json::json!({"key": key, "etag": etag}).to_string(),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);

    // Errors of every kind, including the store's own.
    let errors = [
        web.get("/nope").await,
        web.get("/uploaded?bucket=other&key=x&etag=y").await,
        web.get(&format!(
            "/uploaded?bucket=signpost&key={}&etag=0123",
            enc(&key)
        ))
        .await,
        web.get("/fragments/image-meta?filename=x.svg&content_type=image%2Fsvg%2Bxml&size=1")
            .await,
        web.post("/api/presign", "application/json", "{\"filename\":")
            .await,
        web.post("/api/presign", "text/plain", "x").await,
        web.get("/gallery?after=..%2F..%2Fetc").await,
    ];
    for e in &errors {
        assert!(e.status.is_client_error(), "{} {}", e.status, e.body);
    }
    let mut forged = fields.clone();
    for (k, v) in forged.iter_mut() {
        if k == "x-amz-signature" {
            *v = "0".repeat(64);
        }
    }
    let refused = web.post_form(&action, &forged, &png).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let expired = web.get(&format!("{img}x")).await;
    assert!(expired.status.is_client_error());

    server.signal("TERM");
    let status = server.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");

    let stdout = server.stdout_text();
    let stderr = server.stderr_text();
    // The capture is real: trace output of signpost and of the libraries, and the log line
    // of each request.
    assert!(stdout.contains("TRACE"), "no trace output captured");
    assert!(stdout.lines().count() > 100, "too little output captured");
    assert!(stdout.contains("path=/gallery"), "{stdout}");
    // At debug level and below, the query follows on a line of its own.
    assert!(stdout.contains("request query"), "{stdout}");
    println!(
        "captured {} bytes of output and {} bytes of responses",
        stdout.len() + stderr.len(),
        web.transcript().len()
    );
    assert_no_leak("stdout", &stdout, &secret);
    assert_no_leak("stderr", &stderr, &secret);
    assert_no_leak("the responses", &web.transcript(), &secret);
}

/// Secrets given through the environment stay out of start-up errors and `--help`.
#[test]
fn the_secret_stays_out_of_startup_errors() {
    let secret = format!("EnvSecret{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("AWS_ACCESS_KEY_ID", "SPENVTESTKEY00000001"),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("RUST_LOG", "trace"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let web = format!("127.0.0.1:{}", free_port());

    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "--max-bytes 0",
            vec!["--data-dir", data, "--max-bytes", "0"],
        ),
        ("an unknown flag value", vec!["--signature", "v3"]),
        ("an unknown flag", vec!["--no-such-flag"]),
        (
            "a busy store port",
            vec![
                "--data-dir",
                data,
                "--bind",
                &web,
                "--embedded-s3-bind",
                &busy_addr,
            ],
        ),
        (
            "a busy web port",
            vec!["--data-dir", data, "--bind", &busy_addr],
        ),
        ("--help", vec!["--help"]),
    ];
    for (what, args) in cases {
        let (status, out) = run_to_end(&args, &env);
        println!("{what}: {status}");
        if what != "--help" {
            assert!(!status.success(), "{what}: {status}");
            assert!(!out.trim().is_empty(), "{what}: no message");
        } else {
            assert!(out.contains("AWS_SECRET_ACCESS_KEY"), "{out}");
        }
        assert_no_leak(what, &out, &secret);
    }
    drop(busy);
}

/// Debug output (what a panic message or a `{:?}` in a log line would carry) never holds
/// the secret; and nothing in the program prints the environment on a panic.
#[test]
fn debug_output_and_panics_carry_no_secret() {
    use signpost::config::{Config, Settings};
    use signpost::store::Backend;
    use signpost::web::startup::state;

    let dir = tempfile::tempdir().unwrap();
    let secret = format!("DebugSecret{}", uuid::Uuid::new_v4().simple());
    let mut c = Config::embedded(dir.path());
    c.embedded_s3_bind = "127.0.0.1:0".parse().unwrap();
    c.access_key_id = Some("SPDEBUGTESTKEY000001".into());
    c.secret_access_key = Some(secret.clone().into());
    c.session_token = Some(format!("{secret}-token").into());
    let settings = Settings::from_config(c, None, None).unwrap();
    let public = url::Url::parse("http://127.0.0.1:8080").unwrap();
    let mut backend = Backend::start(&settings, &public).unwrap();
    let st = state(
        settings.clone(),
        public,
        &backend,
        signpost::upload::Clock::System,
    )
    .unwrap();
    let shown = [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{st:?}"),
        format!("{:?}", st.presigner),
        format!("{:?}", backend.credentials),
        format!("{:?}", backend.target),
        format!("{:?}", backend.embedded),
    ];
    for s in &shown {
        assert_no_leak("Debug output", s, &secret);
    }
    assert!(shown[0].contains("SPDEBUGTESTKEY000001"), "{}", shown[0]);

    // No panic hook or other code path that dumps the environment.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src];
    let mut scanned = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            scanned += 1;
            for bad in ["env::vars(", "env::vars_os(", "set_hook("] {
                assert!(
                    !text.contains(bad),
                    "{} uses {bad}: check that it cannot print a secret",
                    p.display()
                );
            }
        }
    }
    assert!(scanned > 10);
    if let Some(store) = backend.embedded.take() {
        store.stop();
    }
}

// ---------------------------------------------------------------------------------------
// b, c. Persistence.

#[actix_web::test]
async fn uploads_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    server.ready().await;
    let web = Web::new(server.base());
    let (key, etag) = web.upload_via_api("kept.png", &testdata::png(5, 5)).await;
    server.signal("TERM");
    assert!(server.exited(Duration::from_secs(15)).await.success());

    let mut again = Server::start(dir.path(), &[], &[]);
    again.ready().await;
    let web = Web::new(again.base());
    let gallery = web.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK);
    assert!(gallery.body.contains("kept.png"), "{}", gallery.body);
    let id = key.split('/').nth(1).unwrap();
    assert!(gallery.body.contains(id));
    let page = web.get(&uploaded_path(&key, &etag)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(p);
        }
    }
    out
}

#[actix_web::test]
async fn a_sigkill_mid_upload_leaves_no_half_written_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    server.ready().await;
    let web = Web::new(server.base());

    // A 6 MiB PNG-looking file, sent halfway.
    let mut file = testdata::png(4, 4);
    file.resize(6 * 1024 * 1024, 0x42);
    let body = serde_json::json!({"filename": "half.png", "content_type": "image/png", "size": file.len()});
    let r = web
        .post("/api/presign", "application/json", body.to_string())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let p: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let key = p["key"].as_str().unwrap().to_owned();
    let fields = api_fields(&p);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (ct, form) = form_body(&refs, "half.png", "image/png", &file);
    let mut sock = TcpStream::connect(server.s3).unwrap();
    write!(
        sock,
        "POST /signpost HTTP/1.1\r\nHost: {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        server.s3,
        form.len()
    )
    .unwrap();
    sock.write_all(&form[..form.len() / 2]).unwrap();
    sock.flush().unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;

    server.signal("KILL");
    let status = server.exited(Duration::from_secs(5)).await;
    assert!(!status.success());
    drop(sock);

    let mut again = Server::start(dir.path(), &[], &[]);
    again.ready().await;
    let web = Web::new(again.base());
    let gallery = web.get("/gallery").await;
    assert_eq!(gallery.status, StatusCode::OK);
    let id = key.split('/').nth(1).unwrap();
    assert!(!gallery.body.contains(id), "a half-written upload shows");
    assert!(!gallery.body.contains("half.png"));
    let leftovers: Vec<PathBuf> = files_under(&dir.path().join("s3"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(id) || p.to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "left on disk: {leftovers:?}");
    let confirm = web
        .post(
            "/api/uploads/confirm",
            "application/json",
            serde_json::json!({"key": key, "etag": "0123456789abcdef0123456789abcdef"}).to_string(),
        )
        .await;
    assert_eq!(confirm.status, StatusCode::NOT_FOUND, "{}", confirm.body);

    // A complete upload afterwards works.
    let (key2, _) = web.upload_via_api("whole.png", &testdata::png(3, 3)).await;
    let gallery = web.get("/gallery").await;
    assert!(gallery.body.contains("whole.png"), "{}", gallery.body);
    assert!(gallery.body.contains(key2.split('/').nth(1).unwrap()));
}

// ---------------------------------------------------------------------------------------
// d. Graceful shutdown.

/// Send a request's head and the first part of its body; the rest comes later.
fn half_request(addr: SocketAddr, head: &str, body: &[u8], sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..sent]).unwrap();
    s.flush().unwrap();
    s
}

/// Send the rest and read the whole answer (the server closes: `Connection: close`).
fn finish_request(mut s: TcpStream, body: &[u8], sent: usize) -> String {
    s.write_all(&body[sent..]).unwrap();
    s.flush().unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[actix_web::test]
async fn sigterm_lets_in_flight_requests_finish_and_stops_both_servers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--shutdown-grace-secs", "5"], &[]);
    server.ready().await;
    let web = Web::new(server.base());

    // In flight on the web server: a presign whose body is half sent.
    let json =
        serde_json::json!({"filename": "late.png", "content_type": "image/png", "size": 100})
            .to_string();
    let head = format!(
        "POST /api/presign HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.web,
        json.len()
    );
    let presign = half_request(server.web, &head, json.as_bytes(), 10);

    // In flight on the store: an upload whose body is half sent.
    let png = testdata::png(6, 6);
    let r = web
        .post(
            "/api/presign",
            "application/json",
            serde_json::json!({"filename": "late.png", "content_type": "image/png", "size": png.len()})
                .to_string(),
        )
        .await;
    let p: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let fields = api_fields(&p);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (ct, form) = form_body(&refs, "late.png", "image/png", &png);
    let head = format!(
        "POST /signpost HTTP/1.1\r\nHost: {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.s3,
        form.len()
    );
    let upload = half_request(server.s3, &head, &form, form.len() / 2);
    drop(web);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;

    let term = Instant::now();
    server.signal("TERM");
    // The listener closes at once; a loaded machine may take a moment to get there (well
    // within the 5 s grace, which the requests in flight still have).
    let deadline = term + Duration::from_secs(3);
    while !refused(server.web) {
        assert!(
            Instant::now() < deadline,
            "the web server still accepts connections 3 s after SIGTERM"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with requests in flight"
    );

    let presign_answer = std::thread::spawn(move || finish_request(presign, json.as_bytes(), 10));
    let presign_answer = presign_answer.join().unwrap();
    assert!(
        presign_answer.starts_with("HTTP/1.1 200"),
        "{presign_answer}"
    );
    assert!(presign_answer.contains("x-amz-signature"));
    let sent = form.len() / 2;
    let upload_answer = std::thread::spawn(move || finish_request(upload, &form, sent))
        .join()
        .unwrap();
    assert!(upload_answer.starts_with("HTTP/1.1 201"), "{upload_answer}");

    let status = server.exited(Duration::from_secs(8)).await;
    println!(
        "exited {status} {} ms after SIGTERM",
        term.elapsed().as_millis()
    );
    assert!(status.success(), "{status}");
    assert!(refused(server.web), "the web port still accepts");
    assert!(refused(server.s3), "the store port still accepts");
    assert!(server.stdout_text().contains("signpost stopped"));
}

/// An upload still arriving at the embedded store when SIGTERM comes finishes within
/// `--shutdown-grace-secs`: browsers upload there, not to the site.
#[actix_web::test]
async fn sigterm_lets_an_upload_to_the_embedded_store_finish() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--shutdown-grace-secs", "30"], &[]);
    server.ready().await;
    let web = Web::new(server.base());
    let file = testdata::png_noise(300, 300);
    let (p, ct, form) = web.signed_form("slow.png", &file).await;
    let url = url::Url::parse(p["url"].as_str().unwrap()).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let path = url.path().to_owned();
    // About 8 s on the way, in 16 pieces.
    let sending = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            form.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        for chunk in form.chunks(form.len().div_ceil(16)) {
            if s.write_all(chunk).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer
    });
    actix_web::rt::time::sleep(Duration::from_millis(1000)).await;
    server.signal("TERM");
    let answer = actix_web::rt::task::spawn_blocking(move || sending.join().unwrap())
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let exit = server.exited(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit}");
}

/// A gallery request held up by a slow store completes with 200 after SIGTERM.
#[actix_web::test]
async fn sigterm_waits_for_a_slow_gallery() {
    use signpost::secret::{Credentials, Secret};
    use signpost::store::embedded::{EmbeddedOptions, EmbeddedStore};

    let store_dir = tempfile::tempdir().unwrap();
    let secret = "slow-store-secret-0123456789abcdefghij";
    let store = EmbeddedStore::start(EmbeddedOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: store_dir.path().to_owned(),
        bucket: "signpost".into(),
        credentials: Credentials {
            access_key_id: "SPSLOWTESTKEY0000001".into(),
            secret_access_key: Secret::new(secret),
            session_token: None,
        },
        allowed_origins: Vec::new(),
        max_bytes: 1024 * 1024,
        policy_ttl: std::time::Duration::from_secs(600),
        limits: signpost::store::embedded::Limits::for_max_bytes(1024 * 1024),
    })
    .unwrap();
    let fake = FakeStore::start(Mode::Proxy);
    fake.set_upstream(store.addr());
    fake.set_delay(Duration::from_millis(1500));

    let dir = tempfile::tempdir().unwrap();
    let endpoint = fake.endpoint();
    let mut server = Server::start(
        dir.path(),
        &[
            "--s3-endpoint",
            &endpoint,
            "--s3-bucket",
            "signpost",
            "--shutdown-grace-secs",
            "5",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "SPSLOWTESTKEY0000001"),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
    );
    server.ready().await;
    let base = server.base();
    let slow = actix_web::rt::spawn(async move {
        let web = Web::new(base);
        let start = Instant::now();
        let r = web.get("/gallery").await;
        (r.status, r.body, start.elapsed())
    });
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    server.signal("TERM");
    let (status, body, took) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        took >= Duration::from_millis(1400),
        "the store was not slow: {took:?}"
    );
    let exit = server.exited(Duration::from_secs(8)).await;
    assert!(exit.success(), "{exit}");
    assert!(refused(server.web));
    store.stop();
}

// ---------------------------------------------------------------------------------------
// e. Logs.

#[actix_web::test]
async fn one_structured_log_line_per_request_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &["--log-format", "json"], &[]);
    server.ready().await;
    let web = Web::new(server.base());

    // (request id sent, method, path, expected status)
    let mut sent: Vec<(Option<String>, &str, String, u16)> = Vec::new();
    let mut answers: Vec<Resp> = Vec::new();
    let calls: Vec<(Option<&str>, &str, &str, u16)> = vec![
        (Some("test-id-0001"), "GET", "/", 200),
        (
            Some("test.id_0002"),
            "GET",
            "/fragments/image-meta?filename=a.png&content_type=image%2Fpng&size=10",
            200,
        ),
        (None, "GET", "/nope", 404),
        (Some("not a valid id"), "GET", "/gallery", 200),
        (
            Some("x234567890123456789012345678901234567890123456789012345678901234"),
            "GET",
            "/healthz",
            200,
        ),
        (None, "POST", "/api/presign", 422),
        (None, "DELETE", "/gallery", 405),
        (Some("last-one"), "GET", "/uploaded?bucket=x", 400),
    ];
    for (id, method, path, status) in calls {
        let r = match method {
            "GET" => match id {
                Some(id) => web.get_with(path, &[("x-request-id", id)]).await,
                None => web.get(path).await,
            },
            "POST" => web.post(path, "application/json", "{").await,
            _ => {
                let r = web.client.delete(web.url(path)).send().await.unwrap();
                web.finish(r).await
            }
        };
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.body);
        sent.push((id.map(str::to_owned), method, path.to_owned(), status));
        answers.push(r);
    }
    server.signal("TERM");
    assert!(server.exited(Duration::from_secs(15)).await.success());

    let lines: Vec<serde_json::Value> = server
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let http: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "signpost::http")
        .collect();
    // The readiness probe's requests are logged too: only ours are counted.
    for ((id, method, path, status), r) in sent.iter().zip(&answers) {
        let echoed = r
            .header("x-request-id")
            .expect("X-Request-Id on every answer");
        let valid = id.as_deref().is_some_and(|i| {
            i.len() <= 64
                && i.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
        if valid {
            assert_eq!(Some(echoed), id.as_deref(), "a valid incoming id is reused");
        } else {
            assert!(
                echoed.len() == 16 && echoed.bytes().all(|b| b.is_ascii_hexdigit()),
                "a fresh id for {path}: {echoed}"
            );
        }
        let mine: Vec<_> = http.iter().filter(|l| l["request_id"] == *echoed).collect();
        assert_eq!(mine.len(), 1, "one line for {method} {path}: {mine:?}");
        let l = mine[0];
        assert_eq!(l["method"], *method);
        // The path, never the query: query strings carry users' file names.
        let (bare, query) = path.split_once('?').unwrap_or((path.as_str(), ""));
        assert_eq!(l["path"], bare);
        assert!(l.get("uri").is_none() && l.get("query").is_none(), "{l}");
        if !query.is_empty() {
            assert!(!l.to_string().contains(query), "{l}");
        }
        assert_eq!(l["status"], *status);
        assert!(l["latency_us"].is_u64(), "{l}");
        assert_eq!(l["level"], "INFO");
        assert!(l["timestamp"].is_string());
    }
}

// ---------------------------------------------------------------------------------------
// e. Clients that stall, and a store that does not answer.

/// The process's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The bound the README states for the default `--max-bytes` (10 MiB): at most 6 upload
/// bodies held at once, each at most twice its size while it is read, over a base of 64 MiB.
const STALLED_BOUND_KIB: u64 = (64 + 2 * 6 * 10) * 1024;

/// Sixteen 10 MiB uploads that stall 1 KiB before their end keep resident memory under the
/// stated bound; the site answers meanwhile.
#[actix_web::test]
async fn sixteen_stalled_uploads_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    server.ready().await;
    let web = Web::new(server.base());
    let pid = server.child.id();
    let before = resident_kib(pid);

    let mut file = testdata::png(8, 8);
    file.resize(10 * 1024 * 1024 - 4096, 0x61);
    let mut bodies = Vec::new();
    for i in 0..16 {
        let (_, ct, body) = web.signed_form(&format!("stall{i}.png"), &file).await;
        bodies.push((ct, body));
    }
    // Each client sends all but the last KiB, then waits (uploads beyond the store's cap are
    // not read at all: their writes block in the kernel).
    let s3 = server.s3;
    let (tx, stop) = std::sync::mpsc::channel::<()>();
    let stop = Arc::new(Mutex::new(stop));
    let clients: Vec<JoinHandle<()>> = bodies
        .into_iter()
        .map(|(ct, body)| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(s3).unwrap();
                let head = format!(
                    "POST /signpost HTTP/1.1\r\nHost: {s3}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body[..body.len() - 1024]);
                let _ = stop.lock().unwrap().recv_timeout(Duration::from_secs(30));
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_secs(4)).await;
    let during = resident_kib(pid);
    let health = web.get("/healthz").await;
    eprintln!(
        "resident memory: {before} KiB before, {during} KiB with 16 stalled 10 MiB uploads (bound {STALLED_BOUND_KIB} KiB)"
    );
    drop(tx);
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(health.status, StatusCode::OK);
    assert!(
        during < STALLED_BOUND_KIB,
        "{during} KiB resident with 16 stalled uploads, over the {STALLED_BOUND_KIB} KiB bound"
    );
}

/// An external store that does not answer does not stop the start: one warning names its
/// endpoint and suggests `signpost check`.
#[actix_web::test]
async fn a_store_that_does_not_answer_gets_one_warning_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut server = Server::start(
        dir.path(),
        &["--s3-endpoint", &endpoint, "--s3-bucket", "uploads-bucket"],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDNOSTORE"),
            ("AWS_SECRET_ACCESS_KEY", "no-store-secret-0123456789"),
        ],
    );
    server.ready().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stdout_text().contains("does not answer") {
        assert!(
            Instant::now() < deadline,
            "no warning: {}",
            server.stdout_text()
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let out = server.stdout_text();
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("does not answer"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains(&endpoint) && warnings[0].contains("signpost check"),
        "{}",
        warnings[0]
    );
    let web = Web::new(server.base());
    assert_eq!(
        web.get("/").await.status,
        StatusCode::OK,
        "signing needs no store"
    );
}
