//! Who may upload, with the real binary in each mode: behind an authenticating proxy (whose
//! header is believed only from trusted peers), API tokens (delegate ones too), upload links
//! and their budget, the refusal to start exposed without an identity, the rate limit behind
//! proxies, deleting (owner and admins only, same-origin, anti-CSRF), `--gallery own` and
//! the daily quota.

use std::path::Path;
use std::time::Duration;

use awc::http::StatusCode;
use bytes::Bytes;
use serde_json::{Value, json};
use signpost::store::multipart::form_body;
use signpost::testdata;

use crate::helpers::{Doc, api_fields, etag_of};
use crate::process::{Server, run_to_end};

/// Whether the policy signed into a presign answer has a condition matching `pred`.
fn has_condition(answer: &Value, pred: impl Fn(&Value) -> bool) -> bool {
    let policy = crate::helpers::policy_of(&api_fields(answer));
    let found = policy["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(pred));
    if !found {
        eprintln!("no such condition in {policy}");
    }
    found
}

/// Requests with a fixed set of headers (a proxy's user header, a token, a cookie).
struct Caller {
    client: awc::Client,
    base: String,
    headers: Vec<(String, String)>,
}

struct Answer {
    status: StatusCode,
    headers: awc::http::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn code(&self) -> String {
        match self.json()["error"]["code"].as_str() {
            Some(c) => c.to_owned(),
            None => crate::helpers::error_code(&self.body).unwrap_or_default(),
        }
    }
}

impl Caller {
    fn new(server: &Server, headers: &[(&str, &str)]) -> Self {
        Self {
            client: crate::helpers::client(),
            base: server.base(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn with(&self, name: &str, value: &str) -> Self {
        let mut headers = self.headers.clone();
        headers.push((name.to_owned(), value.to_owned()));
        Self {
            client: crate::helpers::client(),
            base: self.base.clone(),
            headers,
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, mut req: awc::ClientRequest, body: Option<(&str, Bytes)>) -> Answer {
        for (k, v) in &self.headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        let mut r = match body {
            Some((ct, b)) => req.insert_header(("content-type", ct)).send_body(b),
            None => req.send(),
        }
        .await
        .unwrap();
        let body = r.body().limit(16 << 20).await.unwrap();
        Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.client.get(self.url(path)), None).await
    }

    async fn post_json(&self, path: &str, body: Value) -> Answer {
        self.send(
            self.client.post(self.url(path)),
            Some(("application/json", Bytes::from(body.to_string()))),
        )
        .await
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(
            self.client.post(self.url(path)),
            Some(("application/x-www-form-urlencoded", Bytes::from(body))),
        )
        .await
    }

    async fn presign(&self, name: &str, size: usize, owner: Option<&str>) -> Answer {
        let mut body = json!({"filename": name, "content_type": "image/png", "size": size});
        if let Some(o) = owner {
            body["owner"] = o.into();
        }
        self.post_json("/api/presign", body).await
    }

    /// Sign, send to the store, confirm: (key, etag).
    async fn upload(&self, name: &str) -> (String, String) {
        let png = testdata::png(4, 4);
        let p = self.presign(name, png.len(), None).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        let (key, etag) = self.send_signed(&p.json(), &png).await;
        let c = self.confirm(&key, &etag).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.body);
        (key, etag)
    }

    /// Post a presign answer's fields and `file` to the store: (key, etag).
    async fn send_signed(&self, p: &Value, file: &[u8]) -> (String, String) {
        let fields = api_fields(p);
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (ct, body) = form_body(&refs, "x.png", "image/png", file);
        let r = self
            .client
            .post(p["url"].as_str().unwrap())
            .insert_header(("content-type", ct))
            .send_body(body)
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&r).into_owned();
        (p["key"].as_str().unwrap().to_owned(), etag_of(&text))
    }

    async fn confirm(&self, key: &str, etag: &str) -> Answer {
        self.post_json("/api/uploads/confirm", json!({"key": key, "etag": etag}))
            .await
    }
}

fn field<'a>(p: &'a Value, name: &str) -> Option<&'a str> {
    p["fields"][name].as_str()
}

/// `signpost ARGS…` against this data dir, to completion: its output.
fn cli(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let (status, out) = run_to_end(&all, &[]);
    assert!(status.success(), "signpost {args:?}: {out}");
    out
}

/// The same, against a running server's embedded store.
fn cli_on(server: &Server, dir: &Path, args: &[&str]) -> String {
    let bind = server.web.to_string();
    let s3 = server.s3.to_string();
    let mut all = vec!["--bind", &bind, "--embedded-s3-bind", &s3];
    all.extend_from_slice(args);
    cli(dir, &all)
}

const PROXY: [&str; 4] = [
    "--auth-header",
    "Remote-User",
    "--trusted-proxies",
    "127.0.0.1/32",
];

/// A raw request from another loopback address (an untrusted peer).
async fn from_other_peer(server: &Server, head: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stream = socket.connect(server.web).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text[9..12].parse().unwrap()
}

#[actix_web::test]
async fn behind_a_proxy_its_header_names_the_user_only_from_trusted_peers() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &PROXY, &[]);
    server.ready().await;
    let nobody = Caller::new(&server, &[]);
    let r = nobody.presign("a.png", 10, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "unauthenticated");
    let page = nobody.get("/").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("Sign in"), "{}", page.body);

    let alice = Caller::new(&server, &[("Remote-User", "alice")]);
    let r = alice.presign("a.png", 10, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(field(&r.json(), "x-amz-meta-owner"), Some("alice"));
    assert!(has_condition(&r.json(), |c| c["x-amz-meta-owner"] == "alice"));
    // The page's no-script form is signed for her too.
    let page = alice.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let (_, fields) = crate::helpers::page_form(&page.body);
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "x-amz-meta-owner" && v == "alice")
    );

    // The same header from a peer that is not a trusted proxy claims nobody.
    let body = json!({"filename": "a.png", "content_type": "image/png", "size": 10}).to_string();
    let status = from_other_peer(
        &server,
        &format!(
            "POST /api/presign HTTP/1.1\r\nHost: x\r\nRemote-User: alice\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn tokens_sign_as_their_name_and_revoked_or_overreaching_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ci = cli(dir.path(), &["token", "add", "ci"]);
    let ci = ci.lines().next().unwrap().trim().to_owned();
    let app = cli(dir.path(), &["token", "add", "host-app", "--delegate"]);
    let app = app.lines().next().unwrap().trim().to_owned();
    let listed = cli(dir.path(), &["token", "list"]);
    assert!(
        listed.contains("ci") && listed.contains("host-app\tdelegate"),
        "{listed}"
    );
    assert!(!listed.contains(&ci), "the token itself is never listed");

    let mut args = PROXY.to_vec();
    args.extend(["--admins", "root"]);
    let mut server = Server::start(dir.path(), &args, &[]);
    server.ready().await;
    let as_ci = Caller::new(&server, &[("Authorization", &format!("Bearer {ci}"))]);
    let r = as_ci.presign("a.png", 10, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(field(&r.json(), "x-amz-meta-owner"), Some("ci"));
    // A plain token may not sign for someone else.
    let r = as_ci.presign("a.png", 10, Some("carol")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "owner_not_allowed")
    );

    let as_app = Caller::new(&server, &[("Authorization", &format!("Bearer {app}"))]);
    let r = as_app.presign("a.png", 10, Some("carol")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(field(&r.json(), "x-amz-meta-owner"), Some("carol"));
    let r = as_app.presign("a.png", 10, Some("root")).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "never for an admin: {}",
        r.body
    );

    cli(dir.path(), &["token", "revoke", "ci"]);
    let r = as_ci.presign("a.png", 10, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let stranger = Caller::new(&server, &[("Authorization", "Bearer spt_not-a-token")]);
    let r = stranger.presign("a.png", 10, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Who asks comes first: a stranger hears nothing about what its request lacks.
    let r = stranger
        .post_json(
            "/api/presign",
            json!({"content_type": "image/png", "size": 10}),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthenticated")
    );
    let r = stranger
        .post_json("/api/sign-request", json!({"method": "PUT", "key": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = stranger.get("/fragments/image-meta?size=nope").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

/// `signpost link ARGS…`: the link's URL (the first line it prints).
fn make_link(server: &Server, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["link"];
    all.extend_from_slice(args);
    let made = cli_on(server, dir, &all);
    let url = made.lines().next().unwrap_or_default().trim().to_owned();
    assert!(url.contains("/l/"), "{made}");
    url
}

/// Open an upload link as a new browser would: its session cookie.
async fn open_link(server: &Server, url: &str) -> Result<String, Answer> {
    let caller = Caller::new(server, &[]);
    let r = caller.get(url).await;
    if r.status != StatusCode::SEE_OTHER {
        return Err(r);
    }
    let cookie = r
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    Ok(cookie.split(';').next().unwrap().to_owned())
}

/// The embedded store's files (every upload, the link key) are this user's alone; and a
/// link's token only names its record: one re-signed with the key but saying another owner
/// or budget opens nothing.
#[actix_web::test]
async fn the_link_key_is_private_and_a_token_that_differs_from_its_record_is_refused() {
    use signpost::identity::links::{Link, sign};
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &PROXY, &[]);
    server.ready().await;
    let url = make_link(&server, dir.path(), &["--owner", "bob", "--uploads", "1"]);
    let root = signpost::store::embedded::store_root(dir.path());
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", root.display());

    // Whoever holds the key anyway (a --link-key leaked, a backup): bob's link, re-signed
    // for mallory and a thousand uploads.
    let key = signpost::store::links::link_key(&server.store_client(dir.path()), None)
        .await
        .unwrap();
    let token = url.rsplit('/').next().unwrap();
    let payload = token.split('.').next().unwrap();
    let mut link: Link = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(link.owner, "bob");
    link.owner = "mallory".into();
    link.uploads = 1000;
    let forged = format!("/l/{}", sign(&key, &link));
    let r = Caller::new(&server, &[]).get(&forged).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "link_invalid"),
        "{}",
        r.body
    );
    // The real one still opens.
    assert!(open_link(&server, &url).await.is_ok());
}

#[actix_web::test]
async fn a_link_allows_exactly_its_confirmed_uploads_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &PROXY, &[]);
    server.ready().await;
    let url = make_link(&server, dir.path(), &["--owner", "dana", "--uploads", "2"]);

    let a = Caller::new(&server, &[]).with("Cookie", &open_link(&server, &url).await.ok().unwrap());
    let b = Caller::new(&server, &[]).with("Cookie", &open_link(&server, &url).await.ok().unwrap());
    // Three forms signed while none is confirmed: all signed.
    let png = testdata::png(4, 4);
    let mut signed = Vec::new();
    for (who, name) in [(&a, "one.png"), (&b, "two.png"), (&a, "three.png")] {
        let p = who.presign(name, png.len(), None).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.body);
        assert_eq!(field(&p.json(), "x-amz-meta-owner"), Some("dana"));
        assert!(field(&p.json(), "x-amz-meta-link").is_some());
        signed.push(p.json());
    }
    let mut outcomes = Vec::new();
    for (i, p) in signed.iter().enumerate() {
        let (key, etag) = a.send_signed(p, &png).await;
        let who = if i == 1 { &b } else { &a };
        let c = who.confirm(&key, &etag).await;
        outcomes.push((c.status, c.code(), key));
    }
    assert_eq!(outcomes[0].0, StatusCode::OK);
    assert_eq!(outcomes[1].0, StatusCode::OK);
    assert_eq!(
        (outcomes[2].0, outcomes[2].1.as_str()),
        (StatusCode::FORBIDDEN, "link_exhausted"),
        "past the budget"
    );
    // A fresh session of the same link: the budget is the link's.
    let c = Caller::new(&server, &[]).with("Cookie", &open_link(&server, &url).await.ok().unwrap());
    let r = c.presign("four.png", 10, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "link_exhausted")
    );
    // The upload past the budget is gone; the two others stay, owned by dana.
    let alice = Caller::new(&server, &[("Remote-User", "root")]);
    let gallery = alice.get("/gallery").await;
    assert_eq!(
        Doc::page(&gallery.body).count("li.card"),
        2,
        "{}",
        gallery.body
    );
    // A link session only uploads: no gallery, no delete.
    assert_eq!(a.get("/gallery").await.status, StatusCode::FORBIDDEN);
    let d = a
        .post_json("/api/uploads/delete", json!({"key": outcomes[0].2}))
        .await;
    assert_eq!(
        (d.status, d.code().as_str()),
        (StatusCode::FORBIDDEN, "not_yours")
    );

    // Expired and revoked links are refused.
    let short = make_link(&server, dir.path(), &["--owner", "erin", "--expires", "1s"]);
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    let e = open_link(&server, &short).await.err().unwrap();
    assert_eq!(
        (e.status, e.code().as_str()),
        (StatusCode::FORBIDDEN, "link_expired")
    );
    let listed = cli_on(&server, dir.path(), &["link", "list"]);
    let id = listed
        .lines()
        .find(|l| l.contains("\tdana\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    assert!(listed.contains("2/2"), "{listed}");
    cli_on(&server, dir.path(), &["link", "revoke", &id]);
    let e = open_link(&server, &url).await.err().unwrap();
    assert_eq!(
        (e.status, e.code().as_str()),
        (StatusCode::FORBIDDEN, "link_revoked")
    );
}

#[test]
fn exposed_without_an_identity_signpost_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::fake_store::free_port();
    let s3 = crate::helpers::fake_store::free_port();
    let bind = format!("0.0.0.0:{port}");
    let s3_bind = format!("127.0.0.1:{s3}");
    let (status, out) = run_to_end(
        &[
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--bind",
            &bind,
            "--embedded-s3-bind",
            &s3_bind,
            "--public-url",
            "http://uploads.example.com",
        ],
        &[],
    );
    assert!(!status.success(), "it started: {out}");
    for way in [
        "--auth-header",
        "signpost token add",
        "--allow-anonymous",
        "is exposed",
    ] {
        assert!(out.contains(way), "{way} is not named: {out}");
    }
    assert_eq!(out.matches("is exposed").count(), 1, "printed once: {out}");
}

/// Signing the same file again is not a new file, but each answer is a new key to upload
/// to: re-signs have their own budget (four a minute for each file the limit allows).
#[actix_web::test]
async fn signing_one_file_again_and_again_does_not_escape_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &["--allow-anonymous", "--sign-rate-per-minute", "1"],
        &[],
    );
    server.ready().await;
    let caller = Caller::new(&server, &[]);
    let mut statuses = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for _ in 0..7 {
        let r = caller.presign("same.png", 10, None).await;
        if r.status == StatusCode::OK {
            keys.insert(r.json()["key"].as_str().unwrap().to_owned());
        }
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(keys.len(), 5, "each signature has its own key");
}

#[actix_web::test]
async fn a_spoofed_leftmost_forwarded_hop_does_not_escape_the_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--allow-anonymous",
            "--sign-rate-per-minute",
            "3",
        ],
        &[],
    );
    server.ready().await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let spoof = format!("10.9.9.{n}, 203.0.113.7");
        let r = Caller::new(&server, &[("X-Forwarded-For", &spoof)])
            .presign(&format!("f{n}.png"), 10, None)
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    // Another client behind the same proxy has its own budget.
    let r = Caller::new(&server, &[("X-Forwarded-For", "203.0.113.8")])
        .presign("g.png", 10, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// The `/uploaded` page of an upload, as `who` sees it.
async fn uploaded_page(who: &Caller, key: &str, etag: &str) -> Answer {
    who.get(&crate::helpers::uploaded_path(key, etag)).await
}

#[actix_web::test]
async fn only_the_owner_or_an_admin_deletes_and_the_deletion_is_announced() {
    let rx = crate::notify::Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = PROXY.to_vec();
    args.extend([
        "--admins",
        "root",
        "--notify-url",
        &rx.url,
        "--notify-secret",
        "whsec_test_0123456789abcdef",
        "--notify-sweep-secs",
        "1",
    ]);
    let mut server = Server::start(dir.path(), &args, &[]);
    server.ready().await;
    let site = server.base();
    let alice = Caller::new(&server, &[("Remote-User", "alice"), ("Origin", &site)]);
    let bob = Caller::new(&server, &[("Remote-User", "bob"), ("Origin", &site)]);
    let (key, etag) = alice.upload("hers.png").await;
    let (bobs, bobs_etag) = bob.upload("his.png").await;

    // Bob sees no Delete button on her upload, and his own button's token does not work on it.
    let page = uploaded_page(&bob, &key, &etag).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(Doc::page(&page.body).find("#btnDelete").is_none());
    let his_page = uploaded_page(&bob, &bobs, &bobs_etag).await;
    let his_csrf = Doc::page(&his_page.body)
        .attr("#deleteForm [name=csrf]", "value")
        .expect("his own Delete button");
    let r = bob
        .post_form("/uploads/delete", &[("key", &key), ("csrf", &his_csrf)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = bob
        .post_json("/api/uploads/delete", json!({"key": key}))
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "not_yours")
    );
    assert_eq!(
        uploaded_page(&alice, &key, &etag).await.status,
        StatusCode::OK,
        "still there"
    );

    // Her own button, from another site: refused.
    let page = uploaded_page(&alice, &key, &etag).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = Doc::page(&page.body)
        .attr("#deleteForm [name=csrf]", "value")
        .unwrap_or_else(|| panic!("her Delete button: {}", page.body));
    let foreign = Caller::new(
        &server,
        &[("Remote-User", "alice"), ("Origin", "https://evil.example")],
    );
    let r = foreign
        .post_form("/uploads/delete", &[("key", &key), ("csrf", &csrf)])
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "cross_site_request")
    );
    // A form that is not the button's: the error page, with a stable code.
    let r = alice.post_form("/uploads/delete", &[("key", &key)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains(r#"data-code="form_invalid""#), "{}", r.body);
    let r = alice
        .post_json("/uploads/delete", json!({"key": key, "csrf": csrf}))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    assert!(
        r.body.contains(r#"data-code="unsupported_media_type""#),
        "{}",
        r.body
    );

    // From her page: the object, its record and its thumbnail go, and the deletion is
    // announced.
    rx.wait_delivered(&[&key], Duration::from_secs(10)).await;
    let store = server.store_client(dir.path());
    let record = signpost::store::records::record_key(&key);
    let thumbs = format!("thumbs/{key}/");
    let left = |listing: signpost::store::Listing| listing.objects.len();
    assert!(store.head(&record).await.unwrap().is_some());
    assert_eq!(left(store.list(&thumbs, None, 10).await.unwrap()), 1);
    let r = alice
        .post_form("/uploads/delete", &[("key", &key), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        uploaded_page(&alice, &key, &etag).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(store.head(&key).await.unwrap().is_none());
    assert!(store.head(&record).await.unwrap().is_none());
    assert_eq!(left(store.list(&thumbs, None, 10).await.unwrap()), 0);
    let deleted = rx
        .wait(Duration::from_secs(10), |hits| {
            hits.iter()
                .any(|h| h.json()["type"] == "upload.deleted" && h.key() == key)
        })
        .await;
    assert!(deleted, "no upload.deleted event");
    let event = rx
        .hits()
        .into_iter()
        .find(|h| h.json()["type"] == "upload.deleted")
        .unwrap();
    event.assert_signed();
    assert_eq!(event.json()["owner"], "alice");

    // An admin may delete anyone's upload.
    let root = Caller::new(&server, &[("Remote-User", "root"), ("Origin", &site)]);
    let r = root
        .post_json("/api/uploads/delete", json!({"key": bobs}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A deletion that comes while the upload is being verified (by its browser's confirmation
/// or the sweep) waits for it, then removes what it wrote: no record or thumbnail outlives
/// the object.
#[actix_web::test]
async fn a_deletion_during_its_confirmation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &PROXY, &[]);
    server.ready().await;
    let alice = Caller::new(&server, &[("Remote-User", "alice")]);
    // 24 megapixels: verifying and thumbnailing them takes a while.
    let big = testdata::png(6000, 4000);
    let p = alice.presign("big.png", big.len(), None).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let (key, etag) = alice.send_signed(&p.json(), &big).await;
    let delete = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        alice
            .post_json("/api/uploads/delete", json!({"key": key}))
            .await
    };
    let (confirmed, deleted) = tokio::join!(alice.confirm(&key, &etag), delete);
    assert!(
        matches!(confirmed.status, StatusCode::OK | StatusCode::NOT_FOUND),
        "{}",
        confirmed.body
    );
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let store = server.store_client(dir.path());
    assert!(store.head(&key).await.unwrap().is_none());
    let record = signpost::store::records::record_key(&key);
    assert!(
        store.head(&record).await.unwrap().is_none(),
        "a record outlived its upload"
    );
    let thumbs = store
        .list(&format!("thumbs/{key}/"), None, 10)
        .await
        .unwrap();
    assert!(
        thumbs.objects.is_empty(),
        "thumbnails outlived their upload: {:?}",
        thumbs.objects
    );
    assert_eq!(
        uploaded_page(&alice, &key, &etag).await.status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn with_gallery_own_each_user_sees_their_own_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = PROXY.to_vec();
    args.extend(["--gallery", "own", "--admins", "root"]);
    let mut server = Server::start(dir.path(), &args, &[]);
    server.ready().await;
    let alice = Caller::new(&server, &[("Remote-User", "alice")]);
    let bob = Caller::new(&server, &[("Remote-User", "bob")]);
    let (key, etag) = alice.upload("alices.png").await;
    bob.upload("bobs.png").await;
    let mine = bob.get("/gallery").await;
    assert!(
        mine.body.contains("bobs.png") && !mine.body.contains("alices.png"),
        "{}",
        mine.body
    );
    assert_eq!(
        uploaded_page(&bob, &key, &etag).await.status,
        StatusCode::FORBIDDEN
    );
    let all = Caller::new(&server, &[("Remote-User", "root")])
        .get("/gallery")
        .await;
    assert!(all.body.contains("bobs.png") && all.body.contains("alices.png"));
}

#[actix_web::test]
async fn the_daily_quota_refuses_past_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = PROXY.to_vec();
    args.extend(["--quota-bytes-per-day", "1000"]);
    let mut server = Server::start(dir.path(), &args, &[]);
    server.ready().await;
    let carol = Caller::new(&server, &[("Remote-User", "carol")]);
    let r = carol.presign("a.png", 600, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The form may carry no more than was counted.
    assert!(has_condition(&r.json(), |c| c[0] == "content-length-range" && c[2] == 600));
    let r = carol.presign("b.png", 600, None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded")
    );
    assert!(r.headers.contains_key("retry-after"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resets at")
    );
    // Another user has her own.
    let r = Caller::new(&server, &[("Remote-User", "dave")])
        .presign("c.png", 600, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A reverse proxy on loopback that names the user, as an authenticating proxy does.
struct NamingProxy {
    url: String,
    handle: actix_web::dev::ServerHandle,
}

async fn forward(
    req: actix_web::HttpRequest,
    body: Bytes,
    upstream: actix_web::web::Data<(String, String)>,
) -> actix_web::HttpResponse {
    let (target, user) = upstream.get_ref();
    let client = crate::helpers::client();
    let mut fwd = client.request(req.method().clone(), format!("{target}{}", req.uri()));
    for (k, v) in req.headers() {
        // The proxy passes bodies as they are: it asks for none compressed.
        if k != "host" && k != "remote-user" && k != "accept-encoding" {
            fwd = fwd.insert_header((k.clone(), v.clone()));
        }
    }
    fwd = fwd.insert_header(("Remote-User", user.as_str()));
    let mut resp = fwd.send_body(body).await.unwrap();
    let bytes = resp.body().limit(64 << 20).await.unwrap();
    let mut out = actix_web::HttpResponse::build(resp.status());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            out.append_header((k.clone(), v.clone()));
        }
    }
    out.body(bytes)
}

impl NamingProxy {
    async fn start(listener: std::net::TcpListener, upstream: String, user: &str) -> Self {
        let addr = listener.local_addr().unwrap();
        let data = actix_web::web::Data::new((upstream, user.to_owned()));
        let handle = crate::helpers::serve(listener, move |cfg| {
            cfg.app_data(data.clone())
                .default_service(actix_web::web::to(forward));
        });
        Self {
            url: format!("http://{addr}"),
            handle,
        }
    }
}

impl Drop for NamingProxy {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

/// In Chromium, behind a proxy that signs Alice in: she uploads, sees her upload with a
/// Delete button, deletes it, and it is gone from the gallery.
#[actix_web::test]
async fn a_signed_in_user_uploads_and_deletes_in_the_browser() {
    let Some(b) = crate::helpers::browser::Browser::start("signed_in").await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let public = proxy_url.clone();
    let app = crate::helpers::spawn_with(move |c| {
        c.public_url = Some(public);
        c.auth_header = Some("Remote-User".into());
        c.trusted_proxies = Some("127.0.0.1/32".into());
    })
    .await;
    let proxy = NamingProxy::start(listener, app.base.clone(), "alice").await;
    // Without the proxy's header, nobody is signed in.
    assert_eq!(app.get("/").await.status, StatusCode::UNAUTHORIZED);
    let through = app.get(&format!("{}/", proxy.url)).await;
    assert_eq!(through.status, StatusCode::OK, "{}", through.body);

    b.goto(&format!("{}/", proxy.url)).await;
    let png = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        testdata::png(30, 20),
    );
    b.js(
        "const bin = atob(arguments[0]), bytes = new Uint8Array(bin.length);
         for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
         const dt = new DataTransfer();
         dt.items.add(new File([bytes], 'mine.png', { type: 'image/png' }));
         const input = document.getElementById('myImage');
         input.files = dt.files;
         input.dispatchEvent(new Event('change', { bubbles: true }));",
        vec![json!(png)],
    )
    .await;
    b.wait(
        "Save enabled for the chosen file",
        "const f = document.querySelector('#image-meta [name=\"x-amz-meta-owner\"]');
         return f && f.value === 'alice' && !document.getElementById('btnSave').disabled;",
        vec![],
        |v| v == &json!(true),
    )
    .await;
    b.find("#btnSave").await.click().await.unwrap();
    b.wait(
        "her upload's page, with its owner and a Delete button",
        "return location.pathname === '/uploaded' && document.getElementById('btnDelete')
             ? document.getElementById('owner').textContent : null;",
        vec![],
        |v| v == &json!("alice"),
    )
    .await;
    b.find("#btnDelete").await.click().await.unwrap();
    b.wait(
        "the gallery, without it",
        "return location.pathname === '/gallery' && document.readyState === 'complete'
             ? document.querySelectorAll('li.card').length : null;",
        vec![],
        |v| v == &json!(0),
    )
    .await;
    b.finish().await;
    drop(proxy);
}
