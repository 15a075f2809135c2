//! Where the store is and how to sign for it, resolved once at start: credentials (generated
//! for the embedded store on its first start), the embedded store itself, the target every S3
//! request goes to, and the presigner of upload forms.

use std::net::SocketAddr;
use std::sync::Arc;

use url::Url;

use super::StoreTarget;
use super::embedded::{
    EmbeddedError, EmbeddedOptions, EmbeddedStore, Limits as EmbeddedLimits, credentials_path,
    endpoint_url, load_credentials, load_or_create_credentials,
};
use crate::config::{Settings, StoreSettings};
use crate::policy::Signer;
use crate::secret::Credentials;
use crate::upload::Presigner;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("{0}")]
    Config(String),
}

/// What the store and the signer need, resolved once: credentials (generated for the
/// embedded store on first start), the embedded store itself, and the target.
pub struct Backend {
    pub credentials: Credentials,
    /// Where signpost's own S3 requests go.
    pub target: Arc<StoreTarget>,
    /// Where browsers reach the bucket (form actions, image URLs): the same, unless the
    /// embedded store sits behind a TLS proxy (`--embedded-s3-public-url`).
    pub browser_target: Arc<StoreTarget>,
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
    /// Where browsers and event receivers fetch images.
    pub fn image_urls(&self, settings: &Settings) -> super::ImageUrls {
        super::ImageUrls::new(
            self.browser_target.clone(),
            settings.public_base_url.clone(),
        )
    }

    fn new(
        settings: &Settings,
        endpoint: Option<&Url>,
        credentials: Credentials,
        embedded: Option<EmbeddedStore>,
    ) -> Result<Self, BackendError> {
        let target = Arc::new(
            StoreTarget::new(settings, endpoint, &credentials).map_err(BackendError::Config)?,
        );
        let browser_target = match (&settings.store, &settings.embedded_public_url) {
            (StoreSettings::Embedded { .. }, Some(public)) => Arc::new(
                StoreTarget::new(settings, Some(public), &credentials)
                    .map_err(BackendError::Config)?,
            ),
            _ => target.clone(),
        };
        Ok(Self {
            credentials,
            target,
            browser_target,
            embedded,
        })
    }

    fn external(settings: &Settings) -> Result<Self, BackendError> {
        let credentials = settings
            .credentials
            .clone()
            .ok_or_else(|| BackendError::Config("no credentials for the bucket".into()))?;
        let endpoint = match &settings.store {
            StoreSettings::Endpoint { url } => Some(url),
            _ => None,
        };
        Self::new(settings, endpoint, credentials, None)
    }

    /// Resolve the store and start the embedded one when configured so (its credentials
    /// are generated on its first start). `public_url`: the site's origin, for its CORS.
    pub fn start(settings: &Settings, public_url: &Url) -> Result<Self, BackendError> {
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
            allowed_origins: std::iter::once(public_url.origin().ascii_serialization())
                .chain(settings.cors_origins.iter().cloned())
                .collect(),
            max_bytes: settings.limits.max_bytes,
            policy_ttl: settings.policy_ttl,
            limits: EmbeddedLimits {
                shutdown_grace: settings.shutdown_grace,
                ..EmbeddedLimits::for_max_bytes(settings.limits.max_bytes)
            },
        })?;
        let endpoint = reachable_endpoint(store.addr(), public_url);
        Self::new(settings, Some(&endpoint), credentials, Some(store))
    }

    /// Like [`Backend::start`], for subcommands that talk to an already running store: it
    /// never starts the embedded one, and never creates its credentials (keys nobody
    /// serves would only make every signature fail).
    pub fn connect(settings: &Settings, public_url: &Url) -> Result<Self, BackendError> {
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
    ) -> Result<Presigner, BackendError> {
        let redirect_url = public_url
            .join("/uploaded")
            .map_err(|e| BackendError::Config(format!("cannot build the redirect URL: {e}")))?;
        Ok(Presigner {
            signer: Signer::new(
                settings.signature,
                self.credentials.clone(),
                settings.region.clone(),
            ),
            bucket: settings.bucket.clone(),
            form_url: self.browser_target.form_url(),
            redirect_url: redirect_url.into(),
            prefix: settings.prefix.clone(),
            limits: settings.limits.clone(),
            ttl: settings.policy_ttl,
            acl: settings.acl.clone(),
        })
    }
}

/// The site's public origin: `--public-url`, or the bound address.
pub fn public_url(settings: &Settings, bound: SocketAddr) -> Result<Url, BackendError> {
    if let Some(u) = &settings.public_url {
        return Ok(u.clone());
    }
    if bound.ip().is_unspecified() {
        return Err(BackendError::Config(format!(
            "--bind {bound} listens on every address, so signpost cannot tell which one browsers use: set --public-url (e.g. http://uploads.example.com)"
        )));
    }
    Ok(endpoint_url(bound))
}
