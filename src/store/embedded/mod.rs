//! The embedded store: s3s-fs served in-process on loopback, so signpost runs with zero
//! configuration. It checks POST policies and signatures itself (that is s3s's job), keeps
//! its objects in the data dir across restarts, answers CORS for the site's origin (and
//! `--cors-origins`) only,
//! refuses header fields it could not send back ([`guard`]), and holds under clients that
//! stall or flood it ([`Limits`]).

mod body;
mod cors;
mod credentials;
mod files;
mod guard;
mod locks;
pub mod names;
mod server;

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use s3s::auth::SimpleAuth;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;
use tokio::sync::{Semaphore, watch};
use url::Url;

pub use body::MAX_FRAME;
pub use credentials::{credentials_path, load_credentials, load_or_create_credentials};
pub use guard::is_media_type;

use crate::secret::Credentials;

/// Memory the uploads in flight may hold: s3s keeps a POSTed file in memory until it is
/// written, so at most `UPLOAD_MEMORY / max_bytes` (at least 2) upload bodies are read at once.
pub const UPLOAD_MEMORY: u64 = 64 * 1024 * 1024;

/// How much any client can take from the embedded store.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole request head must arrive within this; also how long an idle keep-alive
    /// connection stays open.
    pub header_timeout: Duration,
    /// The whole request, body and answer included.
    pub request_deadline: Duration,
    /// A body must bring at least `body_min_bytes` in every period this long.
    pub body_idle: Duration,
    pub body_min_bytes: usize,
    /// Open connections; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Uploads (POST and PUT bodies) read at once; more wait up to `upload_wait`, then get
    /// 503 SlowDown.
    pub max_uploads: usize,
    pub upload_wait: Duration,
    /// How long uploads in flight may take to finish once the store is told to stop
    /// (`--shutdown-grace-secs`: browsers upload here, not to the site).
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The defaults for uploads of at most `max_bytes`.
    pub fn for_max_bytes(max_bytes: u64) -> Self {
        let max_uploads = usize::try_from(UPLOAD_MEMORY / max_bytes.max(1))
            .unwrap_or(usize::MAX)
            .clamp(2, 64);
        Self {
            header_timeout: Duration::from_secs(10),
            request_deadline: Duration::from_secs(600),
            body_idle: Duration::from_secs(20),
            body_min_bytes: 1024,
            max_connections: 512,
            max_uploads,
            upload_wait: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the embedded store needs to start.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub bucket: String,
    pub credentials: Credentials,
    /// The origins allowed to upload from a script: the site's (`http://127.0.0.1:8080`)
    /// and `--cors-origins`.
    pub allowed_origins: Vec<String>,
    /// Largest file a POST may carry (s3s holds it in memory).
    pub max_bytes: u64,
    /// Lifetime of a signed form: the store's clock window (±15 minutes by default) is
    /// widened to it, so a SigV4 form is good for as long as its policy says.
    pub policy_ttl: Duration,
    pub limits: Limits,
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

impl EmbeddedStore {
    /// Bind, prepare the bucket and serve on a thread of its own (its own Tokio runtime, so
    /// it serves whatever runtime the caller uses).
    pub fn start(opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let root = store_root(&opts.data_dir);
        let bucket_dir = root.join(&opts.bucket);
        let data_err = |path: &Path| {
            let path = path.to_owned();
            move |source| EmbeddedError::Data { path, source }
        };
        // Every upload and signpost's own keys (the link key) are files under the root:
        // this user's alone, as the credentials are. s3s-fs writes them 0644, so the root's
        // mode is what keeps other local users out; one loosened by hand is tightened.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&bucket_dir)
            .map_err(data_err(&bucket_dir))?;
        fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).map_err(data_err(&root))?;
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

        let files =
            s3s_fs::FileSystem::new(&root).map_err(|e| EmbeddedError::Start(format!("{e:?}")))?;
        let service = {
            let mut b = S3ServiceBuilder::new(files::Store::new(files, root.clone()));
            b.set_auth(SimpleAuth::from_single(
                opts.credentials.access_key_id.clone(),
                opts.credentials.secret_access_key.expose(),
            ));
            b.set_access(guard::Guard);
            let mut config = S3Config::default();
            config.post_object_max_file_size = opts.max_bytes;
            config.form_max_parts = 64;
            config.form_max_field_size = 16 * 1024;
            // Checked against the bytes buffered before the file part: the fields plus at
            // most one frame of `MAX_FRAME` (the body is handed over in such frames).
            config.form_max_fields_size = 64 * 1024;
            config.xml_max_body_size = 1024 * 1024;
            let ttl =
                u32::try_from(opts.policy_ttl.as_secs().saturating_add(60)).unwrap_or(u32::MAX);
            config.presigned_url_max_skew_time_secs =
                config.presigned_url_max_skew_time_secs.max(ttl);
            b.set_config(Arc::new(StaticConfigProvider::new(Arc::new(config))));
            b.build()
        };
        let front = Arc::new(server::Front {
            service,
            cors: cors::Cors {
                origins: opts.allowed_origins.clone(),
            },
            max_bytes: opts.max_bytes,
            uploads: Arc::new(Semaphore::new(opts.limits.max_uploads)),
            limits: opts.limits.clone(),
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
                runtime.block_on(server::serve(listener, front, &mut stop));
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
