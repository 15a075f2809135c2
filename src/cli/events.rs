//! `signpost events --since TIME`: the events signpost would deliver for the uploads signed
//! at or after TIME, one JSON object per line, newest first. For backfills and debugging:
//! it is read-only (a file that fails verification is reported, not deleted) and does not
//! touch the delivery checkpoint.

use std::io::Write;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use crate::config::{EventsArgs, Settings};
use crate::notify::Event;
use crate::store::{
    Backend, ConfirmError, ImageUrls, OnReject, S3Client, StoreError, Verifier, confirm, public_url,
};
use crate::sweep::scan::Scanner;

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

pub async fn run(settings: &Settings, args: &EventsArgs) -> ExitCode {
    let since = match parse_since(&args.since) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("signpost events: {e}");
            return ExitCode::from(2);
        }
    };
    // The public URL only matters for an embedded store bound to every address; a
    // loopback stand-in is enough to reach it from here.
    let site = public_url(settings, settings.bind).unwrap_or_else(|_| {
        crate::store::embedded::endpoint_url(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
    });
    let backend = match Backend::connect(settings, &site) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("signpost events: {e}");
            return ExitCode::FAILURE;
        }
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
        Err(e) => {
            eprintln!("signpost events: {e}");
            if settings.is_embedded() {
                eprintln!(
                    "(with the embedded store, signpost must be running: `signpost serve` with the same --data-dir and --embedded-s3-bind)"
                );
            }
            ExitCode::FAILURE
        }
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
