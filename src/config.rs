//! Configuration: command-line flags with environment fallbacks (the standard AWS names
//! where one exists), validated once at start into one typed [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use url::Url;

use crate::policy::Version;
use crate::secret::{Credentials, Secret};
use crate::upload::{ImageType, KeyPrefix, Limits};

/// Largest upload the embedded store accepts: s3s holds a POSTed file in memory.
pub const EMBEDDED_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// S3's own limit for a single POST.
pub const S3_MAX_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// The bucket of the embedded store.
pub const EMBEDDED_BUCKET: &str = "signpost";
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Parser)]
#[command(
    name = "signpost",
    version,
    about = "Browser uploads straight into an S3 bucket, signed by the server",
    long_about = "Browser uploads straight into an S3 bucket, signed by the server.\n\n\
        With no endpoint and no bucket configured, signpost runs its own S3-compatible \
        store in-process (data under --data-dir)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the web server (and the embedded store when configured so). The default.
    Serve,
    /// Print signed POST fields as JSON, for a script or `curl -F`.
    Presign(PresignArgs),
    /// Apply (or print) a CORS rule that lets the site's origin POST to the bucket.
    Cors(CorsArgs),
    /// Diagnose the configuration: endpoint, credentials, clock, a real upload, CORS.
    Check,
    /// Print the events signpost would deliver, as JSON lines.
    Events(EventsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PresignArgs {
    /// Original file name (reduced to a safe form for the key).
    #[arg(long)]
    pub filename: String,
    /// Exact image type, e.g. image/png.
    #[arg(long = "content-type")]
    pub content_type: String,
    /// File size in bytes (checked against --max-bytes).
    #[arg(long)]
    pub size: Option<u64>,
    #[arg(long)]
    pub width: Option<u32>,
    #[arg(long)]
    pub height: Option<u32>,
}

#[derive(Debug, Clone, Args)]
pub struct CorsArgs {
    /// Print the rule without applying it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Only objects uploaded at or after this time (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long)]
    pub since: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignatureArg {
    V4,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckpointArg {
    /// A file in --data-dir.
    File,
    /// An object in the bucket, shared by every instance.
    Bucket,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The raw flags. Every field has a flag and an environment variable; secrets are hidden
/// from `--help`'s env display.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address of the web server.
    #[arg(
        long,
        env = "SIGNPOST_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: SocketAddr,
    /// Public origin of the site (redirect target, CORS origin). Default: http://BIND.
    #[arg(long, env = "SIGNPOST_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Data directory of the embedded store (and the notification checkpoint).
    #[arg(
        long,
        env = "SIGNPOST_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address of the embedded S3 store.
    #[arg(
        long,
        env = "SIGNPOST_EMBEDDED_S3_BIND",
        default_value = "127.0.0.1:9000",
        global = true
    )]
    pub embedded_s3_bind: SocketAddr,
    /// S3 endpoint (path-style), e.g. http://127.0.0.1:3900 for Garage. Unset for AWS.
    /// Falls back to AWS_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3", global = true)]
    pub s3_endpoint: Option<String>,
    /// Bucket to upload into. Unset (with no endpoint): the embedded store.
    #[arg(long, env = "SIGNPOST_S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,
    /// Region of the bucket. Falls back to AWS_DEFAULT_REGION, then us-east-1 for custom
    /// endpoints.
    #[arg(long, env = "AWS_REGION", global = true)]
    pub s3_region: Option<String>,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true, global = true)]
    pub access_key_id: Option<String>,
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub secret_access_key: Option<Secret>,
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true, global = true)]
    pub session_token: Option<Secret>,
    /// Signature version of the upload form.
    #[arg(
        long,
        env = "SIGNPOST_SIGNATURE",
        value_enum,
        default_value = "v4",
        global = true
    )]
    pub signature: SignatureArg,
    /// Key prefix of every upload.
    #[arg(
        long,
        env = "SIGNPOST_KEY_PREFIX",
        default_value = "uploads/",
        global = true
    )]
    pub key_prefix: String,
    /// Largest upload, in bytes.
    #[arg(long, env = "SIGNPOST_MAX_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    pub max_bytes: u64,
    /// Lifetime of a signed form, in seconds.
    #[arg(
        long,
        env = "SIGNPOST_POLICY_TTL_SECS",
        default_value_t = 600,
        global = true
    )]
    pub policy_ttl_secs: u64,
    /// Canned ACL to set on uploads (e.g. public-read). Unset: none (buckets made since
    /// 2023 refuse ACLs).
    #[arg(long, env = "SIGNPOST_ACL", global = true)]
    pub acl: Option<String>,
    /// Image types accepted, comma-separated.
    #[arg(
        long,
        env = "SIGNPOST_ALLOWED_TYPES",
        value_delimiter = ',',
        default_value = "image/jpeg,image/png,image/gif,image/webp,image/avif",
        global = true
    )]
    pub allowed_types: Vec<String>,
    /// Public base URL of the bucket's objects (e.g. a CDN). Unset: presigned GET URLs.
    #[arg(long, env = "SIGNPOST_PUBLIC_BASE_URL", global = true)]
    pub public_base_url: Option<String>,
    /// Connect timeout of every S3 request, in milliseconds.
    #[arg(
        long,
        env = "SIGNPOST_S3_CONNECT_TIMEOUT_MS",
        default_value_t = 1000,
        global = true
    )]
    pub s3_connect_timeout_ms: u64,
    /// Total timeout of every S3 request, in milliseconds.
    #[arg(
        long,
        env = "SIGNPOST_S3_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    pub s3_timeout_ms: u64,
    /// Signatures per minute per client address (off when unset).
    #[arg(long, env = "SIGNPOST_SIGN_RATE_PER_MINUTE", global = true)]
    pub sign_rate_per_minute: Option<u32>,
    /// Trust X-Forwarded-For for the client address (behind a reverse proxy only).
    #[arg(long, env = "SIGNPOST_TRUST_PROXY", global = true)]
    pub trust_proxy: bool,
    /// URL that receives one signed JSON event per confirmed upload.
    #[arg(long, env = "SIGNPOST_NOTIFY_URL", global = true)]
    pub notify_url: Option<String>,
    /// Secret of the events' HMAC-SHA256 signature.
    #[arg(
        long,
        env = "SIGNPOST_NOTIFY_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub notify_secret: Option<Secret>,
    /// Seconds between two sweeps of the bucket for undelivered uploads.
    #[arg(
        long,
        env = "SIGNPOST_NOTIFY_SWEEP_SECS",
        default_value_t = 30,
        global = true
    )]
    pub notify_sweep_secs: u64,
    /// Where the delivery checkpoint lives.
    #[arg(
        long,
        env = "SIGNPOST_NOTIFY_CHECKPOINT",
        value_enum,
        default_value = "file",
        global = true
    )]
    pub notify_checkpoint: CheckpointArg,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(
        long,
        env = "SIGNPOST_SHUTDOWN_GRACE_SECS",
        default_value_t = 10,
        global = true
    )]
    pub shutdown_grace_secs: u64,
    /// Log format.
    #[arg(
        long,
        env = "SIGNPOST_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

impl Config {
    /// The defaults, with no environment read: a base for tests and tools.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: data_dir.into(),
            embedded_s3_bind: SocketAddr::from(([127, 0, 0, 1], 9000)),
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            signature: SignatureArg::V4,
            key_prefix: "uploads/".into(),
            max_bytes: 10 * 1024 * 1024,
            policy_ttl_secs: 600,
            acl: None,
            allowed_types: ImageType::ALL.iter().map(|t| t.mime().to_owned()).collect(),
            public_base_url: None,
            s3_connect_timeout_ms: 1000,
            s3_timeout_ms: 3000,
            sign_rate_per_minute: None,
            trust_proxy: false,
            notify_url: None,
            notify_secret: None,
            notify_sweep_secs: 30,
            notify_checkpoint: CheckpointArg::File,
            shutdown_grace_secs: 10,
            log_format: LogFormat::Text,
        }
    }
}

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

#[derive(Debug, Clone)]
pub struct NotifySettings {
    pub url: Url,
    pub secret: Secret,
    pub sweep: Duration,
    pub checkpoint: CheckpointArg,
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
    pub limits: Limits,
    pub policy_ttl: Duration,
    pub acl: Option<String>,
    pub public_base_url: Option<Url>,
    pub s3_connect_timeout: Duration,
    pub s3_timeout: Duration,
    pub sign_rate_per_minute: Option<u32>,
    pub trust_proxy: bool,
    pub notify: Option<NotifySettings>,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
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

impl Settings {
    /// Validate the flags. `env_endpoint`/`env_region` are the secondary environment
    /// variables (AWS_ENDPOINT_URL, AWS_DEFAULT_REGION), passed in so tests need no env.
    pub fn from_config(
        c: Config,
        env_endpoint: Option<String>,
        env_region: Option<String>,
    ) -> Result<Self, ConfigError> {
        let endpoint = non_empty(c.s3_endpoint).or_else(|| non_empty(env_endpoint));
        let bucket = non_empty(c.s3_bucket);
        let region = non_empty(c.s3_region).or_else(|| non_empty(env_region));

        let access = non_empty(c.access_key_id);
        let secret = non_empty_secret(c.secret_access_key);
        let token = non_empty_secret(c.session_token);
        let credentials = match (access, secret) {
            (Some(a), Some(s)) => Some(Credentials {
                access_key_id: a,
                secret_access_key: s,
                session_token: token,
            }),
            (Some(_), None) => {
                return err("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both");
            }
            (None, Some(_)) => {
                return err("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both");
            }
            (None, None) => None,
        };

        let (store, bucket, region) = match (endpoint, bucket) {
            (None, None) => {
                if c.embedded_s3_bind == c.bind && c.bind.port() != 0 {
                    return err(format!(
                        "--embedded-s3-bind and --bind are both {}: give the embedded store its own port",
                        c.bind
                    ));
                }
                let region = region.unwrap_or_else(|| DEFAULT_REGION.into());
                (
                    StoreSettings::Embedded {
                        bind: c.embedded_s3_bind,
                    },
                    EMBEDDED_BUCKET.to_owned(),
                    region,
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
                    region.unwrap_or_else(|| DEFAULT_REGION.into()),
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

        let public_url = match non_empty(c.public_url) {
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
        let public_base_url = match non_empty(c.public_base_url) {
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

        let prefix = KeyPrefix::parse(c.key_prefix.trim())
            .map_err(|e| ConfigError(format!("--key-prefix: {e}")))?;

        let mut allowed = Vec::new();
        for raw in c
            .allowed_types
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if raw.eq_ignore_ascii_case("image/svg+xml") {
                return err(
                    "--allowed-types: image/svg+xml is refused: an SVG served inline runs scripts",
                );
            }
            let Some(t) = ImageType::from_mime(raw) else {
                return err(format!(
                    "--allowed-types: {raw:?} is not one of image/jpeg, image/png, image/gif, image/webp, image/avif"
                ));
            };
            if !allowed.contains(&t) {
                allowed.push(t);
            }
        }
        if allowed.is_empty() {
            return err("--allowed-types: allow at least one image type");
        }

        let max_cap = if matches!(store, StoreSettings::Embedded { .. }) {
            EMBEDDED_MAX_BYTES
        } else {
            S3_MAX_BYTES
        };
        if c.max_bytes == 0 {
            return err("--max-bytes must be at least 1");
        }
        if c.max_bytes > max_cap {
            return err(format!(
                "--max-bytes {} is above {max_cap}, the most {} accepts in one POST",
                c.max_bytes,
                if max_cap == EMBEDDED_MAX_BYTES {
                    "the embedded store (which holds a POSTed file in memory)"
                } else {
                    "S3"
                }
            ));
        }
        if !(10..=7 * 24 * 3600).contains(&c.policy_ttl_secs) {
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
        if c.s3_connect_timeout_ms == 0 || c.s3_timeout_ms == 0 || c.s3_timeout_ms > 60_000 {
            return err("--s3-connect-timeout-ms and --s3-timeout-ms must be between 1 and 60000");
        }
        if c.sign_rate_per_minute == Some(0) {
            return err(
                "--sign-rate-per-minute must be at least 1 (leave it unset to turn the limit off)",
            );
        }

        let notify = match (non_empty(c.notify_url), non_empty_secret(c.notify_secret)) {
            (None, None) => None,
            (Some(_), None) => {
                return err(
                    "--notify-url is set but --notify-secret is not: events must be signed",
                );
            }
            (None, Some(_)) => return err("--notify-secret is set but --notify-url is not"),
            (Some(raw), Some(secret)) => {
                if secret.expose().chars().count() < 16 {
                    return err("--notify-secret must be at least 16 characters");
                }
                if c.notify_sweep_secs == 0 {
                    return err("--notify-sweep-secs must be at least 1");
                }
                Some(NotifySettings {
                    url: parse_http_url("the notification URL", "--notify-url", &raw)?,
                    secret,
                    sweep: Duration::from_secs(c.notify_sweep_secs),
                    checkpoint: c.notify_checkpoint,
                })
            }
        };

        Ok(Self {
            bind: c.bind,
            public_url,
            data_dir: c.data_dir,
            store,
            bucket,
            region,
            credentials,
            signature: match c.signature {
                SignatureArg::V4 => Version::V4,
                SignatureArg::V2 => Version::V2,
            },
            prefix,
            limits: Limits {
                allowed,
                max_bytes: c.max_bytes,
            },
            policy_ttl: Duration::from_secs(c.policy_ttl_secs),
            acl: c.acl,
            public_base_url,
            s3_connect_timeout: Duration::from_millis(c.s3_connect_timeout_ms),
            s3_timeout: Duration::from_millis(c.s3_timeout_ms),
            sign_rate_per_minute: c.sign_rate_per_minute,
            trust_proxy: c.trust_proxy,
            notify,
            shutdown_grace: Duration::from_secs(c.shutdown_grace_secs),
            log_format: c.log_format,
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
        assert_eq!(s.bucket, EMBEDDED_BUCKET);
        assert_eq!(s.signature, Version::V4);
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
        assert!(message(|c| c.access_key_id = Some("a".into())).contains("AWS_SECRET_ACCESS_KEY"));
        assert!(message(|c| c.public_url = Some("http://h/path".into())).contains("origin"));
        assert!(message(|c| c.acl = Some("everyone".into())).contains("canned ACL"));
        assert!(message(|c| c.notify_url = Some("http://h/".into())).contains("--notify-secret"));
    }

    #[test]
    fn an_unknown_signature_version_is_refused_by_the_parser() {
        let e = Cli::try_parse_from(["signpost", "--signature", "v3"]).unwrap_err();
        assert!(e.to_string().contains("v4"), "{e}");
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
