//! The typed, validated configuration: one [`Settings`], made once at start from the raw
//! [`Config`], one validator per section. Every mistake is reported with what to do about it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::cli::{CheckpointArg, Config, GalleryArg, LogFormat, SignatureArg};
use super::defaults::DEFAULTS;
use crate::identity::client::TrustedProxies;
use crate::imaging::DecodeLimits;
use crate::policy::Version;
use crate::secret::{Credentials, Secret};
use crate::upload::{ImageType, KeyPrefix, Limits, MAX_SAFE_NAME, MIN_SAFE_NAME};

/// Where the objects live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// s3s-fs in-process, on a loopback address by default.
    Embedded { bind: SocketAddr },
    /// An S3-compatible endpoint, path-style (Garage, MinIO, Ceph, …).
    Endpoint { url: Url },
    /// AWS S3 itself, regional virtual-hosted URLs.
    Aws,
}

/// Who may use the site, and how they are told apart.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// The proxy's user header, lowercase.
    pub auth_header: Option<String>,
    pub trusted_proxies: TrustedProxies,
    /// Requests with no identity are served (as "anonymous").
    pub allow_anonymous: bool,
    pub tokens_file: PathBuf,
    pub admins: Vec<String>,
    /// `--gallery own`: each user sees their own uploads.
    pub gallery_own: bool,
    /// New files signed a minute per identity (anonymous: per address).
    pub sign_rate_per_minute: Option<u32>,
    pub quota_bytes_per_day: Option<u64>,
    pub link_key: Option<Secret>,
    /// Why signpost is reachable from beyond this machine, if it is.
    pub exposed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub url: Url,
    pub secret: Secret,
}

/// The validated configuration. `Debug` is safe to log: secrets print redacted.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    /// `None`: derived from the bound address at start.
    pub public_url: Option<Url>,
    pub data_dir: PathBuf,
    pub store: StoreSettings,
    pub bucket: String,
    pub region: String,
    /// `None` for the embedded store without environment credentials: generated on first
    /// start and kept in the data dir.
    pub credentials: Option<Credentials>,
    pub signature: Version,
    pub prefix: KeyPrefix,
    /// Where thumbnails go: outside `prefix` and `.signpost/`.
    pub thumb_prefix: KeyPrefix,
    pub limits: Limits,
    pub policy_ttl: Duration,
    /// How long a multipart upload may take: its parts and completion are signed that long
    /// after its key, and the sweep looks back that far.
    pub multipart_ttl: Duration,
    pub acl: Option<String>,
    /// What confirmation decodes, and the pixel limit.
    pub decode: DecodeLimits,
    pub max_decode_bytes: u64,
    pub public_base_url: Option<Url>,
    pub s3_connect_timeout: Duration,
    pub s3_timeout: Duration,
    pub identity: IdentitySettings,
    /// The embedded store's URL as browsers reach it (behind a TLS proxy).
    pub embedded_public_url: Option<Url>,
    /// Origins besides the site's that may upload from their pages' scripts (CORS).
    pub cors_origins: Vec<String>,
    pub notify: Option<NotifySettings>,
    /// How often the background sweep confirms new uploads (and delivers their events).
    pub sweep_interval: Duration,
    /// Where the sweep keeps its checkpoint.
    pub checkpoint: CheckpointArg,
    /// How long an event may keep failing before it is parked under
    /// `.signpost/notify/dead-letter/`.
    pub dead_letter_after: Duration,
    /// This instance's name in `.signpost/instances/` (with the bucket checkpoint, instances
    /// share the events by it): `--instance-id`, or random per process.
    pub instance_id: String,
    /// An instance whose heartbeat is older than this is taken for dead.
    pub instance_ttl: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    /// Checked at start: the folder exists and holds the page's script and style sheet.
    pub static_dir: PathBuf,
}

/// A configuration mistake, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn non_empty_secret(v: Option<Secret>) -> Option<Secret> {
    v.map(|s| Secret::new(s.expose().trim()))
        .filter(|s| !s.expose().is_empty())
}

fn parse_http_url(what: &str, flag: &str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw)
        .map_err(|e| ConfigError(format!("{flag}: {what} {raw:?} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return err(format!(
            "{flag}: {what} must start with http:// or https:// (got {raw:?})"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return err(format!("{flag}: {what} {raw:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return err(format!(
            "{flag}: {what} must not have a query or a fragment (got {raw:?})"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return err(format!(
            "{flag}: {what} must not carry a user name or password"
        ));
    }
    Ok(url)
}

fn validate_bucket(name: &str) -> Result<(), ConfigError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ok_ends = name
        .bytes()
        .next()
        .zip(name.bytes().last())
        .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
    if !(3..=63).contains(&name.len()) || !ok_chars || !ok_ends || name.contains("..") {
        return err(format!(
            "--s3-bucket: {name:?} is not a valid bucket name (3 to 63 lowercase letters, digits, `.` and `-`)"
        ));
    }
    Ok(())
}

fn validate_region(region: &str) -> Result<(), ConfigError> {
    if region.is_empty()
        || region.len() > 32
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return err(format!(
            "--s3-region: {region:?} is not a region name (e.g. eu-west-1)"
        ));
    }
    Ok(())
}

/// The store section: where the bucket is, and the credentials for it.
struct Store {
    store: StoreSettings,
    bucket: String,
    region: String,
    credentials: Option<Credentials>,
}

fn credentials(c: &Config) -> Result<Option<Credentials>, ConfigError> {
    let access = non_empty(c.access_key_id.clone());
    let secret = non_empty_secret(c.secret_access_key.clone());
    let token = non_empty_secret(c.session_token.clone());
    match (access, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Some(Credentials {
            access_key_id,
            secret_access_key,
            session_token: token,
        })),
        (Some(_), None) => {
            err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both")
        }
        (None, Some(_)) => {
            err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both")
        }
        (None, None) => Ok(None),
    }
}

fn store(
    c: &Config,
    env_endpoint: Option<String>,
    env_region: Option<String>,
) -> Result<Store, ConfigError> {
    let endpoint = non_empty(c.s3_endpoint.clone()).or_else(|| non_empty(env_endpoint));
    let bucket = non_empty(c.s3_bucket.clone());
    let region = non_empty(c.s3_region.clone()).or_else(|| non_empty(env_region));
    let credentials = credentials(c)?;
    let default_region = || DEFAULTS.region.to_owned();

    let (store, bucket, region) = match (endpoint, bucket) {
        (None, None) => {
            if c.embedded_s3_bind == c.bind && c.bind.port() != 0 {
                return err(format!(
                    "--embedded-s3-bind and --bind are both {}: give the embedded store its own port",
                    c.bind
                ));
            }
            (
                StoreSettings::Embedded {
                    bind: c.embedded_s3_bind,
                },
                DEFAULTS.embedded_bucket.to_owned(),
                region.unwrap_or_else(default_region),
            )
        }
        (Some(_), None) => {
            return err(
                "--s3-endpoint is set but --s3-bucket (SIGNPOST_S3_BUCKET) is not: name the bucket",
            );
        }
        (Some(raw), Some(bucket)) => {
            let url = parse_http_url("the endpoint", "--s3-endpoint", &raw)?;
            validate_bucket(&bucket)?;
            (
                StoreSettings::Endpoint { url },
                bucket,
                region.unwrap_or_else(default_region),
            )
        }
        (None, Some(bucket)) => {
            validate_bucket(&bucket)?;
            let Some(region) = region else {
                return err(
                    "--s3-bucket is set without --s3-endpoint (AWS S3), so the region is needed: set --s3-region or AWS_REGION",
                );
            };
            (StoreSettings::Aws, bucket, region)
        }
    };
    validate_region(&region)?;
    if !matches!(store, StoreSettings::Embedded { .. }) && credentials.is_none() {
        return err(format!(
            "bucket {bucket:?} is configured but no credentials are: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ));
    }
    if ![c.s3_connect_timeout_ms, c.s3_timeout_ms]
        .iter()
        .all(|ms| (1..=60_000).contains(ms))
    {
        return err("--s3-connect-timeout-ms and --s3-timeout-ms must be between 1 and 60000");
    }
    Ok(Store {
        store,
        bucket,
        region,
        credentials,
    })
}

/// The site section: its public URL and the public URL of the bucket's objects.
fn public_urls(c: &Config) -> Result<(Option<Url>, Option<Url>), ConfigError> {
    let public_url = match non_empty(c.public_url.clone()) {
        None => None,
        Some(raw) => {
            let url = parse_http_url("the public URL", "--public-url", &raw)?;
            if url.path() != "/" {
                return err(format!(
                    "--public-url: give the site's origin only, like https://uploads.example.com (got {raw:?})"
                ));
            }
            Some(url)
        }
    };
    let public_base_url = match non_empty(c.public_base_url.clone()) {
        None => None,
        Some(raw) => {
            let mut url = parse_http_url("the public base URL", "--public-base-url", &raw)?;
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            Some(url)
        }
    };
    Ok((public_url, public_base_url))
}

/// `--cors-origins`: each an origin (`https://app.example.com`), spelled as browsers send it.
fn cors_origins(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut origins = Vec::new();
    for r in raw.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        let url = parse_http_url("the origin", "--cors-origins", r)?;
        if url.path() != "/" || url.query().is_some() {
            return err(format!(
                "--cors-origins: give origins only, like https://app.example.com (got {r:?})"
            ));
        }
        let origin = url.origin().ascii_serialization();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// The uploads section: what may be uploaded, under which keys, for how long a form lasts.
struct Uploads {
    prefix: KeyPrefix,
    thumb_prefix: KeyPrefix,
    limits: Limits,
    policy_ttl: Duration,
    acl: Option<String>,
    decode: DecodeLimits,
    max_decode_bytes: u64,
}

fn allowed_types(raw: &[String]) -> Result<Vec<ImageType>, ConfigError> {
    let mut allowed = Vec::new();
    for raw in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if raw.eq_ignore_ascii_case("image/svg+xml") {
            return err(
                "--allowed-types: image/svg+xml is refused: an SVG served inline runs scripts",
            );
        }
        if raw.eq_ignore_ascii_case("image/avif") {
            return err(
                "--allowed-types: image/avif cannot be accepted: every upload gets a thumbnail, and this build cannot decode AVIF (the image crate's AVIF decoder needs dav1d 1.3 or later; Debian 12 has 1.0)",
            );
        }
        let Some(t) = ImageType::from_mime(raw) else {
            return err(format!(
                "--allowed-types: {raw:?} is not one of image/jpeg, image/png, image/gif, image/webp"
            ));
        };
        if !allowed.contains(&t) {
            allowed.push(t);
        }
    }
    if allowed.is_empty() {
        return err("--allowed-types: allow at least one image type");
    }
    Ok(allowed)
}

/// Uploads, thumbnails and signpost's own objects each have their own part of the bucket:
/// a thumbnail must never be taken for an upload, nor an upload for a record.
fn separate_prefixes(uploads: &KeyPrefix, thumbs: &KeyPrefix) -> Result<(), ConfigError> {
    let internal = crate::store::records::INTERNAL_PREFIX;
    let (u, t) = (uploads.as_str(), thumbs.as_str());
    if u.starts_with(internal) {
        return err(format!(
            "--key-prefix: {u} is inside {internal}, which is signpost's own"
        ));
    }
    if t.starts_with(internal) {
        return err(format!(
            "--thumb-prefix: {t} is inside {internal}, which is signpost's own"
        ));
    }
    if u.starts_with(t) || t.starts_with(u) {
        return err(format!(
            "--thumb-prefix {t} and --key-prefix {u} overlap: thumbnails would be taken for uploads (or the other way round)"
        ));
    }
    Ok(())
}

fn uploads(c: &Config, store: &Store) -> Result<Uploads, ConfigError> {
    let prefix = KeyPrefix::parse(c.key_prefix.trim())
        .map_err(|e| ConfigError(format!("--key-prefix: {e}")))?;
    let thumb_prefix = KeyPrefix::parse(c.thumb_prefix.trim())
        .map_err(|e| ConfigError(format!("--thumb-prefix: {e}")))?;
    separate_prefixes(&prefix, &thumb_prefix)?;
    let allowed = allowed_types(&c.allowed_types)?;

    let embedded = matches!(store.store, StoreSettings::Embedded { .. });
    let max_cap = if embedded {
        DEFAULTS.embedded_max_bytes
    } else {
        DEFAULTS.s3_max_bytes
    };
    if c.max_bytes == 0 {
        return err("--max-bytes must be at least 1");
    }
    if c.max_bytes > max_cap {
        return err(format!(
            "--max-bytes {} is above {max_cap}, the most {} accepts in one POST",
            c.max_bytes,
            if embedded {
                "the embedded store (which holds a POSTed file in memory)"
            } else {
                "S3"
            }
        ));
    }
    if !(10..=DEFAULTS.max_signed_ttl_secs).contains(&c.policy_ttl_secs) {
        return err(
            "--policy-ttl-secs must be between 10 seconds and 7 days (the default, 600, suits most sites)",
        );
    }
    if let Some(acl) = &c.acl {
        const CANNED: [&str; 6] = [
            "private",
            "public-read",
            "public-read-write",
            "authenticated-read",
            "bucket-owner-read",
            "bucket-owner-full-control",
        ];
        if !CANNED.contains(&acl.as_str()) {
            return err(format!(
                "--acl: {acl:?} is not a canned ACL ({})",
                CANNED.join(", ")
            ));
        }
    }
    if c.max_pixels == 0 {
        return err("--max-pixels must be at least 1");
    }
    let max_name = if embedded {
        crate::store::embedded::names::longest_name(&store.bucket, &prefix, &thumb_prefix)
            .filter(|n| *n >= MIN_SAFE_NAME)
            .ok_or_else(|| {
                ConfigError(format!(
                    "--key-prefix {prefix}, --thumb-prefix {thumb_prefix} and the bucket name {:?} are too long for the embedded store, whose keys are limited in length (its files are named after them): shorten them",
                    store.bucket
                ))
            })?
    } else {
        MAX_SAFE_NAME
    };
    if c.max_decode_bytes < 1024 * 1024 {
        return err("--max-decode-bytes must be at least 1048576 (1 MiB)");
    }
    Ok(Uploads {
        decode: DecodeLimits {
            max_pixels: c.max_pixels,
            max_alloc: DEFAULTS.decode_max_alloc,
        },
        max_decode_bytes: c.max_decode_bytes,
        prefix,
        thumb_prefix,
        limits: Limits {
            allowed,
            max_bytes: c.max_bytes,
            max_name,
        },
        policy_ttl: Duration::from_secs(c.policy_ttl_secs),
        acl: c.acl.clone(),
    })
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Why the site is reachable from beyond this machine, if it is: a bind address that is not
/// loopback, a public URL that is not, or trusted proxies (a proxy on this host still means
/// the internet is behind it).
fn exposed(c: &Config, store: &StoreSettings, public_url: Option<&Url>) -> Option<String> {
    if !c.bind.ip().is_loopback() {
        return Some(format!("--bind {} is not a loopback address", c.bind));
    }
    if let StoreSettings::Embedded { bind } = store
        && !bind.ip().is_loopback()
    {
        return Some(format!(
            "--embedded-s3-bind {bind} is not a loopback address"
        ));
    }
    if let Some(url) = public_url
        && !is_loopback_host(url)
    {
        return Some(format!("--public-url {url} is not a loopback URL"));
    }
    if c.trusted_proxies
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
    {
        return Some("--trusted-proxies is set (a proxy means the internet is behind it)".into());
    }
    None
}

/// The identity section.
fn identity(
    c: &Config,
    store: &StoreSettings,
    public_url: Option<&Url>,
) -> Result<IdentitySettings, ConfigError> {
    if c.trust_proxy {
        return err(
            "--trust-proxy is replaced by --trusted-proxies: name your proxies' addresses or networks (e.g. --trusted-proxies 127.0.0.1/32); the client is then the rightmost X-Forwarded-For hop that is not one of them",
        );
    }
    let trusted_proxies: TrustedProxies = c
        .trusted_proxies
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|e| ConfigError(format!("--trusted-proxies: {e}")))?;
    let auth_header = match non_empty(c.auth_header.clone()) {
        None => None,
        Some(h) => {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return err(format!("--auth-header: {h:?} is not a header name"));
            }
            if trusted_proxies.is_empty() {
                return err(
                    "--auth-header is believed only from --trusted-proxies: name the proxy's address (e.g. --trusted-proxies 127.0.0.1/32)",
                );
            }
            Some(h.to_ascii_lowercase())
        }
    };
    let exposed = exposed(c, store, public_url);
    let allow_anonymous = c.allow_anonymous || exposed.is_none();
    let sign_rate_per_minute = match c.sign_rate_per_minute {
        Some(0) => None,
        Some(n) => Some(n),
        None if exposed.is_some() && allow_anonymous => Some(DEFAULTS.exposed_sign_rate_per_minute),
        None => None,
    };
    let admins: Vec<String> = c
        .admins
        .iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(bad) = admins.iter().find(|a| !crate::identity::valid_owner(a)) {
        return err(format!("--admins: {bad:?} is not a user name"));
    }
    if c.quota_bytes_per_day == Some(0) {
        return err("--quota-bytes-per-day must be at least 1 (leave it unset for no quota)");
    }
    let link_key = non_empty_secret(c.link_key.clone());
    if link_key.as_ref().is_some_and(|k| k.expose().len() < 16) {
        return err("--link-key must be at least 16 characters");
    }
    Ok(IdentitySettings {
        auth_header,
        trusted_proxies,
        allow_anonymous,
        tokens_file: c
            .tokens_file
            .clone()
            .unwrap_or_else(|| c.data_dir.join("tokens")),
        admins,
        gallery_own: c.gallery == GalleryArg::Own,
        sign_rate_per_minute,
        quota_bytes_per_day: c.quota_bytes_per_day,
        link_key,
        exposed,
    })
}

/// The events section.
fn notify(c: &Config) -> Result<Option<NotifySettings>, ConfigError> {
    match (
        non_empty(c.notify_url.clone()),
        non_empty_secret(c.notify_secret.clone()),
    ) {
        (None, None) => Ok(None),
        (Some(_), None) => {
            err("--notify-url is set but --notify-secret is not: events must be signed")
        }
        (None, Some(_)) => err("--notify-secret is set but --notify-url is not"),
        (Some(raw), Some(secret)) => {
            if secret.expose().chars().count() < 16 {
                return err("--notify-secret must be at least 16 characters");
            }
            Ok(Some(NotifySettings {
                url: parse_http_url("the notification URL", "--notify-url", &raw)?,
                secret,
            }))
        }
    }
}

/// The scale-out section: the instance's name, its heartbeat's lifetime, and how long an
/// event may fail before it is parked.
fn instances(c: &Config) -> Result<(String, Duration, Duration), ConfigError> {
    let id = match non_empty(c.instance_id.clone()) {
        None => format!("{:016x}", rand::random::<u64>()),
        Some(id) => {
            let ok = id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                && !id.starts_with('.');
            if !ok {
                return err(format!(
                    "--instance-id: {id:?} is not a name (up to 64 letters, digits, `-`, `_` and `.`, not starting with `.`)"
                ));
            }
            id
        }
    };
    if !(2..=600).contains(&c.instance_ttl_secs) {
        return err("--instance-ttl-secs must be between 2 and 600");
    }
    let dead_letter_after = super::parse_duration(&c.notify_dead_letter_after)
        .and_then(|d| d.to_std().map_err(|e| e.to_string()))
        .map_err(|e| ConfigError(format!("--notify-dead-letter-after: {e}")))?;
    Ok((
        id,
        Duration::from_secs(c.instance_ttl_secs),
        dead_letter_after,
    ))
}

impl Settings {
    /// Validate the flags. `env_endpoint`/`env_region` are the secondary environment
    /// variables (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION), passed in so tests need no env.
    pub fn from_config(
        c: Config,
        env_endpoint: Option<String>,
        env_region: Option<String>,
    ) -> Result<Self, ConfigError> {
        let store = store(&c, env_endpoint, env_region)?;
        let (public_url, public_base_url) = public_urls(&c)?;
        let uploads = uploads(&c, &store)?;
        let identity = identity(&c, &store.store, public_url.as_ref())?;
        let embedded_public_url = match non_empty(c.embedded_s3_public_url.clone()) {
            None => None,
            Some(raw) => {
                if !matches!(store.store, StoreSettings::Embedded { .. }) {
                    return err(
                        "--embedded-s3-public-url is for the embedded store; an external store's URL is --s3-endpoint",
                    );
                }
                let url = parse_http_url(
                    "the embedded store's public URL",
                    "--embedded-s3-public-url",
                    &raw,
                )?;
                if url.path() != "/" {
                    return err(format!(
                        "--embedded-s3-public-url: give the store's origin only, like https://s3.example.com (got {raw:?})"
                    ));
                }
                Some(url)
            }
        };
        let multipart_ttl = crate::config::parse_duration(&c.multipart_ttl)
            .ok()
            .and_then(|d| d.to_std().ok())
            .ok_or_else(|| {
                ConfigError(format!(
                    "--multipart-ttl: {:?} is not a duration like 24h, 90m or 2d",
                    c.multipart_ttl
                ))
            })?;
        // Bounded like the policy TTL (SigV4: 7 days at most); unbounded, a huge TTL passed
        // here and then overflowed the date arithmetic of every part signed.
        if multipart_ttl > Duration::from_secs(DEFAULTS.max_signed_ttl_secs) {
            return err(format!(
                "--multipart-ttl: {:?} is longer than 7 days, the longest an S3 signature lasts (the default, 24h, suits most sites)",
                c.multipart_ttl.trim()
            ));
        }
        let cors_origins = cors_origins(&c.cors_origins)?;
        let notify = notify(&c)?;
        if c.notify_sweep_secs == 0 {
            return err("--notify-sweep-secs must be at least 1");
        }
        let (instance_id, instance_ttl, dead_letter_after) = instances(&c)?;

        Ok(Self {
            bind: c.bind,
            public_url,
            data_dir: c.data_dir,
            store: store.store,
            bucket: store.bucket,
            region: store.region,
            credentials: store.credentials,
            signature: match c.signature {
                SignatureArg::V4 => Version::V4,
                SignatureArg::V2 => Version::V2,
            },
            prefix: uploads.prefix,
            thumb_prefix: uploads.thumb_prefix,
            limits: uploads.limits,
            policy_ttl: uploads.policy_ttl,
            multipart_ttl,
            acl: uploads.acl,
            decode: uploads.decode,
            max_decode_bytes: uploads.max_decode_bytes,
            public_base_url,
            s3_connect_timeout: Duration::from_millis(c.s3_connect_timeout_ms),
            s3_timeout: Duration::from_millis(c.s3_timeout_ms),
            identity,
            embedded_public_url,
            cors_origins,
            notify,
            sweep_interval: Duration::from_secs(c.notify_sweep_secs),
            checkpoint: c.notify_checkpoint,
            dead_letter_after,
            instance_id,
            instance_ttl,
            shutdown_grace: Duration::from_secs(c.shutdown_grace_secs),
            log_format: c.log_format,
            static_dir: c.static_dir,
        })
    }

    /// From the process's flags and environment.
    pub fn from_env(c: Config) -> Result<Self, ConfigError> {
        Self::from_config(
            c,
            std::env::var("AWS_ENDPOINT_URL").ok(),
            std::env::var("AWS_DEFAULT_REGION").ok(),
        )
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.store, StoreSettings::Embedded { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(f: impl FnOnce(&mut Config)) -> Result<Settings, ConfigError> {
        let mut c = Config::embedded("/tmp/x");
        f(&mut c);
        Settings::from_config(c, None, None)
    }

    fn message(f: impl FnOnce(&mut Config)) -> String {
        settings(f).unwrap_err().0
    }

    #[test]
    fn zero_configuration_is_the_embedded_store() {
        let s = settings(|_| {}).unwrap();
        assert!(s.is_embedded());
        assert_eq!(s.bucket, DEFAULTS.embedded_bucket);
        assert_eq!(s.signature, Version::V4);
        assert_eq!(s.limits.allowed, ImageType::ALL.to_vec());
    }

    #[test]
    fn names_in_keys_are_shorter_on_the_embedded_store_only() {
        assert_eq!(settings(|_| {}).unwrap().limits.max_name, 60);
        let s3 = settings(|c| {
            c.s3_bucket = Some("bucket".into());
            c.s3_region = Some("eu-west-1".into());
            c.access_key_id = Some("a".into());
            c.secret_access_key = Some("s".into());
        })
        .unwrap();
        assert_eq!(s3.limits.max_name, MAX_SAFE_NAME);
    }

    #[test]
    fn each_mistake_has_a_clear_message() {
        assert!(
            message(|c| {
                c.s3_endpoint = Some("ftp://x".into());
                c.s3_bucket = Some("b-1".into());
                c.access_key_id = Some("a".into());
                c.secret_access_key = Some("s".into());
            })
            .contains("http://")
        );
        assert!(
            message(|c| {
                c.s3_endpoint = Some("not a url".into());
                c.s3_bucket = Some("bucket".into());
            })
            .contains("is not a URL")
        );
        assert!(
            message(|c| {
                c.s3_endpoint = Some("http://127.0.0.1:3900".into());
                c.s3_bucket = Some("bucket".into());
            })
            .contains("no credentials")
        );
        assert!(message(|c| c.s3_bucket = Some("bucket".into())).contains("region"));
        assert!(message(|c| c.s3_endpoint = Some("http://h".into())).contains("--s3-bucket"));
        assert!(message(|c| c.max_bytes = 0).contains("--max-bytes"));
        assert!(message(|c| c.allowed_types = vec!["image/svg+xml".into()]).contains("SVG"));
        assert!(message(|c| c.key_prefix = "/abs".into()).contains("--key-prefix"));
        assert!(message(|c| c.thumb_prefix = "uploads/thumbs/".into()).contains("overlap"));
        assert!(message(|c| c.key_prefix = "thumbs/mine/".into()).contains("overlap"));
        assert!(message(|c| c.thumb_prefix = ".signpost/t/".into()).contains("signpost's own"));
        assert!(message(|c| c.key_prefix = ".signpost/u/".into()).contains("signpost's own"));
        assert!(
            message(|c| c.allowed_types = vec!["image/png".into(), "image/avif".into()])
                .contains("dav1d")
        );
        assert!(message(|c| c.access_key_id = Some("a".into())).contains("AWS_SECRET_ACCESS_KEY"));
        assert!(message(|c| c.public_url = Some("http://h/path".into())).contains("origin"));
        assert!(message(|c| c.acl = Some("everyone".into())).contains("canned ACL"));
        assert!(message(|c| c.notify_url = Some("http://h/".into())).contains("--notify-secret"));
        assert!(
            message(|c| c.notify_dead_letter_after = "soon".into())
                .contains("--notify-dead-letter-after")
        );
        assert!(message(|c| c.instance_id = Some("a/b".into())).contains("--instance-id"));
        assert!(message(|c| c.instance_ttl_secs = 1).contains("--instance-ttl-secs"));
        assert!(message(|c| c.multipart_ttl = "1 day".into()).contains("--multipart-ttl"));
        assert!(message(|c| c.cors_origins = vec!["https://a/b".into()]).contains("origins only"));
        assert!(
            message(|c| c.key_prefix = format!("{}/", "p".repeat(80)))
                .contains("too long for the embedded store")
        );
        for (connect, total) in [(0, 3000), (1000, 0), (60_001, 3000), (1000, 60_001)] {
            let m = message(|c| {
                c.s3_connect_timeout_ms = connect;
                c.s3_timeout_ms = total;
            });
            assert!(m.contains("between 1 and 60000"), "{connect}, {total}: {m}");
        }
        assert!(
            settings(|c| {
                c.s3_connect_timeout_ms = 60_000;
                c.s3_timeout_ms = 1;
            })
            .is_ok()
        );
    }

    #[test]
    fn the_multipart_ttl_is_at_most_seven_days() {
        let week = settings(|c| c.multipart_ttl = "7d".into()).unwrap();
        assert_eq!(week.multipart_ttl, Duration::from_secs(7 * 24 * 3600));
        // 100000000d once passed, then overflowed the date of every part signed.
        for ttl in ["8d", "169h", "100000000d"] {
            let m = message(|c| c.multipart_ttl = ttl.into());
            assert!(
                m.contains("--multipart-ttl") && m.contains("7 days"),
                "{ttl}: {m}"
            );
        }
    }

    #[test]
    fn each_process_gets_its_own_instance_id_unless_one_is_given() {
        let a = settings(|_| {}).unwrap();
        let b = settings(|_| {}).unwrap();
        assert_ne!(a.instance_id, b.instance_id);
        let named = settings(|c| c.instance_id = Some(" web-1 ".into())).unwrap();
        assert_eq!(named.instance_id, "web-1");
        assert_eq!(a.dead_letter_after, Duration::from_secs(24 * 3600));
        assert_eq!(a.instance_ttl, Duration::from_secs(30));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let mut raw = Config::embedded("/tmp/x");
        raw.secret_access_key = Some("raw-secret-value-789".into());
        raw.notify_secret = Some("raw-notify-secret-012".into());
        raw.session_token = Some("raw-token-345".into());
        let shown = format!("{raw:?}");
        assert!(
            !shown.contains("raw-secret-value-789") && !shown.contains("raw-notify-secret-012")
        );
        assert!(!shown.contains("raw-token-345"));
        let s = settings(|c| {
            c.s3_bucket = Some("my-bucket".into());
            c.s3_region = Some("eu-west-1".into());
            c.access_key_id = Some("AKIAEXAMPLE".into());
            c.secret_access_key = Some("super-secret-value-123".into());
            c.notify_url = Some("http://h/".into());
            c.notify_secret = Some("notify-secret-value-456".into());
        })
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("super-secret-value-123"));
        assert!(!shown.contains("notify-secret-value-456"));
        assert!(shown.contains("AKIAEXAMPLE"));
        assert_eq!(s.store, StoreSettings::Aws);
    }
}
