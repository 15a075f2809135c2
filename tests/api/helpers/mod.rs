//! What the tests share: `spawn_app()` starts signpost on loopback with its embedded store in
//! a temporary data dir, with a client for it (`TestApp`); `html` reads its pages,
//! `fake_store` stands in for a misbehaving S3 store, `browser` drives headless Chromium.

pub mod browser;
pub mod fake_store;
pub mod html;

pub use html::{Doc, error_code, fragment_fields, page_form};

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use base64::Engine;
use bytes::Bytes;
use signpost::config::{Config, Settings};
use signpost::upload::Clock;
use signpost::web::startup::Application;

pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub s3_addr: Option<SocketAddr>,
    pub handle: ServerHandle,
    pub dir: tempfile::TempDir,
    pub client: awc::Client,
    pub settings: Settings,
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::embedded(dir);
    c.bind = "127.0.0.1:0".parse().unwrap();
    c.embedded_s3_bind = "127.0.0.1:0".parse().unwrap();
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
    spawn_full(f, Clock::System).await
}

pub async fn spawn_full(f: impl FnOnce(&mut Config), clock: Clock) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    f(&mut config);
    let settings = Settings::from_config(config, None, None).expect("valid test settings");
    let app = Application::build_with_clock(settings.clone(), clock).expect("app builds");
    let addr = app.addr();
    let s3_addr = app.embedded_addr();
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let app = TestApp {
        base: format!("http://{addr}"),
        addr,
        s3_addr,
        handle,
        dir,
        client: client(),
        settings,
    };
    if app.settings.is_embedded() {
        app.wait_for_backfill().await;
    }
    app
}

/// Another signpost on `app`'s bucket, reached at `endpoint` (the app's embedded store, or
/// a proxy in front of it), with caches of its own: what a second instance sees.
pub async fn spawn_beside(app: &TestApp, endpoint: &str, f: impl FnOnce(&mut Config)) -> TestApp {
    let creds = signpost::store::embedded::load_credentials(&app.settings.data_dir)
        .unwrap()
        .expect("the store has run with this data dir");
    let bucket = app.settings.bucket.clone();
    spawn_with(|c| {
        c.s3_endpoint = Some(endpoint.to_owned());
        c.s3_bucket = Some(bucket);
        c.access_key_id = Some(creds.access_key_id.clone());
        c.secret_access_key = Some(creds.secret_access_key.clone());
        f(c);
    })
    .await
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(15))
        .disable_redirects()
        .finish()
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
    pub bytes: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn finish(
    mut r: awc::ClientResponse<
        impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    >,
) -> Resp {
    let bytes = r.body().limit(64 * 1024 * 1024).await.unwrap();
    Resp {
        status: r.status(),
        headers: r.headers().clone(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        finish(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        finish(req.send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> Resp {
        finish(
            self.client
                .post(self.url(path))
                .send_json(body)
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<Bytes>) -> Resp {
        let body: Bytes = body.into();
        finish(
            self.client
                .post(self.url(path))
                .insert_header(("content-type", content_type))
                .send_body(body)
                .await
                .unwrap(),
        )
        .await
    }

    /// Where the app's embedded store is, signed for with its credentials.
    pub fn store_target(&self) -> signpost::store::StoreTarget {
        let creds = signpost::store::embedded::load_credentials(&self.settings.data_dir)
            .unwrap()
            .expect("the store has run with this data dir");
        let endpoint =
            signpost::store::embedded::endpoint_url(self.s3_addr.expect("embedded store"));
        signpost::store::StoreTarget::new(&self.settings, Some(&endpoint), &creds).unwrap()
    }

    /// Image URLs as signpost makes them (no --public-base-url).
    pub fn image_urls(&self) -> signpost::store::ImageUrls {
        signpost::store::ImageUrls::new(std::sync::Arc::new(self.store_target()), None)
    }

    /// A direct S3 client for the app's embedded store (to see what the bucket holds).
    pub fn store_client(&self) -> signpost::store::S3Client {
        signpost::store::S3Client::new(std::sync::Arc::new(self.store_target()))
    }

    /// The embedded store's secret access key (from the data dir).
    pub fn secret(&self) -> String {
        stored_secret(self.dir.path())
    }

    /// The forms of the secret a leak could take.
    pub fn secret_forms(&self) -> Vec<String> {
        let s = self.secret();
        vec![
            base64::engine::general_purpose::STANDARD.encode(&s),
            hex::encode(&s),
            s,
        ]
    }

    /// POST a multipart form (fields in order, then the file) to `url`.
    pub async fn post_form(
        &self,
        url: &str,
        fields: &[(String, String)],
        name: &str,
        ct: &str,
        file: &[u8],
    ) -> Resp {
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (content_type, body) = signpost::store::multipart::form_body(&refs, name, ct, file);
        self.post_raw(url, &content_type, body).await
    }

    /// Ask the JSON API for a signed upload.
    pub async fn presign(
        &self,
        name: &str,
        ct: &str,
        size: usize,
        dims: Option<(u32, u32)>,
    ) -> serde_json::Value {
        let mut body = serde_json::json!({"filename": name, "content_type": ct, "size": size});
        if let Some((w, h)) = dims {
            body["width"] = w.into();
            body["height"] = h.into();
        }
        let r = self.post_json("/api/presign", &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }

    /// Upload through the API's fields; returns (key, etag).
    pub async fn upload_via_api(
        &self,
        name: &str,
        bytes: &[u8],
        dims: Option<(u32, u32)>,
    ) -> (String, String) {
        let p = self.presign(name, "image/png", bytes.len(), dims).await;
        let r = self.post_presigned(&p, name, "image/png", bytes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (p["key"].as_str().unwrap().to_owned(), etag_of(&r.body))
    }

    /// Make the store fail every read of `key` with a 500, as s3s-fs does for an object whose
    /// stored Content-Type cannot be a header (what the store now refuses to store).
    pub fn break_object(&self, key: &str) {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let path = self.dir.path().join("s3").join(format!(
            ".bucket-{}.object-{}.metadata.json",
            b64(&self.settings.bucket),
            b64(key)
        ));
        assert!(
            path.exists(),
            "no metadata file for {key} at {}",
            path.display()
        );
        std::fs::write(&path, br#"{"content_type":"image/png\r\nX-Evil: 1"}"#).unwrap();
    }

    /// Wait until the first start's backfill has run (on a fresh store it finds nothing), so
    /// that what a test stores next is not confirmed by it.
    pub async fn wait_for_backfill(&self) {
        let client = self.store_client();
        let marker = signpost::sweep::backfill::marker_key();
        let start = std::time::Instant::now();
        while client.head(&marker).await.unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no backfill marker after 10 s"
            );
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait (up to 10 s) until the background sweep has removed `key` from the store.
    pub async fn wait_until_gone(&self, key: &str) {
        let client = self.store_client();
        let start = std::time::Instant::now();
        while client.head(key).await.unwrap().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{key} is still in the store after 10 s"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Confirm an upload through the API, as the page does after sending it.
    pub async fn confirm(&self, key: &str, etag: &str) -> Resp {
        self.post_json(
            "/api/uploads/confirm",
            &serde_json::json!({"key": key, "etag": etag}),
        )
        .await
    }

    /// Upload through the API's fields and confirm it, as the page does; returns (key, etag).
    pub async fn upload_confirmed(
        &self,
        name: &str,
        bytes: &[u8],
        dims: Option<(u32, u32)>,
    ) -> (String, String) {
        let (key, etag) = self.upload_via_api(name, bytes, dims).await;
        let r = self.confirm(&key, &etag).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (key, etag)
    }

    /// POST a file with the fields (and to the URL) of a `/api/presign` answer.
    pub async fn post_presigned(
        &self,
        p: &serde_json::Value,
        name: &str,
        ct: &str,
        bytes: &[u8],
    ) -> Resp {
        self.post_form(p["url"].as_str().unwrap(), &api_fields(p), name, ct, bytes)
            .await
    }
}

/// The form fields of a `/api/presign` answer, in order.
pub fn api_fields(p: &serde_json::Value) -> Vec<(String, String)> {
    p["fields"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The ETag of a `success_action_status=201` answer (S3's XML), without quotes.
pub fn etag_of(post_response: &str) -> String {
    xml_text(post_response, "ETag")
        .unwrap_or_else(|| panic!("no <ETag> in {post_response}"))
        .trim_matches('"')
        .to_owned()
}

/// The text of the first `<name>` element of an S3 XML answer, its entities decoded. S3's
/// answers are flat and attribute-free where this is used (`PostResponse`, `Error`).
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{name}>"))?;
    Some(xml_unescape(&xml[start..start + len]))
}

/// XML's five named entities and character references decoded; anything else kept as is.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let decoded = rest.find(';').and_then(|end| {
            let c = match &rest[1..end] {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                e => {
                    let n = match e.strip_prefix("#x").or_else(|| e.strip_prefix("#X")) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => e.strip_prefix('#')?.parse().ok()?,
                    };
                    char::from_u32(n)?
                }
            };
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The embedded store's secret access key, as kept in a data dir.
pub fn stored_secret(data_dir: &std::path::Path) -> String {
    signpost::store::embedded::load_credentials(data_dir)
        .unwrap()
        .expect("the store has run with this data dir")
        .secret_access_key
        .expose()
        .to_owned()
}

pub fn policy_of(fields: &[(String, String)]) -> serde_json::Value {
    let b64 = &fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("policy"))
        .unwrap()
        .1;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

/// The confirmation link S3 redirects to after an upload into the embedded bucket.
pub fn uploaded_path(key: &str, etag: &str) -> String {
    format!(
        "/uploaded?bucket=signpost&key={}&etag={}",
        enc(key),
        enc(etag)
    )
}

/// Percent-encode a query value.
pub fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[test]
fn xml_text_decodes_the_etag_of_a_post_response() {
    let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>http://s/b/k</Location>\
               <Bucket>b</Bucket><Key>a&amp;b &#x41;&#66;</Key><ETag>&quot;0123abcd&quot;</ETag></PostResponse>";
    assert_eq!(etag_of(xml), "0123abcd");
    assert_eq!(xml_text(xml, "Key").as_deref(), Some("a&b AB"));
    assert_eq!(xml_text(xml, "Missing"), None);
    assert_eq!(xml_unescape("&bogus; & &#xZZ;"), "&bogus; & &#xZZ;");
}

/// Serve a test stand-in (a webhook receiver, a fake store, a proxy) on `listener` with one
/// worker, in the background; stop it with the returned handle.
pub fn serve(
    listener: std::net::TcpListener,
    routes: impl Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
) -> ServerHandle {
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("a test server listens on its loopback port")
            .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle
}
