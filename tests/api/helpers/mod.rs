//! Shared test helpers: `spawn_app()` starts signpost on loopback with its embedded store in
//! a temporary data dir, plus a small reader for the page's form.
#![allow(dead_code)]

pub mod browser;
pub mod fake_store;

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
    TestApp {
        base: format!("http://{addr}"),
        addr,
        s3_addr,
        handle,
        dir,
        client: client(),
        settings,
    }
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

async fn finish(
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

/// The ETag of a `success_action_status=201` answer, without quotes.
pub fn etag_of(post_response: &str) -> String {
    between(post_response, "<ETag>", "</ETag>")
        .unwrap()
        .replace("&quot;", "")
        .replace('"', "")
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

pub fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let (_, rest) = s.split_once(a)?;
    Some(rest.split_once(b)?.0)
}

/// Undo askama's HTML escaping.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with('#') => e[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
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

/// The attributes of one start tag (`<input a="b" c>`), unescaped.
pub fn attrs(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let inner = tag
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    let mut rest = inner
        .split_once(char::is_whitespace)
        .map(|x| x.1)
        .unwrap_or("");
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..end].to_owned();
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix("=\"") {
            let close = r.find('"').unwrap();
            out.push((name, unescape(&r[..close])));
            rest = &r[close + 1..];
        } else {
            out.push((name, String::new()));
        }
    }
    out
}

pub fn attr(tag: &str, name: &str) -> Option<String> {
    attrs(tag)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Every start tag of `html`, in order.
pub fn tags(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        let Some(j) = rest.find('>') else { break };
        let tag = &rest[..=j];
        if !tag.starts_with("</") && !tag.starts_with("<!") {
            out.push(tag.to_owned());
        }
        rest = &rest[j + 1..];
    }
    out
}

pub fn tag_name(tag: &str) -> String {
    tag.trim_start_matches('<')
        .split(|c: char| c.is_whitespace() || c == '>')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The page's upload form as a browser would submit it: (action, fields before the file in
/// order, index of the file input among the form's named controls).
pub fn page_form(html: &str) -> (String, Vec<(String, String)>) {
    let form_start = html.find("<form id=\"formBlob\"").expect("form #formBlob");
    let form_end = html[form_start..].find("</form>").unwrap() + form_start;
    let form_html = &html[form_start..form_end];
    let form_tag = tags(form_html).remove(0);
    let action = attr(&form_tag, "action").unwrap();
    let mut fields = Vec::new();
    let mut in_select: Option<String> = None;
    for t in tags(form_html) {
        match tag_name(&t).as_str() {
            "input" => {
                let Some(name) = attr(&t, "name") else {
                    continue;
                };
                if attr(&t, "type").as_deref() == Some("file") {
                    break;
                }
                fields.push((name, attr(&t, "value").unwrap_or_default()));
            }
            "select" => in_select = attr(&t, "name"),
            "option" => {
                if let Some(name) = &in_select
                    && attrs(&t).iter().any(|(n, _)| n == "selected")
                {
                    fields.push((name.clone(), attr(&t, "value").unwrap()));
                    in_select = None;
                }
            }
            _ => {}
        }
    }
    (action, fields)
}

/// Replace the named fields of a form by those of a fragment (what the script does).
pub fn fragment_fields(fragment: &str) -> Vec<(String, String)> {
    tags(fragment)
        .into_iter()
        .filter(|t| tag_name(t) == "input")
        .filter_map(|t| Some((attr(&t, "name")?, attr(&t, "value").unwrap_or_default())))
        .collect()
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
