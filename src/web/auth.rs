//! Who a request comes from, in the order signpost believes it:
//!
//! 1. `Authorization: Bearer TOKEN` on the JSON API: the token's name;
//! 2. the `--auth-header` from a peer in `--trusted-proxies`: the user the proxy signed in;
//! 3. an upload link's session cookie: the link's owner, for uploading only;
//! 4. with anonymous use allowed, the client's address.
//!
//! Anything else is refused: 401 `unauthenticated` on the API, a sign-in page elsewhere.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_session::{Session, SessionExt};
use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha512;
use tokio::sync::OnceCell;

use super::State;
use super::error::Problem;
use super::ratelimit::{Quotas, RateLimiter};
use crate::config::IdentitySettings;
use crate::identity::client::client_addr;
use crate::identity::links::LinkError;
use crate::identity::tokens::TokenStore;
use crate::identity::{Identity, valid_owner};
use crate::secret::{Credentials, Secret};
use crate::store::{S3Client, links};

/// How long a link's record is believed before it is read again (a revocation takes at
/// most this long to reach a session).
const LINK_RECHECK: Duration = Duration::from_secs(15);
/// The session key of an upload link session.
const LINK_SESSION: &str = "link";

/// What identity needs at run time, shared by every worker.
pub struct Auth {
    pub tokens: TokenStore,
    /// Anti-CSRF tokens' key, the same in every instance (derived from the store's secret).
    pub csrf_key: Secret,
    /// The session cookie's key, derived the same way.
    pub cookie_key: actix_web::cookie::Key,
    /// The key of multipart upload keys' tags, derived the same way.
    pub multipart_key: Secret,
    pub limiter: Option<RateLimiter>,
    pub quotas: Option<Quotas>,
    link_key: OnceCell<Secret>,
    links_seen: Mutex<HashMap<String, (Instant, Option<crate::identity::links::LinkRecord>)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.path())
            .finish_non_exhaustive()
    }
}

/// A key for `purpose`, derived from the store's secret access key: every instance of one
/// bucket has the same, and none is kept anywhere.
fn derived(credentials: &Credentials, purpose: &str) -> [u8; 64] {
    // HMAC accepts keys of any length.
    let mut m = Hmac::<Sha512>::new_from_slice(credentials.secret_access_key.expose().as_bytes())
        .expect("HMAC takes any key");
    m.update(b"signpost\n");
    m.update(purpose.as_bytes());
    m.finalize().into_bytes().into()
}

impl Auth {
    pub fn new(
        settings: &IdentitySettings,
        credentials: &Credentials,
        policy_ttl: Duration,
    ) -> Self {
        Self {
            tokens: TokenStore::new(settings.tokens_file.clone()),
            csrf_key: Secret::new(hex::encode(derived(credentials, "csrf"))),
            cookie_key: actix_web::cookie::Key::from(&derived(credentials, "session cookie")),
            multipart_key: Secret::new(hex::encode(derived(credentials, "multipart keys"))),
            limiter: settings
                .sign_rate_per_minute
                .and_then(std::num::NonZeroU32::new)
                .map(|n| RateLimiter::new(n, policy_ttl)),
            quotas: settings.quota_bytes_per_day.map(Quotas::new),
            link_key: OnceCell::new(),
            links_seen: Mutex::new(HashMap::new()),
        }
    }

    /// The link key, read (or made) once.
    pub async fn link_key(
        &self,
        client: &S3Client,
        configured: Option<&Secret>,
    ) -> Result<&Secret, Problem> {
        self.link_key
            .get_or_try_init(|| links::link_key(client, configured))
            .await
            .map_err(Problem::from)
    }

    /// A link's record, as recently read (`fresh`: read now).
    async fn link_record(
        &self,
        client: &S3Client,
        id: &str,
        fresh: bool,
    ) -> Result<Option<crate::identity::links::LinkRecord>, Problem> {
        if !fresh {
            // A poisoned lock only means another request panicked mid-update.
            let seen = self.links_seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, r)) = seen.get(id)
                && at.elapsed() < LINK_RECHECK
            {
                return Ok(r.clone());
            }
        }
        let record = links::read(client, id).await?;
        let mut seen = self.links_seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, (at, _)| at.elapsed() < LINK_RECHECK);
        }
        seen.insert(id.to_owned(), (Instant::now(), record.clone()));
        Ok(record)
    }

    /// Whether the link may still be used: it exists, is not revoked, has not expired. A
    /// session believes a record read in the last few seconds; opening a link reads it now.
    pub async fn link_usable(
        &self,
        client: &S3Client,
        id: &str,
        now: chrono::DateTime<chrono::Utc>,
        fresh: bool,
    ) -> Result<Result<crate::identity::links::LinkRecord, LinkError>, Problem> {
        Ok(match self.link_record(client, id, fresh).await? {
            None => Err(LinkError::Invalid),
            Some(r) if r.revoked => Err(LinkError::Revoked),
            Some(r) if now >= r.link.expires_at => Err(LinkError::Expired),
            Some(r) => Ok(r),
        })
    }
}

/// An upload link session, as kept in its signed cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkSession {
    pub id: String,
    pub owner: String,
}

pub fn start_link_session(session: &Session, link: &LinkSession) -> Result<(), Problem> {
    session.renew();
    session.insert(LINK_SESSION, link).map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "session_failed",
            "The upload link's session could not be started.",
        )
    })
}

/// The client's address: the peer, or behind trusted proxies the rightmost untrusted hop.
pub fn client_ip(req: &HttpRequest, identity: &IdentitySettings) -> IpAddr {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    client_addr(peer, forwarded, &identity.trusted_proxies)
}

pub fn unauthenticated(message: &'static str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

/// Who `req` comes from, or why it is refused.
pub async fn identify(
    req: &HttpRequest,
    state: &State,
    client: &S3Client,
) -> Result<Identity, Problem> {
    let settings = &state.settings.identity;
    let api = req.path().starts_with("/api/");
    if api && let Some(value) = req.headers().get(AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        return match state.auth.tokens.find(token) {
            Ok(Some(entry)) => Ok(Identity::Token {
                name: entry.name,
                delegate: entry.delegate,
            }),
            Ok(None) => Err(unauthenticated(
                "This API token is not valid (revoked, or never issued).",
            )),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the tokens file");
                Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tokens_unreadable",
                    "signpost cannot read its API tokens right now.",
                ))
            }
        };
    }
    if let Some(header) = &settings.auth_header {
        let peer_trusted = req
            .peer_addr()
            .is_some_and(|a| settings.trusted_proxies.contains(a.ip()));
        if peer_trusted
            && let Some(user) = req
                .headers()
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|u| valid_owner(u))
        {
            return Ok(Identity::User(user.to_owned()));
        }
    }
    let session = req.get_session();
    if let Ok(Some(link)) = session.get::<LinkSession>(LINK_SESSION) {
        match state
            .auth
            .link_usable(client, &link.id, state.clock.now(), false)
            .await?
        {
            Ok(_) => {
                return Ok(Identity::Link {
                    id: link.id,
                    owner: link.owner,
                });
            }
            Err(e) => {
                session.remove(LINK_SESSION);
                return Err(Problem::new(StatusCode::FORBIDDEN, e.code(), e.to_string()));
            }
        }
    }
    if settings.allow_anonymous {
        return Ok(Identity::Anonymous(client_ip(req, settings)));
    }
    Err(unauthenticated(if api {
        "Sign in first: send Authorization: Bearer with an API token, or go through the site's sign-in."
    } else {
        "Sign in to use signpost: this site needs to know who you are (or open the upload link you were given)."
    }))
}
