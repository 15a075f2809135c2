//! `signpost token add|list|revoke` and `signpost link [--owner NAME] | list | revoke ID`.

use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::config::{DEFAULTS, LinkAction, LinkArgs, Settings, TokenAction, TokenArgs};
use crate::identity::links::{self, Link, LinkRecord};
use crate::identity::tokens;
use crate::store::{Backend, S3Client, public_url};

/// `signpost token …`: the tokens file only; no store needed.
pub fn token(settings: &Settings, args: &TokenArgs) -> ExitCode {
    let path = &settings.identity.tokens_file;
    let result = match &args.action {
        TokenAction::Add { name, delegate } => tokens::add(path, name, *delegate).map(|t| {
            println!("{t}");
            eprintln!(
                "signpost: token for {name:?}{} added to {}; it is shown once, keep it safe",
                if *delegate { " (delegate)" } else { "" },
                path.display()
            );
        }),
        TokenAction::List => tokens::read(path).map(|entries| {
            for e in entries {
                println!(
                    "{}\t{}\t{}",
                    e.name,
                    if e.delegate { "delegate" } else { "-" },
                    e.created_at
                );
            }
        }),
        TokenAction::Revoke { name } => tokens::revoke(path, name).and_then(|found| {
            if found {
                eprintln!("signpost: the token of {name:?} is revoked");
                Ok(())
            } else {
                Err(tokens::TokenError::Invalid(format!(
                    "there is no token named {name:?}"
                )))
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signpost token: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `signpost link` was asked to do, its arguments checked.
enum Job<'a> {
    List,
    Revoke(&'a str),
    Make(Link),
}

/// `signpost link …`: links live in the bucket (and the embedded store must be running).
pub async fn link(settings: &Settings, args: &LinkArgs) -> ExitCode {
    let now = Utc::now();
    // The arguments are checked before the store is reached: a mistake is misuse (exit 2).
    let job = match &args.action {
        Some(LinkAction::List) => Job::List,
        Some(LinkAction::Revoke { id }) => Job::Revoke(id),
        None => match new_link(args, now) {
            Ok(link) => Job::Make(link),
            Err(e) => {
                eprintln!("signpost link: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match link_inner(settings, job, now).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signpost link: {e}");
            if settings.is_embedded() {
                eprintln!(
                    "(with the embedded store, signpost must be running: `signpost serve` with the same --data-dir and --embedded-s3-bind)"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// The link `--owner`, `--uploads` and `--expires` ask for, made at `now`.
fn new_link(args: &LinkArgs, now: DateTime<Utc>) -> Result<Link, String> {
    let owner = args
        .owner
        .as_deref()
        .ok_or("name whose uploads the link makes: --owner NAME")?;
    if !crate::identity::valid_owner(owner) {
        return Err(format!("--owner {owner:?} is not a user name"));
    }
    if args.uploads == 0 {
        return Err("--uploads must be at least 1".into());
    }
    let lifetime =
        crate::config::parse_duration(&args.expires).map_err(|e| format!("--expires: {e}"))?;
    // Bounded so that a forgotten link closes some day; checked: `now + 100000000d` panicked.
    let max_days = DEFAULTS.max_link_days;
    let too_long = || {
        format!(
            "--expires: {:?} is longer than {max_days} days, the longest a link may work",
            args.expires.trim()
        )
    };
    if lifetime > chrono::Duration::days(max_days) {
        return Err(too_long());
    }
    let expires_at = now.checked_add_signed(lifetime).ok_or_else(too_long)?;
    Ok(Link {
        id: links::new_id(),
        owner: owner.to_owned(),
        uploads: args.uploads,
        expires_at,
    })
}

async fn link_inner(settings: &Settings, job: Job<'_>, now: DateTime<Utc>) -> Result<(), String> {
    let site = public_url(settings, settings.bind).map_err(|e| e.to_string())?;
    let backend = Backend::connect(settings, &site).map_err(|e| e.to_string())?;
    let client = S3Client::new(backend.target.clone());
    match job {
        Job::List => {
            for r in crate::store::links::list(&client)
                .await
                .map_err(|e| e.to_string())?
            {
                let used = crate::store::links::used(&client, &r.link.id, r.link.uploads as usize)
                    .await
                    .map_err(|e| e.to_string())?;
                let state = if r.revoked {
                    "revoked"
                } else if now >= r.link.expires_at {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{used}/{}\t{}\t{state}",
                    r.link.id,
                    r.link.owner,
                    r.link.uploads,
                    crate::policy::time::iso8601_millis(r.link.expires_at)
                );
            }
            Ok(())
        }
        Job::Revoke(id) => {
            let mut record = crate::store::links::read(&client, id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("there is no link {id:?} (see `signpost link list`)"))?;
            record.revoked = true;
            crate::store::links::write(&client, &record)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!("signpost: link {id} is revoked");
            Ok(())
        }
        Job::Make(link) => {
            let key = crate::store::links::link_key(&client, settings.identity.link_key.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            crate::store::links::write(
                &client,
                &LinkRecord {
                    link: link.clone(),
                    created_at: now,
                    revoked: false,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            let token = links::sign(&key, &link);
            let url = site
                .join(&format!("/l/{token}"))
                .map_err(|e| e.to_string())?;
            println!("{url}");
            eprintln!(
                "signpost: link {} lets its holder upload {} image(s) as {:?} until {}",
                link.id,
                link.uploads,
                link.owner,
                crate::policy::time::iso8601_millis(link.expires_at)
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(expires: &str) -> LinkArgs {
        LinkArgs {
            action: None,
            owner: Some("bob".into()),
            uploads: 1,
            expires: expires.into(),
        }
    }

    #[test]
    fn a_link_lives_at_most_a_year_and_never_overflows() {
        let now = Utc::now();
        let year = new_link(&args("365d"), now).unwrap();
        assert_eq!(year.expires_at, now + chrono::Duration::days(365));
        for expires in ["366d", "100000000d", "99999999999s"] {
            let e = new_link(&args(expires), now).unwrap_err();
            assert!(e.contains("--expires") && e.contains("365 days"), "{e}");
        }
        // At the far end of time, even a short link cannot be added: an error, not a panic.
        assert!(new_link(&args("1d"), DateTime::<Utc>::MAX_UTC).is_err());
    }
}
