//! The command line: subcommands and flags, each flag with an environment variable (the
//! standard AWS names where one exists). Nothing here is validated: [`Settings`] does that.
//!
//! [`Settings`]: super::Settings

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

use super::defaults::DEFAULTS;
use crate::secret::Secret;

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
    /// Print past uploads' events (--since) as JSON lines; list the parked events
    /// (dead-letters) or send them again (redeliver).
    Events(EventsArgs),
    /// Manage API tokens (`Authorization: Bearer …` on the JSON API).
    Token(TokenArgs),
    /// Make an upload link (`--owner NAME`), or list or revoke links.
    Link(LinkArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub action: TokenAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum TokenAction {
    /// Add a token for NAME and print it (once: only its hash is kept).
    Add {
        name: String,
        /// The token may also sign for another owner named in the request (a host
        /// application signing for its users), never for an admin.
        #[arg(long)]
        delegate: bool,
    },
    /// List the tokens' names.
    List,
    /// Revoke the token of NAME.
    Revoke { name: String },
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub action: Option<LinkAction>,
    /// Who the uploads through the link belong to.
    #[arg(long)]
    pub owner: Option<String>,
    /// Confirmed uploads the link allows.
    #[arg(long, default_value_t = 1)]
    pub uploads: u32,
    /// How long the link works, e.g. 24h, 30m, 7d.
    #[arg(long, default_value = "24h")]
    pub expires: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum LinkAction {
    /// List the links: id, owner, uploads used and allowed, expiry, revoked.
    List,
    /// Revoke a link by its id.
    Revoke { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GalleryArg {
    /// Everyone who may use the site sees every upload.
    Public,
    /// Each signed-in user sees their own uploads; `--admins` see all.
    Own,
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
    /// Who the upload belongs to (signed as x-amz-meta-owner).
    #[arg(long, default_value = "anonymous")]
    pub owner: String,
}

#[derive(Debug, Clone, Args)]
pub struct CorsArgs {
    /// Print the rule without applying it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub action: Option<EventsAction>,
    /// Print the events of the objects uploaded at or after this time (RFC 3339, e.g.
    /// 2026-01-01T00:00:00Z), without sending them.
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EventsAction {
    /// List the parked events (dead letters), one JSON line each.
    DeadLetters,
    /// Send parked events again (to --notify-url); each one delivered leaves the list.
    Redeliver {
        /// The event's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every parked event.
        #[arg(long)]
        all: bool,
    },
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
        default_value = DEFAULTS.bind,
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
        default_value = DEFAULTS.data_dir,
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address of the embedded S3 store.
    #[arg(
        long,
        env = "SIGNPOST_EMBEDDED_S3_BIND",
        default_value = DEFAULTS.embedded_s3_bind,
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
        default_value = DEFAULTS.key_prefix,
        global = true
    )]
    pub key_prefix: String,
    /// Key prefix of the thumbnails signpost writes (outside --key-prefix).
    #[arg(
        long,
        env = "SIGNPOST_THUMB_PREFIX",
        default_value = DEFAULTS.thumb_prefix,
        global = true
    )]
    pub thumb_prefix: String,
    /// Largest upload, in bytes.
    #[arg(long, env = "SIGNPOST_MAX_BYTES", default_value_t = DEFAULTS.max_bytes, global = true)]
    pub max_bytes: u64,
    /// Lifetime of a signed form, in seconds.
    #[arg(
        long,
        env = "SIGNPOST_POLICY_TTL_SECS",
        default_value_t = DEFAULTS.policy_ttl_secs,
        global = true
    )]
    pub policy_ttl_secs: u64,
    /// How long a multipart upload (`POST /api/sign-request`) may take from its start to its
    /// completion, like 24h, 90m or 2d: its parts and completion are signed that long.
    #[arg(
        long,
        env = "SIGNPOST_MULTIPART_TTL",
        default_value = DEFAULTS.multipart_ttl,
        global = true
    )]
    pub multipart_ttl: String,
    /// Largest image accepted, in pixels (width × height, as its header claims).
    #[arg(long, env = "SIGNPOST_MAX_PIXELS", default_value_t = DEFAULTS.max_pixels, global = true)]
    pub max_pixels: u64,
    /// Uploads up to this many bytes are read whole and decoded when they are confirmed;
    /// larger ones are checked from their headers and structure.
    #[arg(long, env = "SIGNPOST_MAX_DECODE_BYTES", default_value_t = DEFAULTS.max_decode_bytes, global = true)]
    pub max_decode_bytes: u64,
    /// Canned ACL to set on uploads (e.g. public-read). Unset: none (buckets made since
    /// 2023 refuse ACLs).
    #[arg(long, env = "SIGNPOST_ACL", global = true)]
    pub acl: Option<String>,
    /// Image types accepted, comma-separated.
    #[arg(
        long,
        env = "SIGNPOST_ALLOWED_TYPES",
        value_delimiter = ',',
        default_value = DEFAULTS.allowed_types,
        global = true
    )]
    pub allowed_types: Vec<String>,
    /// Public base URL of the bucket's objects (e.g. a CDN). Unset: presigned GET URLs.
    #[arg(long, env = "SIGNPOST_PUBLIC_BASE_URL", global = true)]
    pub public_base_url: Option<String>,
    /// Connect timeout of every S3 request, in milliseconds (1 to 60000).
    #[arg(
        long,
        env = "SIGNPOST_S3_CONNECT_TIMEOUT_MS",
        default_value_t = DEFAULTS.s3_connect_timeout_ms,
        global = true
    )]
    pub s3_connect_timeout_ms: u64,
    /// Total timeout of every S3 request, in milliseconds (1 to 60000).
    #[arg(
        long,
        env = "SIGNPOST_S3_TIMEOUT_MS",
        default_value_t = DEFAULTS.s3_timeout_ms,
        global = true
    )]
    pub s3_timeout_ms: u64,
    /// New files signed a minute per client (0: off). Default: 30 for anonymous clients when
    /// signpost is exposed, off otherwise.
    #[arg(long, env = "SIGNPOST_SIGN_RATE_PER_MINUTE", global = true)]
    pub sign_rate_per_minute: Option<u32>,
    /// Replaced by --trusted-proxies.
    // Boolish: containers spell booleans 1/0, yes/no, on/off as often as true/false.
    #[arg(
        long,
        env = "SIGNPOST_TRUST_PROXY",
        value_parser = BoolishValueParser::new(),
        hide = true,
        global = true
    )]
    pub trust_proxy: bool,
    /// The header an authenticating proxy names the user in (e.g. X-Forwarded-User or
    /// Remote-User), believed only from --trusted-proxies.
    #[arg(long, env = "SIGNPOST_AUTH_HEADER", global = true)]
    pub auth_header: Option<String>,
    /// Proxies (addresses or networks, comma-separated) whose --auth-header and
    /// X-Forwarded-For are believed.
    #[arg(long, env = "SIGNPOST_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    /// Let anyone upload without an identity. The default only when signpost is not exposed
    /// (every bind and the public URL on loopback, no trusted proxies).
    // Boolish, like --trust-proxy: SIGNPOST_ALLOW_ANONYMOUS=1 works too.
    #[arg(
        long,
        env = "SIGNPOST_ALLOW_ANONYMOUS",
        value_parser = BoolishValueParser::new(),
        global = true
    )]
    pub allow_anonymous: bool,
    /// The API tokens file. Default: DATA_DIR/tokens.
    #[arg(long, env = "SIGNPOST_TOKENS_FILE", global = true)]
    pub tokens_file: Option<PathBuf>,
    /// Users who see and may delete every upload, comma-separated.
    #[arg(long, env = "SIGNPOST_ADMINS", value_delimiter = ',', global = true)]
    pub admins: Vec<String>,
    /// Who sees which uploads in the gallery.
    #[arg(
        long,
        env = "SIGNPOST_GALLERY",
        value_enum,
        default_value = "public",
        global = true
    )]
    pub gallery: GalleryArg,
    /// Bytes one identity may sign for in a UTC day (anonymous clients: per address).
    #[arg(long, env = "SIGNPOST_QUOTA_BYTES_PER_DAY", global = true)]
    pub quota_bytes_per_day: Option<u64>,
    /// The key upload links are signed with. Default: one generated once and kept in the
    /// bucket (.signpost/link-key), shared by every instance.
    #[arg(long, env = "SIGNPOST_LINK_KEY", hide_env_values = true, global = true)]
    pub link_key: Option<Secret>,
    /// The URL browsers reach the embedded store at, when a reverse proxy terminates TLS in
    /// front of it (form actions, image URLs, the pages' Content-Security-Policy).
    #[arg(long, env = "SIGNPOST_EMBEDDED_S3_PUBLIC_URL", global = true)]
    pub embedded_s3_public_url: Option<String>,
    /// More origins (besides the site's) whose pages upload straight to the bucket, such as
    /// a host application's pages running Uppy: the embedded store and `signpost cors`
    /// allow them. Comma-separated.
    #[arg(
        long,
        env = "SIGNPOST_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// URL that receives one signed JSON event per confirmed upload.
    // Hidden in --help: webhook URLs often carry a token.
    #[arg(
        long,
        env = "SIGNPOST_NOTIFY_URL",
        hide_env_values = true,
        global = true
    )]
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
        default_value_t = DEFAULTS.notify_sweep_secs,
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
    /// How long an event may keep failing before it is parked as a dead letter (e.g. 24h,
    /// 30m, 90s).
    #[arg(
        long,
        env = "SIGNPOST_NOTIFY_DEAD_LETTER_AFTER",
        default_value = DEFAULTS.notify_dead_letter_after,
        global = true
    )]
    pub notify_dead_letter_after: String,
    /// This instance's name among those sharing the bucket. Default: a random one per process.
    #[arg(long, env = "SIGNPOST_INSTANCE_ID", global = true)]
    pub instance_id: Option<String>,
    /// Seconds after its last heartbeat an instance is taken for dead and its share of the
    /// events taken over; hidden: the default suits production, tests shorten it.
    #[arg(
        long,
        env = "SIGNPOST_INSTANCE_TTL_SECS",
        default_value_t = DEFAULTS.instance_ttl_secs,
        hide = true,
        global = true
    )]
    pub instance_ttl_secs: u64,
    /// Seconds in-flight requests get to finish on shutdown.
    #[arg(
        long,
        env = "SIGNPOST_SHUTDOWN_GRACE_SECS",
        default_value_t = DEFAULTS.shutdown_grace_secs,
        global = true
    )]
    pub shutdown_grace_secs: u64,
    /// The folder of the site's static files (upload.js, style.css). Default: the `static/`
    /// folder of the source tree this binary was built from; an installed binary needs it.
    #[arg(long, env = "SIGNPOST_STATIC_DIR", default_value = DEFAULTS.static_dir, global = true)]
    pub static_dir: PathBuf,
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
        // The defaults are valid addresses: a test of this module parses them.
        let addr = |s: &str| s.parse().expect("the default addresses parse");
        Self {
            bind: addr(DEFAULTS.bind),
            public_url: None,
            data_dir: data_dir.into(),
            embedded_s3_bind: addr(DEFAULTS.embedded_s3_bind),
            s3_endpoint: None,
            s3_bucket: None,
            s3_region: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            signature: SignatureArg::V4,
            key_prefix: DEFAULTS.key_prefix.into(),
            thumb_prefix: DEFAULTS.thumb_prefix.into(),
            max_bytes: DEFAULTS.max_bytes,
            policy_ttl_secs: DEFAULTS.policy_ttl_secs,
            multipart_ttl: DEFAULTS.multipart_ttl.into(),
            max_pixels: DEFAULTS.max_pixels,
            max_decode_bytes: DEFAULTS.max_decode_bytes,
            acl: None,
            allowed_types: DEFAULTS
                .allowed_types
                .split(',')
                .map(str::to_owned)
                .collect(),
            public_base_url: None,
            s3_connect_timeout_ms: DEFAULTS.s3_connect_timeout_ms,
            s3_timeout_ms: DEFAULTS.s3_timeout_ms,
            sign_rate_per_minute: None,
            trust_proxy: false,
            auth_header: None,
            trusted_proxies: None,
            allow_anonymous: false,
            tokens_file: None,
            admins: Vec::new(),
            gallery: GalleryArg::Public,
            quota_bytes_per_day: None,
            link_key: None,
            embedded_s3_public_url: None,
            cors_origins: Vec::new(),
            notify_url: None,
            notify_secret: None,
            notify_sweep_secs: DEFAULTS.notify_sweep_secs,
            notify_checkpoint: CheckpointArg::File,
            notify_dead_letter_after: DEFAULTS.notify_dead_letter_after.into(),
            instance_id: None,
            instance_ttl_secs: DEFAULTS.instance_ttl_secs,
            shutdown_grace_secs: DEFAULTS.shutdown_grace_secs,
            log_format: LogFormat::Text,
            static_dir: DEFAULTS.static_dir.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_base_config_is_what_an_empty_command_line_gives() {
        // No SIGNPOST_*/AWS_* variables are set in the test environment for these flags.
        let parsed = Cli::try_parse_from(["signpost", "--data-dir", "/tmp/x"]).unwrap();
        let base = Config::embedded("/tmp/x");
        assert_eq!(format!("{:?}", parsed.config), format!("{base:?}"));
    }

    /// What the value `raw` gives the boolean flag `id`, parsed as its environment variable's
    /// would be (by the Arg's own value parser), without touching the process's environment.
    fn env_bool(id: &str, raw: &str) -> Result<bool, clap::Error> {
        let arg = Cli::command()
            .get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap()
            .clone()
            .action(clap::ArgAction::Set);
        let long = format!("--{}", arg.get_long().unwrap());
        let m = clap::Command::new("t")
            .arg(arg)
            .try_get_matches_from(["t", long.as_str(), raw])?;
        Ok(m.get_one::<bool>(id).copied().unwrap())
    }

    #[test]
    fn boolean_env_vars_take_the_usual_spellings() {
        for id in ["allow_anonymous", "trust_proxy"] {
            for raw in ["1", "yes", "on", "true", "Y"] {
                assert!(env_bool(id, raw).unwrap(), "{id}={raw}");
            }
            for raw in ["0", "no", "off", "false", "N"] {
                assert!(!env_bool(id, raw).unwrap(), "{id}={raw}");
            }
            assert!(env_bool(id, "maybe").is_err(), "{id}=maybe");
        }
        let flags =
            Cli::try_parse_from(["signpost", "--allow-anonymous", "--trust-proxy"]).unwrap();
        assert!(flags.config.allow_anonymous && flags.config.trust_proxy);
    }

    #[test]
    fn help_hides_the_values_of_secrets_and_credential_urls() {
        const SECRETS: [&str; 6] = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "SIGNPOST_LINK_KEY",
            "SIGNPOST_NOTIFY_URL",
            "SIGNPOST_NOTIFY_SECRET",
        ];
        let cmd = Cli::command();
        for env in SECRETS {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == env))
                .unwrap_or_else(|| panic!("no flag reads {env}"));
            assert!(arg.is_hide_env_values_set(), "--help shows {env}'s value");
        }
    }

    #[test]
    fn an_unknown_signature_version_is_refused_by_the_parser() {
        let e = Cli::try_parse_from(["signpost", "--signature", "v3"]).unwrap_err();
        assert!(e.to_string().contains("v4"), "{e}");
    }
}
