//! The embedded store: s3s-fs served in-process on loopback, so signpost runs with zero
//! configuration. It checks POST policies and signatures itself (that is s3s's job), keeps
//! its objects in the data dir across restarts, and answers CORS for the site's origin only.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::{S3Service, S3ServiceBuilder};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use url::Url;

use crate::secret::{Credentials, Secret};

/// What the embedded store needs to start.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub bucket: String,
    pub credentials: Credentials,
    /// The only origin allowed to POST from a script (the site's), e.g. `http://127.0.0.1:8080`.
    pub allowed_origin: Option<String>,
    /// Largest file a POST may carry (s3s holds it in memory).
    pub max_bytes: u64,
    /// Lifetime of a signed form: the store's clock window (±15 minutes by default) is
    /// widened to it, so a SigV4 form is good for as long as its policy says.
    pub policy_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "cannot listen on {addr} for the embedded store: {source} (set --embedded-s3-bind to a free address)"
    )]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot prepare the embedded store's data under {}: {source}", .path.display())]
    Data { path: PathBuf, source: io::Error },
    #[error("cannot start the embedded store: {0}")]
    Start(String),
    #[error(
        "the embedded store has no credentials in {}: run this with the same --data-dir as `signpost serve` (which creates them on its first start)", .path.display()
    )]
    NoCredentials { path: PathBuf },
}

/// A running embedded store. Dropping it asks it to stop; [`EmbeddedStore::stop`] also
/// waits until it has.
pub struct EmbeddedStore {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Where s3s-fs keeps its files, under the data dir.
pub fn store_root(data_dir: &Path) -> PathBuf {
    data_dir.join("s3")
}

#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    access_key_id: String,
    secret_access_key: String,
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
        .collect()
}

/// Where the embedded store's generated credentials are kept.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.json")
}

/// The embedded store's credentials, if it ever ran with this data dir.
pub fn load_credentials(data_dir: &Path) -> Result<Option<Credentials>, EmbeddedError> {
    let path = credentials_path(data_dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(EmbeddedError::Data { path, source }),
    };
    // Only the position of a mistake: serde's message can quote the values, and one of
    // them is the secret.
    let stored: StoredCredentials = serde_json::from_slice(&bytes).map_err(|e| {
        let msg = format!(
            "not the credentials JSON signpost writes (line {}, column {}): remove the file to generate new credentials",
            e.line(),
            e.column()
        );
        EmbeddedError::Data {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, msg),
        }
    })?;
    // Tighten the mode if someone loosened it.
    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
    Ok(Some(Credentials {
        access_key_id: stored.access_key_id,
        secret_access_key: Secret::new(stored.secret_access_key),
        session_token: None,
    }))
}

/// The embedded store's credentials: read from `DATA_DIR/credentials.json`, or generated on
/// first start and written there with mode 0600.
pub fn load_or_create_credentials(data_dir: &Path) -> Result<Credentials, EmbeddedError> {
    if let Some(existing) = load_credentials(data_dir)? {
        return Ok(existing);
    }
    let path = credentials_path(data_dir);
    let data_err = |source| EmbeddedError::Data {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(data_dir).map_err(|source| EmbeddedError::Data {
        path: data_dir.to_owned(),
        source,
    })?;
    let stored = StoredCredentials {
        access_key_id: format!(
            "SP{}",
            random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        ),
        secret_access_key: random_string(
            40,
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        ),
    };
    let json = serde_json::to_vec_pretty(&stored)
        .map_err(|e| data_err(io::Error::other(e.to_string())))?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(data_err)?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(data_err)?;
    Ok(Credentials {
        access_key_id: stored.access_key_id,
        secret_access_key: Secret::new(stored.secret_access_key),
        session_token: None,
    })
}

impl EmbeddedStore {
    /// Bind, prepare the bucket and serve on a thread of its own (its own Tokio runtime, so
    /// it serves whatever runtime the caller uses).
    pub fn start(opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let root = store_root(&opts.data_dir);
        let bucket_dir = root.join(&opts.bucket);
        fs::create_dir_all(&bucket_dir).map_err(|source| EmbeddedError::Data {
            path: bucket_dir.clone(),
            source,
        })?;
        let listener = StdListener::bind(opts.bind).map_err(|source| EmbeddedError::Bind {
            addr: opts.bind,
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| EmbeddedError::Bind {
                addr: opts.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmbeddedError::Bind {
                addr: opts.bind,
                source,
            })?;

        let fs =
            s3s_fs::FileSystem::new(&root).map_err(|e| EmbeddedError::Start(format!("{e:?}")))?;
        let service = {
            let mut b = S3ServiceBuilder::new(fs);
            b.set_auth(SimpleAuth::from_single(
                opts.credentials.access_key_id.clone(),
                opts.credentials.secret_access_key.expose(),
            ));
            let mut config = S3Config::default();
            config.post_object_max_file_size = opts.max_bytes;
            config.form_max_parts = 64;
            config.form_max_field_size = 16 * 1024;
            config.form_max_fields_size = 64 * 1024;
            config.xml_max_body_size = 1024 * 1024;
            let ttl =
                u32::try_from(opts.policy_ttl.as_secs().saturating_add(60)).unwrap_or(u32::MAX);
            config.presigned_url_max_skew_time_secs =
                config.presigned_url_max_skew_time_secs.max(ttl);
            b.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
            b.build()
        };
        let cors = Arc::new(Cors {
            origin: opts.allowed_origin.clone(),
        });

        let (shutdown, mut stop) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("embedded-s3".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("embedded-s3-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "the embedded store cannot start its runtime");
                        return;
                    }
                };
                runtime.block_on(serve(listener, service, cors, &mut stop));
            })
            .map_err(|e| EmbeddedError::Start(format!("{e:?}")))?;

        Ok(Self {
            addr,
            shutdown,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the endpoint to sign for.
    pub fn endpoint(&self) -> Url {
        endpoint_url(self.addr)
    }

    /// Stop accepting, let in-flight requests finish (up to a few seconds), then return.
    pub fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// `http://ADDR` for an address (IPv6 in brackets).
pub fn endpoint_url(addr: SocketAddr) -> Url {
    // A socket address always makes a valid http URL.
    Url::parse(&format!("http://{addr}")).expect("a socket address is a valid URL host")
}

async fn serve(
    listener: StdListener,
    service: S3Service,
    cors: Arc<Cors>,
    stop: &mut watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the embedded store cannot listen");
            return;
        }
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let socket = tokio::select! {
            res = listener.accept() => match res {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(error = %e, "embedded store: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let service = service.clone();
        let cors = cors.clone();
        let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
            let service = service.clone();
            let cors = cors.clone();
            async move { cors.handle(req, &service).await }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("embedded store: in-flight requests did not finish within 5 s");
        }
    }
}

/// CORS for browser scripts: preflights and responses for the site's origin only.
struct Cors {
    origin: Option<String>,
}

const ALLOWED_METHODS: &str = "POST, GET, HEAD";
const EXPOSED_HEADERS: &str = "ETag, Location, x-amz-request-id";

impl Cors {
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.origin
            .as_deref()
            .is_some_and(|o| origin.as_bytes() == o.as_bytes())
    }

    async fn handle(
        &self,
        req: Request<Incoming>,
        service: &S3Service,
    ) -> Result<Response<s3s::Body>, s3s::HttpError> {
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        let is_preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        if is_preflight {
            return Ok(self.preflight(&req, origin.as_ref()));
        }
        let mut resp = service.call(req.map(s3s::Body::from)).await?;
        if let Some(origin) = origin.filter(|o| self.allows(o)) {
            let h = resp.headers_mut();
            h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
            h.append(http::header::VARY, HeaderValue::from_static("Origin"));
        }
        Ok(resp)
    }

    fn preflight(
        &self,
        req: &Request<Incoming>,
        origin: Option<&HeaderValue>,
    ) -> Response<s3s::Body> {
        let method_ok = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|m| matches!(m.as_bytes(), b"POST" | b"GET" | b"HEAD"));
        let mut resp = Response::new(s3s::Body::empty());
        resp.headers_mut()
            .insert(http::header::VARY, HeaderValue::from_static("Origin"));
        match origin {
            Some(origin) if self.allows(origin) && method_ok => {
                *resp.status_mut() = StatusCode::OK;
                let h = resp.headers_mut();
                h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(
                    http::header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOWED_METHODS),
                );
                if let Some(asked) = req
                    .headers()
                    .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
                {
                    h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
                h.insert(
                    http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSED_HEADERS),
                );
                h.insert(
                    http::header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
            }
            _ => {
                // No Access-Control-Allow-Origin: the browser refuses the request.
                *resp.status_mut() = StatusCode::FORBIDDEN;
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_credentials(dir.path()).unwrap(), None);
        let made = load_or_create_credentials(dir.path()).unwrap();
        let mode = fs::metadata(credentials_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_credentials(dir.path()).unwrap(), Some(made.clone()));
        assert_eq!(load_or_create_credentials(dir.path()).unwrap(), made);
    }

    #[test]
    fn a_damaged_file_is_reported_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            credentials_path(dir.path()),
            // serde_json quotes a value of the wrong type in its message.
            br#"{"access_key_id": "AK", "secret_access_key": 98765432109876}"#,
        )
        .unwrap();
        let e = load_credentials(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(!e.contains("98765432109876"), "{e}");
    }
}
