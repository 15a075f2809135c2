//! Presigned S3 requests (rusty-s3) sent with awc, each bounded by a connect and a total
//! timeout. One `S3Client` per actix worker: awc's client is not `Send`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rusty_s3::S3Action;
use rusty_s3::actions::{
    AbortMultipartUpload, DeleteObject, GetObject, HeadObject, ListObjectsV2, ListParts, PutObject,
};
use url::Url;

use super::{StoreError, StoreTarget};

/// What `x-amz-copy-source` escapes in a key: everything but unreserved characters and `/`.
const COPY_SOURCE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// How long a presigned request URL (used right away) stays valid.
const REQUEST_URL_TTL: Duration = Duration::from_secs(60);
/// Largest listing or error body read.
const MAX_XML_BYTES: usize = 4 * 1024 * 1024;

/// What a HEAD (or the headers of a ranged GET) says about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Without quotes.
    pub etag: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub last_modified: Option<String>,
    /// `x-amz-meta-*` headers, by their suffix (lowercase).
    pub metadata: BTreeMap<String, String>,
    /// The other headers S3 keeps with the object and a copy must send again
    /// (`Content-Disposition`, `Cache-Control`, …), lowercase.
    pub kept: Vec<(String, String)>,
}

/// Headers an object keeps besides its type and metadata.
const KEPT_HEADERS: [&str; 4] = [
    "content-disposition",
    "cache-control",
    "content-encoding",
    "content-language",
];

/// The head of an object and its first bytes.
#[derive(Debug, Clone)]
pub struct ObjectProbe {
    pub head: ObjectHead,
    pub bytes: Bytes,
    /// Whether `bytes` is the whole object.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    /// Whether more keys follow the last one listed.
    pub truncated: bool,
}

pub struct S3Client {
    http: awc::Client,
    target: Arc<StoreTarget>,
}

pub fn strip_quotes(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

impl S3Client {
    pub fn new(target: Arc<StoreTarget>) -> Self {
        let connector = awc::Connector::new()
            .timeout(target.connect_timeout)
            .handshake_timeout(target.connect_timeout);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(target.timeout)
            .disable_redirects()
            .finish();
        Self { http, target }
    }

    fn map_send_error(&self, e: SendRequestError) -> StoreError {
        match e {
            SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => {
                StoreError::Timeout {
                    endpoint: self.target.endpoint.clone(),
                    after: self.target.timeout,
                }
            }
            SendRequestError::Connect(e) => StoreError::Unreachable {
                endpoint: self.target.endpoint.clone(),
                detail: e.to_string(),
            },
            other => StoreError::Unreachable {
                endpoint: self.target.endpoint.clone(),
                detail: other.to_string(),
            },
        }
    }

    fn creds(&self) -> Option<&rusty_s3::Credentials> {
        Some(&self.target.credentials)
    }

    /// Send a request (its URL already presigned), mapping transport errors.
    async fn send(&self, req: awc::ClientRequest) -> Result<awc::ClientResponse, StoreError> {
        req.send().await.map_err(|e| self.map_send_error(e))
    }

    fn timeout_error(&self) -> StoreError {
        StoreError::Timeout {
            endpoint: self.target.endpoint.clone(),
            after: self.target.timeout,
        }
    }

    /// Run `fut` within the total timeout: awc bounds the wait for headers, this bounds the
    /// whole exchange, body included.
    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.bounded_by(self.target.timeout, fut).await
    }

    async fn bounded_by<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match actix_web::rt::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(self.timeout_error()),
        }
    }

    /// The total timeout of a read of `bytes`: the configured one, plus a second per MiB
    /// (whole photos are read at confirmation).
    fn timeout_for(&self, bytes: usize) -> Duration {
        self.target.timeout + Duration::from_secs(u64::try_from(bytes >> 20).unwrap_or(u64::MAX))
    }

    async fn read_limited(
        &self,
        resp: &mut awc::ClientResponse<
            impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
        >,
        max: usize,
    ) -> Result<(Bytes, bool), StoreError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = resp.next().await {
            let chunk = chunk.map_err(|e| StoreError::BadResponse(format!("body: {e}")))?;
            let room = max - buf.len();
            if chunk.len() >= room {
                buf.extend_from_slice(&chunk[..room]);
                // More may follow: the caller gets a prefix.
                return Ok((buf.freeze(), false));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf.freeze(), true))
    }

    async fn error_from(
        &self,
        status: StatusCode,
        resp: &mut awc::ClientResponse<
            impl futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
        >,
    ) -> StoreError {
        let body = self
            .read_limited(resp, 8192)
            .await
            .map(|(b, _)| b)
            .unwrap_or_default();
        StoreError::from_status(status.as_u16(), &body)
    }

    fn head_from(
        &self,
        headers: &awc::http::header::HeaderMap,
        size: Option<u64>,
    ) -> Result<ObjectHead, StoreError> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = get("etag").ok_or_else(|| StoreError::BadResponse("no ETag header".into()))?;
        let size = match size {
            Some(s) => s,
            None => get("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::BadResponse("no Content-Length header".into()))?,
        };
        let metadata = headers
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_owned(), v.to_str().ok()?.to_owned()))
            })
            .collect();
        Ok(ObjectHead {
            etag: strip_quotes(&etag).to_owned(),
            size,
            content_type: get("content-type"),
            last_modified: get("last-modified"),
            metadata,
            kept: KEPT_HEADERS
                .iter()
                .filter_map(|&name| Some((name.to_owned(), get(name)?)))
                .collect(),
        })
    }

    /// HEAD an object. `Ok(None)`: it does not exist.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, StoreError> {
        let url = HeadObject::new(&self.target.bucket, self.creds(), key).sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut resp = self.send(self.http.head(url.as_str())).await?;
            match resp.status() {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => self.head_from(resp.headers(), None).map(Some),
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// The head of an object and its first `max` bytes, in one ranged GET.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn probe(&self, key: &str, max: usize) -> Result<Option<ObjectProbe>, StoreError> {
        let url = GetObject::new(&self.target.bucket, self.creds(), key).sign(REQUEST_URL_TTL);
        self.bounded_by(self.timeout_for(max), async {
            let mut resp = self
                .send(
                    self.http
                        .get(url.as_str())
                        .insert_header(("range", format!("bytes=0-{}", max.saturating_sub(1)))),
                )
                .await?;
            let status = resp.status();
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                // An empty object cannot be ranged.
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    Ok(self.head(key).await?.map(|head| ObjectProbe {
                        head,
                        bytes: Bytes::new(),
                        complete: true,
                    }))
                }
                StatusCode::PARTIAL_CONTENT | StatusCode::OK => {
                    let total = if status == StatusCode::PARTIAL_CONTENT {
                        let range = resp
                            .headers()
                            .get("content-range")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.rsplit_once('/'))
                            .and_then(|(_, total)| total.parse::<u64>().ok())
                            .ok_or_else(|| {
                                StoreError::BadResponse(
                                    "a 206 without a valid Content-Range".into(),
                                )
                            })?;
                        Some(range)
                    } else {
                        None
                    };
                    let head = self.head_from(resp.headers(), total)?;
                    let (bytes, _) = self.read_limited(&mut resp, max).await?;
                    let complete = bytes.len() as u64 >= head.size;
                    Ok(Some(ObjectProbe {
                        head,
                        bytes,
                        complete,
                    }))
                }
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// Read a whole (small) object. `Ok(None)`: it does not exist.
    pub async fn get(&self, key: &str, max: usize) -> Result<Option<Bytes>, StoreError> {
        let url = GetObject::new(&self.target.bucket, self.creds(), key).sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut resp = self.send(self.http.get(url.as_str())).await?;
            match resp.status() {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => {
                    let (bytes, complete) = self.read_limited(&mut resp, max).await?;
                    if complete {
                        Ok(Some(bytes))
                    } else {
                        Err(StoreError::BadResponse(format!(
                            "object {key} is larger than {max} bytes"
                        )))
                    }
                }
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// List keys under `prefix`, in key order, after `start_after`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<Listing, StoreError> {
        let mut action = ListObjectsV2::new(&self.target.bucket, self.creds());
        action.with_prefix(prefix);
        action.with_max_keys(max_keys);
        if let Some(after) = start_after {
            action.with_start_after(after);
        }
        let url = action.sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut resp = self.send(self.http.get(url.as_str())).await?;
            let status = resp.status();
            if !status.is_success() {
                return Err(self.error_from(status, &mut resp).await);
            }
            let (body, complete) = self.read_limited(&mut resp, MAX_XML_BYTES).await?;
            if !complete {
                return Err(StoreError::BadResponse("listing larger than 4 MiB".into()));
            }
            let text = std::str::from_utf8(&body)
                .map_err(|_| StoreError::BadResponse("listing is not UTF-8".into()))?;
            let parsed = ListObjectsV2::parse_response(text).map_err(|e| {
                StoreError::BadResponse(format!("listing is not ListObjectsV2 XML: {e}"))
            })?;
            let truncated = parsed.next_continuation_token.is_some();
            let objects = parsed
                .contents
                .into_iter()
                .map(|c| ListedObject {
                    key: c.key,
                    size: c.size.unwrap_or(0),
                    last_modified: c.last_modified,
                    etag: c.etag.map(|e| strip_quotes(&e).to_owned()),
                })
                .collect();
            Ok(Listing { objects, truncated })
        })
        .await
    }

    /// Delete an object (absent objects are fine).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = DeleteObject::new(&self.target.bucket, self.creds(), key).sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut resp = self.send(self.http.delete(url.as_str())).await?;
            match resp.status() {
                s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// Write a small object (a record, a checkpoint, a marker).
    pub async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.put_object(key, body, content_type, None).await
    }

    /// Write an object that readers may cache as `cache_control` says (a thumbnail).
    pub async fn put_with_cache_control(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        cache_control: &str,
    ) -> Result<(), StoreError> {
        self.put_object(key, body, content_type, Some(cache_control))
            .await
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        cache_control: Option<&str>,
    ) -> Result<(), StoreError> {
        let url = PutObject::new(&self.target.bucket, self.creds(), key).sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut req = self
                .http
                .put(url.as_str())
                .insert_header(("content-type", content_type));
            if let Some(cc) = cache_control {
                req = req.insert_header(("cache-control", cc));
            }
            let mut resp = req
                .send_body(body)
                .await
                .map_err(|e| self.map_send_error(e))?;
            match resp.status() {
                s if s.is_success() => Ok(()),
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// Give `head`'s object the type `content_type` with a CopyObject onto itself, inside
    /// the store: only if it is still the version `head` describes
    /// (`x-amz-copy-source-if-match`), with every header and metadata field it keeps sent
    /// again (a copy that replaces metadata keeps nothing by itself) and `acl`. Returns the
    /// copy's ETag; `Ok(None)` when the object changed or went away meanwhile.
    #[tracing::instrument(level = "debug", skip(self, head))]
    pub async fn retype_in_place(
        &self,
        key: &str,
        head: &ObjectHead,
        content_type: &str,
        acl: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let mut action = PutObject::new(&self.target.bucket, self.creds(), key);
        let source = format!(
            "/{}/{}",
            self.target.bucket.name(),
            percent_encoding::utf8_percent_encode(key, COPY_SOURCE)
        );
        let mut headers = vec![
            ("x-amz-copy-source".to_owned(), source),
            (
                "x-amz-copy-source-if-match".to_owned(),
                format!("\"{}\"", head.etag),
            ),
            ("x-amz-metadata-directive".to_owned(), "REPLACE".to_owned()),
            ("content-type".to_owned(), content_type.to_owned()),
        ];
        headers.extend(head.kept.iter().cloned());
        headers.extend(
            head.metadata
                .iter()
                .map(|(name, value)| (format!("x-amz-meta-{name}"), value.clone())),
        );
        if let Some(acl) = acl {
            headers.push(("x-amz-acl".to_owned(), acl.to_owned()));
        }
        // Signed, every one: S3 refuses unsigned x-amz-* headers on a presigned request.
        for (name, value) in &headers {
            action.headers_mut().insert(name.clone(), value.clone());
        }
        let url = action.sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut req = self.http.put(url.as_str());
            for (name, value) in &headers {
                req = req.insert_header((name.as_str(), value.as_str()));
            }
            let mut resp = req.send().await.map_err(|e| self.map_send_error(e))?;
            match resp.status() {
                StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => {
                    let (body, _) = self.read_limited(&mut resp, 8192).await?;
                    let body = String::from_utf8_lossy(&body);
                    // S3 may answer 200 and put the error in the body.
                    if body.contains("<Error>") {
                        return Err(StoreError::from_status(500, body.as_bytes()));
                    }
                    let etag = xml_value(&body, "ETag")
                        .map(|etag| strip_quotes(&etag.replace("&quot;", "\"")).to_owned())
                        .filter(|e| !e.is_empty())
                        .ok_or_else(|| {
                            StoreError::BadResponse("a copy's answer has no ETag".into())
                        })?;
                    Ok(Some(etag))
                }
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// The parts of a multipart upload so far: `(part number, size)`, at most 10,000.
    /// `Ok(None)`: there is no such upload of `key`.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<(u32, u64)>>, StoreError> {
        let mut parts = Vec::new();
        let mut marker = None;
        // 10,000 parts at most, 1,000 a page.
        for _ in 0..10 {
            let mut action = ListParts::new(&self.target.bucket, self.creds(), key, upload_id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            let url = action.sign(REQUEST_URL_TTL);
            let page = self
                .bounded(async {
                    let mut resp = self.send(self.http.get(url.as_str())).await?;
                    match resp.status() {
                        StatusCode::NOT_FOUND => Ok(None),
                        s if s.is_success() => {
                            let (body, complete) =
                                self.read_limited(&mut resp, MAX_XML_BYTES).await?;
                            if !complete {
                                return Err(StoreError::BadResponse(
                                    "parts listing larger than 4 MiB".into(),
                                ));
                            }
                            Ok(Some(parse_parts(&String::from_utf8_lossy(&body))?))
                        }
                        s => Err(self.error_from(s, &mut resp).await),
                    }
                })
                .await?;
            let Some((listed, next)) = page else {
                return Ok(None);
            };
            parts.extend(listed);
            match next {
                Some(n) => marker = Some(n),
                None => return Ok(Some(parts)),
            }
        }
        Ok(Some(parts))
    }

    /// Abort a multipart upload (deleting its parts); an upload already gone is fine.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StoreError> {
        let url = AbortMultipartUpload::new(&self.target.bucket, self.creds(), key, upload_id)
            .sign(REQUEST_URL_TTL);
        self.bounded(async {
            let mut resp = self.send(self.http.delete(url.as_str())).await?;
            match resp.status() {
                s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
                s => Err(self.error_from(s, &mut resp).await),
            }
        })
        .await
    }

    /// A presigned GET URL for showing an image. The signing time is rounded down to five
    /// minutes so the URL (and the browser's cache of it) stays the same for a while; it is
    /// valid for at least ten minutes after it is handed out.
    pub fn presigned_get(&self, key: &str, response_content_type: Option<&str>) -> Url {
        presigned_get(&self.target, key, response_content_type)
    }

    /// Send any request (used by `signpost check` and `signpost cors`).
    pub async fn send_raw(
        &self,
        method: awc::http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(StatusCode, awc::http::header::HeaderMap, Bytes), StoreError> {
        self.bounded(async {
            let mut req = self.http.request(method, url);
            for (k, v) in headers {
                req = req.insert_header((*k, v.as_str()));
            }
            let mut resp = req
                .send_body(body)
                .await
                .map_err(|e| self.map_send_error(e))?;
            let (bytes, _) = self.read_limited(&mut resp, 64 * 1024).await?;
            Ok((resp.status(), resp.headers().clone(), bytes))
        })
        .await
    }
}

/// The text of the first `<name>…</name>` in `xml`.
fn xml_value<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    Some(rest.split_once(&format!("</{name}>"))?.0.trim())
}

/// Parts `(number, size)` and the marker of the next page, if any.
type PartsPage = (Vec<(u32, u64)>, Option<u16>);

/// A ListParts answer: each part's number and size, and where the next page starts. Read
/// field by field: stores differ in what else they send (s3s-fs 0.14 sends neither ETags nor
/// `IsTruncated`).
fn parse_parts(xml: &str) -> Result<PartsPage, StoreError> {
    let bad = |what: &str| StoreError::BadResponse(format!("parts listing: {what}"));
    let mut parts = Vec::new();
    for part in xml.split("<Part>").skip(1) {
        let number = xml_value(part, "PartNumber")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("a part without a number"))?;
        let size = xml_value(part, "Size")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("a part without a size"))?;
        parts.push((number, size));
    }
    let truncated = xml_value(xml, "IsTruncated") == Some("true");
    let next = if truncated {
        Some(
            xml_value(xml, "NextPartNumberMarker")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("truncated without a next marker"))?,
        )
    } else {
        None
    };
    Ok((parts, next))
}

pub fn presigned_get(target: &StoreTarget, key: &str, response_content_type: Option<&str>) -> Url {
    presigned_get_rounded(target, key, response_content_type, 300, 900)
}

/// A presigned GET signed at the hour (so the URL stays the same for an hour), valid for
/// at least an hour after it is handed out: for immutable objects such as thumbnails.
pub fn presigned_get_hourly(target: &StoreTarget, key: &str) -> Url {
    presigned_get_rounded(target, key, None, 3600, 7200)
}

/// Signed at the time rounded down to `step` seconds, valid `ttl` seconds from then.
fn presigned_get_rounded(
    target: &StoreTarget,
    key: &str,
    response_content_type: Option<&str>,
    step: i64,
    ttl: u64,
) -> Url {
    let now = jiff::Timestamp::now().as_second();
    let at = jiff::Timestamp::from_second(now - now.rem_euclid(step))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    let mut action = GetObject::new(&target.bucket, Some(&target.credentials), key);
    if let Some(ct) = response_content_type {
        action
            .query_mut()
            .insert("response-content-type", ct.to_owned());
    }
    action.sign_with_time(Duration::from_secs(ttl), &at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_listings_of_s3_and_s3s_fs_read_alike() {
        let aws = "<ListPartsResult><IsTruncated>true</IsTruncated><NextPartNumberMarker>2</NextPartNumberMarker>\
            <Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag><Size>5242880</Size></Part>\
            <Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag><Size>10</Size></Part></ListPartsResult>";
        assert_eq!(
            parse_parts(aws).unwrap(),
            (vec![(1, 5_242_880), (2, 10)], Some(2))
        );
        let s3s = "<ListPartsResult><Bucket>b</Bucket><Part><LastModified>x</LastModified>\
            <PartNumber>1</PartNumber><Size>7</Size></Part></ListPartsResult>";
        assert_eq!(parse_parts(s3s).unwrap(), (vec![(1, 7)], None));
        assert_eq!(parse_parts("<ListPartsResult/>").unwrap(), (vec![], None));
        assert!(parse_parts("<Part><PartNumber>x</PartNumber></Part>").is_err());
    }
}
