//! Building the application: bind, start the embedded store when configured so, resolve
//! the credentials and the store's address, and serve. `main` and the tests both use it.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_files::Files;
use actix_session::SessionMiddleware;
use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_web::body::MessageBody;
use actix_web::cookie::SameSite;
use actix_web::dev::{
    Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse, fn_service,
};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{Compress, DefaultHeaders, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use tokio::sync::Notify;
use url::Url;

use super::assets::{AssetUrls, AssetsError};
use super::auth::Auth;
use super::error::{Problem, respond_for_path};
use super::{
    State, api, assets, delete, fragment, gallery, health, index, links, middleware, sign_request,
    uploaded,
};
use crate::config::Settings;
use crate::store::embedded::EmbeddedStore;
use crate::store::{Backend, BackendError, S3Client, StoreTarget, Verifier, public_url};
use crate::upload::{Clock, human_bytes};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source} (set --bind to a free address)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Assets(#[from] AssetsError),
    #[error("{0}")]
    Exposed(String),
    #[error("{0}")]
    Config(String),
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
    let assets = AssetUrls::load(&settings.static_dir)?;
    let limits_text = format!(
        "{}, up to {}",
        presigner.limits.allowed_labels(),
        human_bytes(presigner.limits.max_bytes)
    );
    let accept = presigner.limits.accept();
    let verifier = Verifier::for_settings(&settings);
    Ok(State {
        assets,
        csp: content_security_policy(&backend.browser_target, &settings),
        auth: Auth::new(
            &settings.identity,
            &backend.credentials,
            settings.policy_ttl,
        ),
        sweep: Arc::new(Notify::new()),
        verifier,
        public_url,
        presigner,
        target: backend.target.clone(),
        browser_target: backend.browser_target.clone(),
        urls: backend.image_urls(&settings),
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

/// `/static/…`: the files of `--static-dir`, through actix-files (ETag, Last-Modified,
/// ranges, conditional GETs); anything else there is the site's own 404.
fn static_files(
    dir: std::path::PathBuf,
) -> actix_web::Scope<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/static")
        .wrap(Compress::default())
        .wrap(from_fn(assets::static_headers))
        .service(
            Files::new("", dir)
                .use_etag(true)
                .use_last_modified(true)
                .default_handler(fn_service(|req: ServiceRequest| async {
                    let (req, _) = req.into_parts();
                    let resp = respond_for_path(req.path(), &Problem::not_found());
                    Ok(ServiceResponse::new(req, resp))
                })),
        )
}

async fn no_favicon() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .finish()
}

/// The application: routes, extractor limits, security headers and request logging.
///
/// Compression wraps what is worth compressing (the page, the gallery, the static files),
/// not the fragment and the JSON answers: those are about 1.7 KB of mostly base64 and hex,
/// one flight either way, and gzipping them (off the workers) tripled their server CPU per
/// request under a browser's `Accept-Encoding`.
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
    let static_dir = state.settings.static_dir.clone();
    let headers = DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, state.csp.clone()))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add(("cross-origin-opener-policy", "same-origin"));
    // Upload links' sessions: a signed cookie, for the site only.
    let sessions =
        SessionMiddleware::builder(CookieSessionStore::default(), state.auth.cookie_key.clone())
            .cookie_name("signpost_link".to_owned())
            .cookie_secure(state.public_url.scheme() == "https")
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_content_security(CookieContentSecurity::Signed)
            .build();

    App::new()
        .app_data(state)
        .app_data(client)
        .app_data(api::json_config())
        .wrap(sessions)
        .wrap(headers)
        .wrap(from_fn(middleware::request_log))
        .service(
            web::resource("/")
                .wrap(Compress::default())
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
                .wrap(Compress::default())
                .route(web::get().to(gallery::gallery))
                .default_service(refuse_others("GET")),
        )
        .service(
            web::resource("/api/presign")
                .route(web::post().to(api::presign))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/api/sign-request")
                .route(web::post().to(sign_request::sign_request))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/api/uploads/confirm")
                .route(web::post().to(api::confirm))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/uploads/delete")
                .app_data(delete::form_config())
                .route(web::post().to(delete::delete_page))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/api/uploads/delete")
                .route(web::post().to(delete::delete_api))
                .default_service(refuse_others("POST")),
        )
        .service(
            web::resource("/l/{token}")
                .route(web::get().to(links::open))
                .default_service(refuse_others("GET")),
        )
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .route(web::head().to(health::healthz))
                .default_service(refuse_others("GET, HEAD")),
        )
        .service(static_files(static_dir))
        .route("/favicon.ico", web::get().to(no_favicon))
        .default_service(web::to(not_found))
}

/// Exposed without a way to tell users apart, signpost does not start (as Redis's protected
/// mode does): free bulk hosting for anyone who finds it is not a default.
fn refuse_unguarded(settings: &Settings) -> Result<(), StartupError> {
    let identity = &settings.identity;
    let Some(why) = &identity.exposed else {
        return Ok(());
    };
    let tokens = crate::identity::tokens::TokenStore::new(identity.tokens_file.clone());
    if identity.allow_anonymous || identity.auth_header.is_some() || tokens.any() {
        return Ok(());
    }
    Err(StartupError::Exposed(format!(
        "signpost is exposed ({why}) and nothing says who may upload, so it does not start. Choose one:\n\
         \x20 1. behind an authenticating proxy (oauth2-proxy, Authelia, Caddy…): --auth-header Remote-User --trusted-proxies 127.0.0.1/32;\n\
         \x20 2. API tokens for scripts and host applications: `signpost token add NAME` (upload links, `signpost link --owner NAME`, work with either);\n\
         \x20 3. anyone may upload: --allow-anonymous (each address may sign 30 new files a minute, --sign-rate-per-minute).\n\
         Or keep it on this machine: --bind 127.0.0.1:8080 and a loopback --public-url."
    )))
}

/// A start that tells the truth: an external store that does not answer gets one clear
/// warning at start. Serving goes on (signing needs no store), and `signpost check` says why.
async fn probe_store(target: Arc<StoreTarget>, prefix: String) {
    let client = S3Client::new(target.clone());
    if let Err(e) = client.list(&prefix, None, 1).await {
        tracing::warn!(
            endpoint = %target.endpoint,
            error = %e,
            "the storage service does not answer: uploads, confirmations and the gallery fail until it does; run `signpost check` to see why"
        );
    }
}

/// A built application, ready to run.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<State>,
    embedded: Option<EmbeddedStore>,
    background: crate::sweep::Background,
}

impl Application {
    /// Bind the web server, start the embedded store if configured, and prepare to serve.
    /// Must be called from within an actix (Tokio) runtime.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::System)
    }

    pub fn build_with_clock(settings: Settings, clock: Clock) -> Result<Self, StartupError> {
        refuse_unguarded(&settings)?;
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
            // A streamed body (actix-files reads a file off the workers) is written after its
            // headers: without TCP_NODELAY, Nagle's algorithm holds it until the client's
            // delayed ACK, 40 ms later, on every keep-alive request.
            .on_connect(|conn, _| {
                if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                    let _ = tcp.set_nodelay(true);
                }
            })
            .listen(listener)
            .map_err(|source| StartupError::Bind { addr, source })?
            .shutdown_timeout(grace.as_secs())
            .client_request_timeout(Duration::from_secs(10))
            .run();

        let mut background = crate::sweep::spawn(
            &state.settings,
            state.target.clone(),
            state.urls.clone(),
            state.verifier.clone(),
            state.clock,
            state.sweep.clone(),
        );
        if !state.settings.is_embedded() {
            background.push(actix_web::rt::spawn(probe_store(
                state.target.clone(),
                state.settings.prefix.as_str().to_owned(),
            )));
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
        self.background.stop().await;
        if let Some(store) = self.embedded {
            // Joining the store's thread blocks: keep it off the async executor.
            let _ = actix_web::rt::task::spawn_blocking(move || store.stop()).await;
        }
        tracing::info!("signpost stopped");
        result
    }
}
