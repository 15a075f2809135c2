//! Headless Chromium driven through Debian's chromedriver, for the `browser` tests.
//!
//! Each [`Browser`] starts its own chromedriver on a free loopback port, in its own process
//! group, with a fresh Chromium profile in a temporary directory; dropping it (also when a
//! test panics) kills that process group, Chromium included. At most [`SLOTS`] browsers run at
//! once, so the tests of the file stay parallel without starving a small machine.
//!
//! When Chromium or chromedriver is missing, [`Browser::start`] returns `None` after printing
//! how to install them, or panics when the `CI` environment variable is set.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long any wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(50);

/// WebDriver's key codes for [`Browser::key`].
pub const TAB: char = '\u{e004}';
pub const ENTER: char = '\u{e007}';

/// Browsers running at once across the tests of this binary.
static SLOTS: Semaphore = Semaphore::const_new(2);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub struct Browser {
    pub client: Client,
    name: String,
    driver: Child,
    /// The Chromium profile and chromedriver's log, removed with the browser.
    _dir: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Kill chromedriver's process group (chromedriver, Chromium and its helpers), then reap it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// What a wait saw last: a value, or the error of the last attempt.
type Seen = Result<Value, String>;

impl Browser {
    /// Start chromedriver and open a Chromium session, or `None` (skip) when they are not
    /// installed and `CI` is unset. `name` names the test in messages and screenshots.
    pub async fn start(name: &str) -> Option<Browser> {
        Self::start_with(name, false).await
    }

    /// The same, keeping Chromium's network events (the DevTools protocol's `Network.*`)
    /// for [`Browser::network_events`].
    pub async fn start_logging_network(name: &str) -> Option<Browser> {
        Self::start_with(name, true).await
    }

    async fn start_with(name: &str, network_log: bool) -> Option<Browser> {
        let chromium = tool("SIGNPOST_CHROMIUM", CHROMIUM);
        let driver = tool("SIGNPOST_CHROMEDRIVER", CHROMEDRIVER);
        let missing: Vec<String> = [&chromium, &driver]
            .into_iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            let missing = missing.join(" and ");
            if std::env::var_os("CI").is_some() {
                panic!(
                    "CI is set, so the browser tests must run, but {missing} is missing: \
                     install chromium chromium-driver (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!("skipping {name}: install chromium chromium-driver ({missing} not found)");
            return None;
        }

        let slot = SLOTS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("chromedriver.log");
        let (child, port) = spawn_driver(&driver, &log, name).await;
        // From here on the guard owns the process group.
        let mut guard = DriverGuard(Some(child));

        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        let mut options = json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--window-size=1100,900",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", dir.path().join("profile").display()),
                ],
        });
        // chromedriver refuses perfLoggingPrefs unless performance logging is on.
        if network_log {
            options["perfLoggingPrefs"] = json!({ "enableNetwork": true, "enablePage": false });
            caps.insert("goog:loggingPrefs".into(), json!({ "performance": "ALL" }));
        }
        caps.insert("goog:chromeOptions".into(), options);
        let client = match ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        {
            Ok(c) => c,
            Err(e) => panic!(
                "{name}: no Chromium session from chromedriver: {e}\n--- chromedriver log ---\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        };
        Some(Browser {
            client,
            name: name.to_owned(),
            driver: guard.0.take().expect("set above"),
            _dir: dir,
            _slot: slot,
        })
    }

    /// End the session politely; dropping the browser then kills what is left.
    pub async fn finish(self) {
        let _ = self.client.clone().close().await;
    }

    /// Open the upload page at `url` and wait until its script has run (it makes the file
    /// input `multiple` and disables Save).
    pub async fn open_upload_page(&self, url: &str) {
        self.goto(url).await;
        self.wait(
            "the upload page's script to start",
            "const i = document.getElementById('myImage'), s = document.getElementById('btnSave');
             return !!(i && s && i.multiple && s.disabled);",
            vec![],
            |v| v == &json!(true),
        )
        .await;
    }

    /// The first `/api/presign` answer the page gets carries a wrong signature, so the store
    /// refuses that upload (what a store error looks like to the page).
    pub async fn spoil_first_signature(&self) {
        self.js(
            "const real = window.fetch; let once = true;
             window.fetch = async (url, opts) => {
                 const r = await real(url, opts);
                 if (!once || !String(url).includes('/api/presign')) return r;
                 once = false;
                 const j = await r.json();
                 j.fields['x-amz-signature'] = '0'.repeat(64);
                 return new Response(JSON.stringify(j), { status: 200, headers: { 'Content-Type': 'application/json' } });
             };",
            vec![],
        )
        .await;
    }

    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            self.fail(&format!("could not open {url}: {e}")).await;
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no element {css}: {e}")).await,
        }
    }

    /// Run `script` (a function body; `arguments[i]` are `args`) and return its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => self.fail(&format!("script failed: {e}\n{script}")).await,
        }
    }

    /// Poll `script` until `ready` accepts its value; fail after [`TIMEOUT`] with what was seen.
    /// Script errors (a page being replaced, say) count as "not yet".
    pub async fn wait(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        let mut seen: Seen = Err("nothing yet".into());
        while start.elapsed() < TIMEOUT {
            match self.client.execute(script, args.clone()).await {
                Ok(v) if ready(&v) => return v,
                Ok(v) => seen = Ok(v),
                Err(e) => seen = Err(e.to_string()),
            }
            tokio::time::sleep(POLL).await;
        }
        let seen = match seen {
            Ok(v) => v.to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.fail(&format!(
            "timed out after {TIMEOUT:?} waiting for {what}; last seen: {seen}"
        ))
        .await
    }

    /// Run a DevTools protocol command (`Emulation.setDeviceMetricsOverride`, say).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let command = ChromeCommand {
            path: "goog/cdp/execute",
            body: json!({ "cmd": cmd, "params": params }),
        };
        match self.client.issue_cmd(command).await {
            Ok(v) => v,
            Err(e) => {
                self.fail(&format!("DevTools command {cmd} failed: {e}"))
                    .await
            }
        }
    }

    /// Show pages as a screen `width` × `height` CSS pixels at device pixel ratio 1 (a phone's
    /// when `mobile`).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
    }

    /// The DevTools network events (`{"method": "Network.…", "params": …}`) since the last
    /// call, from chromedriver's performance log.
    pub async fn network_events(&self) -> Vec<Value> {
        let entries = match self
            .client
            .issue_cmd(ChromeCommand {
                path: "se/log",
                body: json!({ "type": "performance" }),
            })
            .await
        {
            Ok(v) => v,
            Err(e) => self.fail(&format!("no performance log: {e}")).await,
        };
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .map(|m| m["message"].clone())
            .filter(|m| {
                m["method"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Network."))
            })
            .collect()
    }

    /// Bytes received (headers and body, as sent) for each finished request whose resource
    /// type is `kind` ("Image", "Document"…), by URL, from [`Browser::network_events`].
    pub async fn received_bytes(&self, kind: &str) -> Vec<(String, u64)> {
        let events = self.network_events().await;
        let mut urls = std::collections::HashMap::new();
        for e in &events {
            if e["method"] == "Network.responseReceived" && e["params"]["type"] == kind {
                let id = e["params"]["requestId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let url = e["params"]["response"]["url"].as_str().unwrap_or_default();
                urls.insert(id, url.to_owned());
            }
        }
        events
            .iter()
            .filter(|e| e["method"] == "Network.loadingFinished")
            .filter_map(|e| {
                let url = urls.get(e["params"]["requestId"].as_str()?)?;
                let bytes = e["params"]["encodedDataLength"].as_f64()?;
                // Whole bytes, as the protocol counts them.
                Some((url.clone(), bytes as u64))
            })
            .collect()
    }

    /// Save a screenshot as `<dir>/<test>-<label>.png` when `SIGNPOST_SCREENSHOT_DIR` is set.
    pub async fn snap(&self, label: &str) {
        if let Some(dir) = std::env::var_os("SIGNPOST_SCREENSHOT_DIR") {
            let path = Path::new(&dir).join(format!("{}-{label}.png", self.name));
            let png = self.client.screenshot().await.expect("a screenshot");
            std::fs::write(&path, png).expect("screenshot written");
            eprintln!("screenshot: {}", path.display());
        }
    }

    /// Press and release `key` ([`TAB`], [`ENTER`]…) on the keyboard, wherever the focus is.
    pub async fn key(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        if let Err(e) = self.client.perform_actions(keys).await {
            self.fail(&format!("key {key:?} not pressed: {e}")).await;
        }
    }

    /// Type `text` into the focused element (a file input takes it as paths, as WebDriver
    /// stands in for a file picker).
    pub async fn type_text(&self, text: &str) {
        let focused = match self.client.active_element().await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no focused element: {e}")).await,
        };
        if let Err(e) = focused.send_keys(text).await {
            self.fail(&format!("{text:?} not typed: {e}")).await;
        }
    }

    /// Press Tab until the focused element matches `css`, at most 40 times (the page's
    /// controls in order, from wherever the focus is), and return it.
    pub async fn tab_to(&self, css: &str) -> Element {
        let focused = "return document.activeElement.matches(arguments[0]);";
        for _ in 0..40 {
            if self.js(focused, vec![json!(css)]).await == json!(true) {
                return self.client.active_element().await.expect("focused");
            }
            self.key(TAB).await;
        }
        let on = self
            .js(
                "return document.activeElement.outerHTML.slice(0, 200);",
                vec![],
            )
            .await;
        self.fail(&format!("Tab never reached {css}; focus is on {on}"))
            .await
    }

    /// The focused element's outline (style and width), which must show where the keyboard is.
    pub async fn focus_ring(&self) -> Value {
        self.js(
            "const s = getComputedStyle(document.activeElement);
             return { style: s.outlineStyle, width: parseFloat(s.outlineWidth),
                      focusVisible: document.activeElement.matches(':focus-visible') };",
            vec![],
        )
        .await
    }

    /// Run axe-core (from `tests/a11y/node_modules`, installed by `scripts/test`) on the page
    /// as it is: fails on any violation of impact "serious" or "critical", prints the others.
    /// Without the npm package it says how to get it and returns, unless `CI` is set.
    pub async fn axe(&self, state: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/a11y/node_modules/axe-core/axe.min.js");
        let Ok(source) = std::fs::read_to_string(&path) else {
            let msg = format!(
                "{} is missing: run `npm ci` in tests/a11y (scripts/test does)",
                path.display()
            );
            if std::env::var_os("CI").is_some() {
                self.fail(&msg).await;
            }
            eprintln!("skipping axe on {state}: {msg}");
            return;
        };
        if self.js("return typeof axe;", vec![]).await != json!("object") {
            self.js(&source, vec![]).await;
        }
        let violations = self
            .js(
                "return axe.run(document, { resultTypes: ['violations'] }).then((r) =>
                     r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                         nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary}`) })));",
                vec![],
            )
            .await;
        let all = violations.as_array().cloned().unwrap_or_default();
        let (bad, other): (Vec<Value>, Vec<Value>) = all
            .into_iter()
            .partition(|v| v["impact"] == json!("serious") || v["impact"] == json!("critical"));
        for v in &other {
            eprintln!("axe, {} on {state}: {v}", v["impact"]);
        }
        if !bad.is_empty() {
            let list = serde_json::to_string_pretty(&bad).unwrap_or_default();
            self.fail(&format!(
                "axe finds {} serious or critical violations on {state}:\n{list}",
                bad.len()
            ))
            .await;
        }
        eprintln!(
            "axe on {state}: no serious or critical violation ({} others)",
            other.len()
        );
    }

    /// Fail the test with `msg`, the page's URL and status text, and a screenshot's path.
    pub async fn fail(&self, msg: &str) -> ! {
        let url = self
            .client
            .current_url()
            .await
            .map_or_else(|e| format!("(unknown: {e})"), |u| u.to_string());
        let status = self
            .client
            .execute(
                "const s = document.getElementById('status'); return s ? s.textContent : null;",
                vec![],
            )
            .await
            .unwrap_or(Value::Null);
        let shot = std::env::temp_dir().join(format!("signpost-browser-{}.png", self.name));
        let shot = match self.client.screenshot().await {
            Ok(png) if std::fs::write(&shot, &png).is_ok() => shot.display().to_string(),
            _ => "(none)".into(),
        };
        panic!(
            "{}: {msg}\n  page: {url}\n  #status: {status}\n  screenshot: {shot}",
            self.name
        );
    }
}

/// A chromedriver extension: `POST /session/{id}/<path>` with a JSON body
/// (`goog/cdp/execute` for DevTools commands, `se/log` for the performance log).
#[derive(Debug)]
struct ChromeCommand {
    path: &'static str,
    body: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for ChromeCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(self.body.to_string()))
    }
}

/// Kills chromedriver if the browser never gets built (a panic while connecting).
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

/// Start chromedriver on a free port and wait until it accepts connections. Retries on a new
/// port when it exits early (another process took the port in between).
async fn spawn_driver(driver: &Path, log: &Path, name: &str) -> (Child, u16) {
    for _ in 0..3 {
        let port = free_port();
        let out = File::create(log).expect("chromedriver log file");
        let mut child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {}: {e}", driver.display()));
        let mut guard = DriverGuard(None);
        let start = Instant::now();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                break; // exited: try another port
            }
            // Its own word, not an open port: another test's server may have taken the port
            // between `free_port` and chromedriver's bind, and would answer a connect.
            let started = format!("started successfully on port {port}");
            if std::fs::read_to_string(log).is_ok_and(|l| l.contains(&started)) {
                return (child, port);
            }
            if start.elapsed() > TIMEOUT {
                guard.0 = Some(child);
                panic!(
                    "{name}: chromedriver did not answer on port {port} within {TIMEOUT:?}\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        kill_group(&mut child);
    }
    panic!(
        "{name}: chromedriver exited three times at start\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
