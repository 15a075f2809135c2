//! Building the application: bind, start the embedded store when configured so, resolve
//! the credentials and the store's address, and serve. `main` and the tests both use it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::sync::Notify;
use url::Url;

use super::error::{Problem, respond_for_path};
use super::ratelimit::RateLimiter;
use super::{State, api, assets, fragment, gallery, health, index, middleware, uploaded};
use crate::config::{Settings, StoreSettings};
use crate::policy::Signer;
use crate::secret::Credentials;
use crate::store::embedded::{
    EmbeddedError, EmbeddedOptions, EmbeddedStore, credentials_path, endpoint_url,
    load_credentials, load_or_create_credentials,
};
use crate::store::{S3Client, StoreTarget};
use crate::upload::{Clock, Presigner, human_bytes};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source} (set --bind to a free address)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("{0}")]
    Config(String),
}

/// What the store and the signer need, resolved once: credentials (generated for the
/// embedded store on first start), the embedded store itself, and the target.
pub struct Backend {
    pub credentials: Credentials,
    pub target: Arc<StoreTarget>,
    pub embedded: Option<EmbeddedStore>,
}

/// The embedded store's endpoint as browsers reach it: an unspecified bind address
/// (0.0.0.0) is reached through the public URL's host.
fn reachable_endpoint(addr: SocketAddr, public_url: &Url) -> Url {
    let mut url = endpoint_url(addr);
    if addr.ip().is_unspecified()
        && let Some(host) = public_url.host_str()
    {
        let _ = url.set_host(Some(host));
    }
    url
}

impl Backend {
    fn new(
        settings: &Settings,
        endpoint: Option<&Url>,
        credentials: Credentials,
        embedded: Option<EmbeddedStore>,
    ) -> Result<Self, StartupError> {
        let target =
            StoreTarget::new(settings, endpoint, &credentials).map_err(StartupError::Config)?;
        Ok(Self {
            credentials,
            target: Arc::new(target),
            embedded,
        })
    }

    fn external(settings: &Settings) -> Result<Self, StartupError> {
        let credentials = settings
            .credentials
            .clone()
            .ok_or_else(|| StartupError::Config("no credentials for the bucket".into()))?;
        let endpoint = match &settings.store {
            StoreSettings::Endpoint { url } => Some(url),
            _ => None,
        };
        Self::new(settings, endpoint, credentials, None)
    }

    /// Resolve the store and start the embedded one when configured so (its credentials
    /// are generated on its first start). `public_url`: the site's origin, for its CORS.
    pub fn start(settings: &Settings, public_url: &Url) -> Result<Self, StartupError> {
        let StoreSettings::Embedded { bind } = &settings.store else {
            return Self::external(settings);
        };
        let credentials = match &settings.credentials {
            Some(c) => c.clone(),
            None => load_or_create_credentials(&settings.data_dir)?,
        };
        let store = EmbeddedStore::start(EmbeddedOptions {
            bind: *bind,
            data_dir: settings.data_dir.clone(),
            bucket: settings.bucket.clone(),
            credentials: credentials.clone(),
            allowed_origin: Some(public_url.origin().ascii_serialization()),
            max_bytes: settings.limits.max_bytes,
            policy_ttl: settings.policy_ttl,
        })?;
        let endpoint = reachable_endpoint(store.addr(), public_url);
        Self::new(settings, Some(&endpoint), credentials, Some(store))
    }

    /// Like [`Backend::start`], for subcommands that talk to an already running store: it
    /// never starts the embedded one, and never creates its credentials (keys nobody
    /// serves would only make every signature fail).
    pub fn connect(settings: &Settings, public_url: &Url) -> Result<Self, StartupError> {
        let StoreSettings::Embedded { bind } = &settings.store else {
            return Self::external(settings);
        };
        let credentials = match &settings.credentials {
            Some(c) => c.clone(),
            None => load_credentials(&settings.data_dir)?.ok_or_else(|| {
                EmbeddedError::NoCredentials {
                    path: credentials_path(&settings.data_dir),
                }
            })?,
        };
        let endpoint = reachable_endpoint(*bind, public_url);
        Self::new(settings, Some(&endpoint), credentials, None)
    }

    pub fn presigner(
        &self,
        settings: &Settings,
        public_url: &Url,
    ) -> Result<Presigner, StartupError> {
        let redirect_url = public_url
            .join("/uploaded")
            .map_err(|e| StartupError::Config(format!("cannot build the redirect URL: {e}")))?;
        Ok(Presigner {
            signer: Signer::new(
                settings.signature,
                self.credentials.clone(),
                settings.region.clone(),
            ),
            bucket: settings.bucket.clone(),
            form_url: self.target.form_url(),
            redirect_url: redirect_url.into(),
            prefix: settings.prefix.clone(),
            limits: settings.limits.clone(),
            ttl: settings.policy_ttl,
            acl: settings.acl.clone(),
        })
    }
}

/// The site's public origin: `--public-url`, or the bound address.
pub fn public_url(settings: &Settings, bound: SocketAddr) -> Result<Url, StartupError> {
    if let Some(u) = &settings.public_url {
        return Ok(u.clone());
    }
    if bound.ip().is_unspecified() {
        return Err(StartupError::Config(format!(
            "--bind {bound} listens on every address, so signpost cannot tell which one browsers use: set --public-url (e.g. http://uploads.example.com)"
        )));
    }
    Ok(endpoint_url(bound))
}

fn content_security_policy(target: &StoreTarget, settings: &Settings) -> HeaderValue {
    let store = target.origin();
    let public = settings
        .public_base_url
        .as_ref()
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: {store}{public}; \
         connect-src 'self' {store}; form-action 'self' {store}; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// The shared state, from settings and a started backend.
pub fn state(
    settings: Settings,
    public_url: Url,
    backend: &Backend,
    clock: Clock,
) -> Result<State, StartupError> {
    let presigner = backend.presigner(&settings, &public_url)?;
    // Fingerprint and compress the static assets now, not in the first request.
    let _ = super::assets::urls();
    let limits_text = format!(
        "{}, up to {}",
        presigner.limits.allowed_labels(),
        human_bytes(presigner.limits.max_bytes)
    );
    let accept = presigner.limits.accept();
    Ok(State {
        csp: content_security_policy(&backend.target, &settings),
        rate_limiter: settings.sign_rate_per_minute.map(RateLimiter::new),
        sweep: settings.notify.as_ref().map(|_| Arc::new(Notify::new())),
        public_url,
        presigner,
        target: backend.target.clone(),
        clock,
        limits_text,
        accept,
        settings,
    })
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    respond_for_path(req.path(), &Problem::not_found())
}

/// A resource's answer to any other method: 405, naming the methods it takes.
fn refuse_others(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        let mut resp = respond_for_path(req.path(), &Problem::method_not_allowed());
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        resp
    })
}

fn static_routes(cfg: &mut web::ServiceConfig) {
    for (path, asset, immutable) in assets::routes() {
        cfg.service(
            web::resource(path)
                .route(web::get().to(move |req| assets::serve(req, asset, immutable)))
                .route(web::head().to(move |req| assets::serve(req, asset, immutable)))
                .default_service(refuse_others("GET, HEAD")),
        );
    }
}

async fn no_favicon() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .finish()
}

/// The application: routes, extractor limits, security headers and request logging.
pub fn app(
    state: web::Data<State>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // One S3 client per worker: awc's client is not Send.
    let client = web::Data::new(S3Client::new(state.target.clone()));
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, state.csp.clone()))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("cross-origin-opener-policy", "same-origin"));

    App::new()
        .app_data(state)
        .app_data(client)
        .wrap(headers)
        .wrap(from_fn(middleware::request_log))
        .service(
            web::resource("/")
                .route(web::get().to(index::index))
                .route(web::head().to(index::index))
                .default_service(refuse_others("GET, HEAD")),
        )
        .service(
            web::resource("/fragments/image-meta")
                .route(web::get().to(fragment::image_meta))
                .default_service(refuse_others("GET")),
        )
        .service(
            web::resource("/uploaded")
                .route(web::get().to(uploaded::uploaded))
                .default_service(refuse_others("GET")),
        )
        .service(
            web::resource("/gallery")
                .route(web::get().to(gallery::gallery))
                .default_service(refuse_others("GET")),
        )
        .service(
            web::resource("/api/presign")
                .route(web::post().to(api::presign))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/api/uploads/confirm")
                .route(web::post().to(api::confirm))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .route(web::head().to(health::healthz))
                .default_service(refuse_others("GET, HEAD")),
        )
        .configure(static_routes)
        .route("/favicon.ico", web::get().to(no_favicon))
        .default_service(web::to(not_found))
}

/// A built application, ready to run.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<State>,
    embedded: Option<EmbeddedStore>,
    background: Vec<actix_web::rt::task::JoinHandle<()>>,
}

impl Application {
    /// Bind the web server, start the embedded store if configured, and prepare to serve.
    /// Must be called from within an actix (Tokio) runtime.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::System)
    }

    pub fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let public_url = public_url(&settings, addr)?;
        let mut backend = Backend::start(&settings, &public_url)?;
        let grace = settings.shutdown_grace;
        let state = web::Data::new(state(settings, public_url, &backend, clock)?);

        let factory_state = state.clone();
        let server = HttpServer::new(move || app(factory_state.clone()))
            .listen(listener)
            .map_err(|source| StartupError::Bind { addr, source })?
            .shutdown_timeout(grace.as_secs())
            .client_request_timeout(Duration::from_secs(10))
            .run();

        let mut background = Vec::new();
        if let Some(task) = crate::notify::spawn(&state) {
            background.push(task);
        }
        Ok(Self {
            server,
            addr,
            state,
            embedded: backend.embedded.take(),
            background,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's origin (`http://127.0.0.1:PORT`).
    pub fn public_url(&self) -> &Url {
        &self.state.public_url
    }

    /// The embedded store's address, when it runs.
    pub fn embedded_addr(&self) -> Option<SocketAddr> {
        self.embedded.as_ref().map(EmbeddedStore::addr)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until stopped (Ctrl-C, SIGTERM, or the handle): in-flight requests get the
    /// grace period, then the embedded store stops too.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        for task in self.background {
            task.abort();
        }
        if let Some(store) = self.embedded {
            // Joining the store's thread blocks: keep it off the async executor.
            let _ = actix_web::rt::task::spawn_blocking(move || store.stop()).await;
        }
        tracing::info!("signpost stopped");
        result
    }
}
