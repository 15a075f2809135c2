//! `signpost events --since TIME`: the events signpost would deliver for the uploads signed
//! at or after TIME, one JSON object per line, newest first. For backfills and debugging:
//! it is read-only (a file that fails verification is reported, not deleted) and does not
//! touch the delivery checkpoint.
//!
//! `signpost events dead-letters` lists the parked events, one JSON line each;
//! `signpost events redeliver ID|--all` sends them to `--notify-url` again, and removes each
//! one delivered from the list.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::config::{EventsAction, EventsArgs, Settings};
use crate::notify::Event;
use crate::notify::dead_letter;
use crate::notify::delivery::Deliverer;
use crate::store::{
    Backend, ConfirmError, ImageUrls, OnReject, S3Client, StoreError, Verifier, confirm,
    public_url, records,
};
use crate::sweep::scan::Scanner;
use crate::upload::{KeyPrefix, ObjectKey};

/// What a run printed and skipped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub printed: usize,
    /// Listed objects that failed verification (left in place).
    pub rejected: usize,
    /// Objects that could not be read (store errors on one object).
    pub failed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot list the bucket: {0}")]
    Store(#[from] StoreError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Parse `--since`: RFC 3339 (`2026-01-01T00:00:00Z`, an offset, fractions allowed).
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("--since {raw:?} is not an RFC 3339 time like 2026-01-01T00:00:00Z ({e})")
        })
}

/// Write the events of the uploads signed at or after `since` to `out`, one per line.
/// Problems with single objects go to `err` and are counted; a listing error stops.
pub async fn write_events(
    client: &S3Client,
    urls: &ImageUrls,
    settings: &Settings,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<Summary, EventsError> {
    let mut summary = Summary::default();
    let verifier = Verifier::for_settings(settings);
    let mut scanner = Scanner::new(client, &settings.prefix, now, since.timestamp_millis());
    while let Some(page) = scanner.next_page().await? {
        for c in page {
            match confirm(client, &verifier, &c.key, None, OnReject::Keep).await {
                Ok(confirmed) => {
                    let event = Event::new(
                        &settings.bucket,
                        &confirmed,
                        urls.thumbnail_links(&confirmed),
                    );
                    out.write_all(&event.body())?;
                    out.write_all(b"\n")?;
                    summary.printed += 1;
                }
                Err(ConfirmError::NotFound) => {}
                Err(ConfirmError::Rejected { reason, .. }) => {
                    writeln!(
                        err,
                        "skipped {}: {reason} (left in place: this command only reads)",
                        c.key
                    )?;
                    summary.rejected += 1;
                }
                Err(e) => {
                    writeln!(err, "cannot read {}: {e}", c.key)?;
                    summary.failed += 1;
                }
            }
        }
        out.flush()?;
    }
    Ok(summary)
}

/// Print every parked event to `out`, one JSON line each (its id, type, key, when it was
/// parked, its attempts and the last error). Returns how many.
pub async fn write_dead_letters(
    client: &S3Client,
    out: &mut impl Write,
) -> Result<usize, EventsError> {
    let mut printed = 0;
    for id in dead_letter::ids(client).await? {
        if let Some(parked) = dead_letter::get(client, &id).await? {
            writeln!(out, "{}", parked.summary())?;
            printed += 1;
        }
    }
    out.flush()?;
    Ok(printed)
}

/// What a redelivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redelivered {
    pub delivered: usize,
    pub failed: usize,
    /// Ids asked for that are not parked.
    pub missing: usize,
}

/// Send the parked event `id` (or every one) again; each one the receiver takes leaves the
/// dead letters. One line per event to `out`. A parked event's thumbnail URLs were signed
/// for about an hour when it was first sent: they are signed again from the upload's record.
pub async fn redeliver(
    client: &S3Client,
    deliverer: &Deliverer,
    prefix: &KeyPrefix,
    id: Option<&str>,
    out: &mut impl Write,
) -> Result<Redelivered, EventsError> {
    let ids = match id {
        Some(id) => vec![id.to_owned()],
        None => dead_letter::ids(client).await?,
    };
    let mut done = Redelivered::default();
    for id in ids {
        let Some(parked) = dead_letter::get(client, &id).await? else {
            writeln!(out, "{id}: no such dead letter")?;
            done.missing += 1;
            continue;
        };
        let mut event = parked.event;
        if deliverer.lists_thumbnails()
            && !event.thumbnails.is_empty()
            && let Some(key) = ObjectKey::parse(prefix, &event.key)
            && let Some(confirmed) = records::read(client, prefix, &key).await?
        {
            event.thumbnails = deliverer.thumbnail_links(&confirmed);
        }
        match deliverer.deliver(&event).await {
            Ok(()) => {
                dead_letter::remove(client, &id).await?;
                tracing::info!(event_id = %id, key = %event.key, "dead letter redelivered");
                writeln!(out, "{id}: delivered")?;
                done.delivered += 1;
            }
            Err(e) => {
                writeln!(out, "{id}: {e} (still parked)")?;
                done.failed += 1;
            }
        }
    }
    out.flush()?;
    Ok(done)
}

fn connect(settings: &Settings) -> Result<Backend, ExitCode> {
    // The public URL only matters for an embedded store bound to every address; a
    // loopback stand-in is enough to reach it from here.
    let site = public_url(settings, settings.bind).unwrap_or_else(|_| {
        crate::store::embedded::endpoint_url(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    });
    match Backend::connect(settings, &site) {
        Ok(backend) => Ok(backend),
        Err(e) => {
            eprintln!("signpost events: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn store_failed(settings: &Settings, e: &EventsError) -> ExitCode {
    eprintln!("signpost events: {e}");
    if settings.is_embedded() {
        eprintln!(
            "(with the embedded store, signpost must be running: `signpost serve` with the same --data-dir and --embedded-s3-bind)"
        );
    }
    ExitCode::FAILURE
}

pub async fn run(settings: &Settings, args: &EventsArgs) -> ExitCode {
    match &args.action {
        Some(EventsAction::DeadLetters) => run_dead_letters(settings).await,
        Some(EventsAction::Redeliver { id, .. }) => run_redeliver(settings, id.as_deref()).await,
        None => run_since(settings, args.since.as_deref()).await,
    }
}

async fn run_since(settings: &Settings, since: Option<&str>) -> ExitCode {
    let Some(raw) = since else {
        eprintln!(
            "signpost events: give --since TIME (the events of past uploads), `dead-letters` or `redeliver ID|--all`"
        );
        return ExitCode::from(2);
    };
    let since = match parse_since(raw) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("signpost events: {e}");
            return ExitCode::from(2);
        }
    };
    let backend = match connect(settings) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let client = S3Client::new(backend.target.clone());
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let result = write_events(
        &client,
        &backend.image_urls(settings),
        settings,
        since,
        Utc::now(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
    .await;
    match result {
        Ok(s) if s.failed == 0 => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!(
                "signpost events: {} upload(s) could not be read; their events are missing above",
                s.failed
            );
            ExitCode::FAILURE
        }
        Err(e) => store_failed(settings, &e),
    }
}

async fn run_dead_letters(settings: &Settings) -> ExitCode {
    let client = match connect(settings) {
        Ok(b) => S3Client::new(b.target.clone()),
        Err(code) => return code,
    };
    match write_dead_letters(&client, &mut std::io::stdout().lock()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => store_failed(settings, &e),
    }
}

async fn run_redeliver(settings: &Settings, id: Option<&str>) -> ExitCode {
    let Some(notify) = &settings.notify else {
        eprintln!(
            "signpost events redeliver: set --notify-url and --notify-secret (as for `signpost serve`)"
        );
        return ExitCode::from(2);
    };
    let backend = match connect(settings) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let client = S3Client::new(backend.target.clone());
    let deliverer = Deliverer::new(notify.url.clone(), notify.secret.clone())
        .with_image_urls(backend.image_urls(settings));
    let out = &mut std::io::stdout().lock();
    match redeliver(&client, &deliverer, &settings.prefix, id, out).await {
        Ok(r) if r.failed == 0 && r.missing == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => store_failed(settings, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_rfc3339() {
        assert_eq!(
            parse_since("2026-01-01T01:00:00+01:00").unwrap(),
            parse_since("2026-01-01T00:00:00Z").unwrap()
        );
        assert!(parse_since("2026-01-01").unwrap_err().contains("RFC 3339"));
        assert!(parse_since("yesterday").is_err());
    }
}
