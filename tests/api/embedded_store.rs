//! The embedded store under hostile and ordinary-but-large input: header fields it could not
//! send back are refused with nothing stored, a POST's 201 carries its ETag in a header, any
//! chunking of a large upload lands, half-open connections are closed within the header
//! timeout while uploads go on, and a reader never sees an object half-written.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::*;
use crate::store_upload::{env_with_limits, owned, post, presigner, signed};
use awc::http::StatusCode;
use signpost::policy::Version;
use signpost::store::embedded::Limits;
use signpost::store::multipart::form_body;
use signpost::testdata;

#[actix_web::test]
async fn a_line_break_or_a_malformed_content_type_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    // The no-script form signs `starts-with $Content-Type image/`: any of these passes the
    // policy, and the store itself must refuse them.
    let page = app.get("/").await;
    let (action, fields) = page_form(&page.body);
    let png = testdata::png(2, 2);
    for bad in [
        "image/png\r\nX-Evil: 1",
        "image/png\nX-Evil: 1",
        "image/png\r",
        "image/",
        "image/png\u{0}",
        "image/p ng",
    ] {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| {
                let v = if k == "Content-Type" { bad } else { v };
                (k.clone(), v.to_owned())
            })
            .collect();
        let r = app
            .post_form(&action, &fields, "x.png", "image/png", &png)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.body);
        assert_eq!(
            xml_text(&r.body, "Code").as_deref(),
            Some("InvalidArgument")
        );
    }
    let stored = app.store_client().list("uploads/", None, 10).await.unwrap();
    assert!(stored.objects.is_empty(), "stored: {:?}", stored.objects);

    // The same form with a plain type lands.
    let r = app
        .post_form(&action, &fields, "x.png", "image/png", &png)
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[actix_web::test]
async fn a_post_answers_201_with_its_etag_in_a_header_too() {
    let app = spawn_app().await;
    let png = testdata::png(3, 3);
    let p = app.presign("e.png", "image/png", png.len(), None).await;
    let r = app.post_presigned(&p, "e.png", "image/png", &png).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let header = r.header("etag").expect("an ETag header");
    assert!(
        header.len() > 2 && header.starts_with('"') && header.ends_with('"'),
        "quoted as S3 quotes it: {header}"
    );
    assert_eq!(header.trim_matches('"'), etag_of(&r.body));
    let head = app
        .store_client()
        .head(p["key"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.etag, header.trim_matches('"'));
}

/// Read one HTTP/1.1 answer (with a Content-Length) off `sock`: its status and body.
fn read_answer(sock: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = sock.read(&mut chunk).expect("an answer");
        assert!(n > 0, "the store closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).expect("the body");
        assert!(n > 0, "the store closed the connection mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    (status, body)
}

/// Each upload written in one go, several on one keep-alive connection: the store reads
/// them in large chunks (hyper's read buffer grows per connection), which s3s 0.14 used to
/// refuse as `MalformedPOSTRequest` once the first chunk outgrew its field limit.
#[actix_web::test]
async fn large_uploads_in_large_chunks_on_one_connection_all_land() {
    let app = spawn_app().await;
    let s3 = app.s3_addr.unwrap();
    let mut sock = TcpStream::connect(s3).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    for (i, size) in [1 << 20, 3 << 20, 600 * 1024, 2 << 20]
        .into_iter()
        .enumerate()
    {
        let mut file = testdata::png(8, 8);
        file.resize(size, 0x5a);
        let name = format!("big{i}.png");
        let p = app.presign(&name, "image/png", file.len(), None).await;
        let fields = api_fields(&p);
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (ct, body) = form_body(&refs, &name, "image/png", &file);
        let mut request = format!(
            "POST /signpost HTTP/1.1\r\nHost: {s3}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        sock.write_all(&request).unwrap();
        let (status, answer) = read_answer(&mut sock);
        assert_eq!(status, 201, "upload {i} ({size} bytes): {answer}");
    }
}

#[actix_web::test]
async fn half_open_connections_are_closed_within_the_header_timeout_while_uploads_go_on() {
    let mut limits = Limits::for_max_bytes(64 * 1024);
    limits.header_timeout = Duration::from_secs(1);
    let env = env_with_limits(Version::V4, 64 * 1024, 64 * 1024, 600, limits);
    let addr = env.store.as_ref().unwrap().addr();
    let mut half: Vec<TcpStream> = (0..400)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /signpost HTTP/1.1\r\nHost: x\r\nContent-Typ")
                .unwrap();
            s
        })
        .collect();
    let opened = Instant::now();

    // Uploads go on meanwhile.
    let p = presigner(&env, None);
    let png = testdata::png(4, 3);
    let s = signed(&p, "during.png", png.len());
    let (status, body) = post(&env, &s.url, &owned(&s), &png).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Each half-open connection is closed by the store within the timeout (and a margin).
    let deadline = opened + Duration::from_secs(4);
    let mut closed = 0;
    for s in &mut half {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                closed += 1
            }
            other => panic!("a half-open connection is still open: {other:?}"),
        }
    }
    assert_eq!(closed, 400);
    assert!(opened.elapsed() < Duration::from_secs(4));

    // And the store still serves.
    let s = signed(&p, "after.png", png.len());
    let (status, body) = post(&env, &s.url, &owned(&s), &png).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// An object appears whole: a HEAD that races its upload finds nothing, or the object with
/// its type, its metadata and its ETag, never its bytes alone. (The sweep reads new uploads
/// as they land; one read in that moment recorded a user's photo as "anonymous".)
#[actix_web::test]
async fn a_head_racing_an_upload_sees_nothing_or_the_whole_object() {
    let app = spawn_app().await;
    let store = std::rc::Rc::new(app.store_client());
    let photo = testdata::photo(1600, 1200, 7);
    let mut seen = 0;
    for i in 0..40 {
        let name = format!("race-{i}.jpg");
        let p = app.presign(&name, "image/jpeg", photo.len(), None).await;
        let key = p["key"].as_str().unwrap().to_owned();
        let done = std::rc::Rc::new(std::cell::Cell::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (store, key, done) = (store.clone(), key.clone(), done.clone());
                actix_web::rt::spawn(async move {
                    let mut heads = Vec::new();
                    while !done.get() {
                        if let Some(head) = store.head(&key).await.unwrap() {
                            heads.push(head);
                        }
                    }
                    heads
                })
            })
            .collect();
        let r = app.post_presigned(&p, &name, "image/jpeg", &photo).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let etag = etag_of(&r.body);
        done.set(true);
        for reader in readers {
            for head in reader.await.unwrap() {
                seen += 1;
                assert_eq!(head.etag, etag, "{name}: another ETag");
                assert_eq!(head.content_type.as_deref(), Some("image/jpeg"), "{name}");
                assert_eq!(
                    head.metadata.get("filename").map(String::as_str),
                    Some(name.as_str()),
                    "{name}: its bytes without its metadata"
                );
                assert!(head.metadata.contains_key("owner"), "{name}: no owner");
            }
        }
    }
    assert!(seen > 0, "the readers never found the uploads");
}

/// The embedded store names its metadata files after each key, so its keys are limited in
/// length: the limit signpost computes is s3s-fs's own, to the byte.
#[actix_web::test]
async fn the_embedded_stores_key_limit_is_computed_to_the_byte() {
    use signpost::store::embedded::names::keeps;
    let app = spawn_app().await;
    let store = app.store_client();
    let bucket = app.settings.bucket.clone();
    let longest = (1..1024)
        .rev()
        .find(|n| keeps(&bucket, &"k".repeat(*n), false))
        .unwrap();
    for (len, kept) in [(longest, true), (longest + 1, false)] {
        let key = format!("scratch/{}", "k".repeat(len - "scratch/".len()));
        let put = store
            .put(&key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await;
        assert_eq!(put.is_ok(), kept, "{len} bytes: {put:?}");
        if kept {
            let head = store.head(&key).await.unwrap().unwrap();
            assert_eq!(head.content_type.as_deref(), Some("application/json"));
        }
    }
}

/// A photo whose name is as long as people make them uploads and is confirmed, with its
/// thumbnails, on the embedded store: its key carries a shorter name, its metadata the
/// whole one.
#[actix_web::test]
async fn a_photo_with_a_long_name_is_confirmed_with_its_thumbnails() {
    let app = spawn_app().await;
    let photo = testdata::photo(1200, 900, 3);
    for name in [
        format!(
            "{}.jpg",
            "Holiday at the beach with the whole family, day 3 ".repeat(3)
        ),
        format!("{}.jpg", "夏休みの写真".repeat(12)),
        format!("{}.jpg", "x".repeat(240)),
    ] {
        let p = app.presign(&name, "image/jpeg", photo.len(), None).await;
        let key = p["key"].as_str().unwrap().to_owned();
        let key_name = key.rsplit('/').next().unwrap();
        assert!(key_name.len() <= app.settings.limits.max_name, "{key}");
        let r = app.post_presigned(&p, &name, "image/jpeg", &photo).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let c = app.confirm(&key, &etag_of(&r.body)).await;
        assert_eq!(c.status, StatusCode::OK, "{name}: {}", c.body);
        let confirmed: serde_json::Value = serde_json::from_str(&c.body).unwrap();
        assert_eq!(confirmed["filename"], name.as_str());
        assert_eq!(
            confirmed["thumbnails"].as_array().map(Vec::len),
            Some(2),
            "{}",
            c.body
        );
    }
}

/// Listings go on while the keys they list are deleted (the gallery while its owner
/// deletes, the sweep while it deletes a refused file, a link's claim while another is
/// withdrawn): none fails.
#[actix_web::test]
async fn listings_go_on_while_keys_are_deleted() {
    let app = spawn_app().await;
    let store = std::rc::Rc::new(app.store_client());
    let keys: Vec<String> = (0..300).map(|i| format!("scratch/{i:03}.json")).collect();
    for key in &keys {
        store
            .put(key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
    }
    let deleting = {
        let store = store.clone();
        actix_web::rt::spawn(async move {
            for key in &keys {
                store.delete(key).await.unwrap();
            }
        })
    };
    let mut listings = 0;
    while !deleting.is_finished() {
        let listed = store.list("scratch/", None, 1000).await;
        assert!(listed.is_ok(), "listing {listings}: {listed:?}");
        listings += 1;
    }
    deleting.await.unwrap();
    assert!(listings > 0);
    assert!(
        store
            .list("scratch/", None, 1000)
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

/// A deleted object leaves none of its files in the embedded store's folder.
#[actix_web::test]
async fn a_deleted_object_leaves_no_files_behind() {
    let app = spawn_app().await;
    let store = app.store_client();
    let root = signpost::store::embedded::store_root(app.dir.path());
    let files = || std::fs::read_dir(&root).unwrap().count();
    let before = files();
    for i in 0..5 {
        let key = format!("scratch/{i}.json");
        store
            .put(&key, bytes::Bytes::from_static(b"{}"), "application/json")
            .await
            .unwrap();
        assert!(files() > before, "the metadata is beside the bytes");
        store.delete(&key).await.unwrap();
        assert!(store.head(&key).await.unwrap().is_none());
    }
    assert_eq!(files(), before);
}
