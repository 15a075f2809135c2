//! What every signing endpoint checks before it signs: who asks ([`auth::identify`]), whom
//! the upload will belong to, the link's budget, the rate limit and the day's quota.

use actix_web::http::StatusCode;

use super::State;
use super::error::Problem;
use super::ratelimit::fingerprint;
use crate::identity::Identity;
use crate::identity::links::LinkError;
use crate::store::{S3Client, links};
use crate::upload::{Uploader, ValidUpload};

/// The file a request signs for, as far as it is known (the page's first render knows none).
#[derive(Debug, Clone, Copy)]
pub struct FileAsked<'a> {
    pub name: &'a str,
    pub size: Option<u64>,
    pub content_type: &'a str,
}

impl<'a> From<&'a ValidUpload> for FileAsked<'a> {
    fn from(valid: &'a ValidUpload) -> Self {
        Self {
            name: &valid.original_name,
            size: valid.size,
            content_type: valid.image_type.mime(),
        }
    }
}

fn forbidden(code: &'static str, message: impl Into<std::borrow::Cow<'static, str>>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, code, message)
}

/// The owner an identity signs for: its own, or (a delegate token only) the one the request
/// names, never an admin.
fn owner_for(
    identity: &Identity,
    asked: Option<&str>,
    admins: &[String],
) -> Result<String, Problem> {
    let Some(asked) = asked.filter(|a| *a != identity.owner()) else {
        return Ok(identity.owner().to_owned());
    };
    match identity {
        Identity::Token { delegate: true, .. } => {
            if !crate::identity::valid_owner(asked) {
                return Err(Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "owner_invalid",
                    "The owner must be 1 to 128 printable characters.",
                ));
            }
            if admins.iter().any(|a| a == asked) {
                return Err(forbidden(
                    "owner_not_allowed",
                    "A delegate token may not sign for an admin.",
                ));
            }
            Ok(asked.to_owned())
        }
        _ => Err(forbidden(
            "owner_not_allowed",
            "Only a delegate API token may sign for another owner.",
        )),
    }
}

/// Who signs (identified first: a caller without an identity hears that before anything
/// about its request), checked against every limit; `file`: what is signed.
pub async fn uploader(
    identity: &Identity,
    state: &State,
    client: &S3Client,
    owner_asked: Option<&str>,
    file: Option<FileAsked<'_>>,
) -> Result<Uploader, Problem> {
    let settings = &state.settings.identity;
    let mut uploader = Uploader::new(owner_for(identity, owner_asked, &settings.admins)?);
    if let Identity::Link { id, .. } = identity {
        let record = match state
            .auth
            .link_usable(client, id, state.clock.now(), false)
            .await?
        {
            Ok(r) => r,
            Err(e) => return Err(forbidden(e.code(), e.to_string())),
        };
        let budget = record.link.uploads as usize;
        if links::used(client, id, budget).await? >= budget {
            let e = LinkError::Exhausted;
            return Err(forbidden(e.code(), e.to_string()));
        }
        uploader.link = Some(id.clone());
    }
    if let Some(limiter) = &state.auth.limiter {
        let print = file.map(|f| fingerprint(f.name, f.size, f.content_type));
        limiter
            .check(&identity.counted_as(), print)
            .map_err(Problem::rate_limited)?;
    }
    if let Some(quotas) = &state.auth.quotas {
        // A form with no known size may upload the site's limit: that is what it counts.
        let bytes = file
            .and_then(|f| f.size)
            .unwrap_or(state.presigner.limits.max_bytes);
        let now = state.clock.now();
        quotas
            .take(&identity.counted_as(), bytes, now)
            .map_err(|reset| Problem::quota_exceeded(quotas.per_day(), reset, now))?;
        // The form may carry no more than was counted.
        uploader.max_bytes = Some(bytes);
    }
    Ok(uploader)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_delegate_token_signs_for_others_and_never_for_an_admin() {
        let admins = vec!["root".to_owned()];
        let delegate = Identity::Token {
            name: "app".into(),
            delegate: true,
        };
        let plain = Identity::Token {
            name: "ci".into(),
            delegate: false,
        };
        assert_eq!(owner_for(&delegate, None, &admins).unwrap(), "app");
        assert_eq!(
            owner_for(&delegate, Some("carol"), &admins).unwrap(),
            "carol"
        );
        assert_eq!(
            owner_for(&delegate, Some("root"), &admins)
                .unwrap_err()
                .code,
            "owner_not_allowed"
        );
        assert_eq!(
            owner_for(&plain, Some("carol"), &admins).unwrap_err().code,
            "owner_not_allowed"
        );
        assert_eq!(owner_for(&plain, Some("ci"), &admins).unwrap(), "ci");
        let alice = Identity::User("alice".into());
        assert!(owner_for(&alice, Some("bob"), &admins).is_err());
    }
}
