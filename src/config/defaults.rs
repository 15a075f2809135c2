//! Every default, written once: the command line's defaults and [`Config::embedded`] (the
//! base of tests and tools) both read them from here.
//!
//! [`Config::embedded`]: super::Config::embedded

/// The defaults of the flags, and the limits the validation holds them to.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub bind: &'static str,
    pub data_dir: &'static str,
    pub embedded_s3_bind: &'static str,
    /// The bucket of the embedded store.
    pub embedded_bucket: &'static str,
    /// The region signed for custom endpoints and the embedded store.
    pub region: &'static str,
    pub key_prefix: &'static str,
    pub thumb_prefix: &'static str,
    pub max_bytes: u64,
    /// Largest upload the embedded store accepts: s3s holds a POSTed file in memory.
    pub embedded_max_bytes: u64,
    /// S3's own limit for a single POST.
    pub s3_max_bytes: u64,
    pub policy_ttl_secs: u64,
    /// How long a multipart upload may take, start to completion.
    pub multipart_ttl: &'static str,
    /// The longest the policy TTL and the multipart TTL may be: a SigV4 presigned URL lives
    /// at most 7 days.
    pub max_signed_ttl_secs: u64,
    /// The longest an upload link may work (`signpost link --expires`): a forgotten link
    /// should not stay open for good.
    pub max_link_days: i64,
    /// Images with more pixels are refused at confirmation.
    pub max_pixels: u64,
    /// Uploads up to this size are read whole and decoded at confirmation.
    pub max_decode_bytes: u64,
    /// What one decode may allocate; larger images are checked from their structure only.
    pub decode_max_alloc: u64,
    pub allowed_types: &'static str,
    pub s3_connect_timeout_ms: u64,
    pub s3_timeout_ms: u64,
    pub notify_sweep_secs: u64,
    /// How long an event may keep failing before it is parked as a dead letter.
    pub notify_dead_letter_after: &'static str,
    /// An instance whose heartbeat is older than this is taken for dead.
    pub instance_ttl_secs: u64,
    /// The rate limit of anonymous clients when signpost is exposed.
    pub exposed_sign_rate_per_minute: u32,
    pub shutdown_grace_secs: u64,
    /// The source tree's `static/`, known at build time: `cargo run` works from any folder.
    pub static_dir: &'static str,
}

pub const DEFAULTS: Defaults = Defaults {
    bind: "127.0.0.1:8080",
    data_dir: "./data",
    embedded_s3_bind: "127.0.0.1:9000",
    embedded_bucket: "signpost",
    region: "us-east-1",
    key_prefix: "uploads/",
    thumb_prefix: "thumbs/",
    max_bytes: 10 * 1024 * 1024,
    embedded_max_bytes: 100 * 1024 * 1024,
    s3_max_bytes: 5 * 1024 * 1024 * 1024,
    policy_ttl_secs: 600,
    multipart_ttl: "24h",
    max_signed_ttl_secs: 7 * 24 * 3600,
    max_link_days: 365,
    max_pixels: 50_000_000,
    max_decode_bytes: 64 * 1024 * 1024,
    decode_max_alloc: 256 * 1024 * 1024,
    allowed_types: "image/jpeg,image/png,image/gif,image/webp",
    s3_connect_timeout_ms: 1000,
    s3_timeout_ms: 3000,
    notify_sweep_secs: 30,
    notify_dead_letter_after: "24h",
    instance_ttl_secs: 30,
    exposed_sign_rate_per_minute: 30,
    shutdown_grace_secs: 10,
    static_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/static"),
};
