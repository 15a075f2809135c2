//! Structured logs with `tracing`: text or JSON lines on stdout, written by a background
//! thread so a slow terminal never slows a request. `RUST_LOG` overrides the level.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// s3s logs every refused request (a bad signature, an expired form) at error level from
/// `s3s::ops`: the client gets that answer from the store itself, so by default those lines
/// are not ours to print. `RUST_LOG=info,s3s=debug` brings them back.
pub const DEFAULT_DIRECTIVES: &str = "info,s3s::ops=off";

/// The filter for `directives`; what it cannot read falls back to the default.
pub fn filter(directives: &str) -> EnvFilter {
    EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(DEFAULT_DIRECTIVES))
}

/// Install the global subscriber. Keep the guard alive until exit: dropping it flushes.
pub fn init(format: LogFormat) -> WorkerGuard {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_DIRECTIVES.to_owned());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // The writer thread writes a batch of lines per system call, not one each.
        .finish(std::io::BufWriter::new(std::io::stdout()));
    use std::io::IsTerminal;
    let ansi = std::io::stdout().is_terminal();
    let registry = tracing_subscriber::registry().with(filter(&directives));
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("signpost: logging is already set up ({e})");
    }
    guard
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing_subscriber::Registry;

    use super::*;

    /// signpost's info and debug lines, s3s's refusals, and the rest of s3s at info.
    fn probe(directives: &str) -> [bool; 4] {
        tracing::subscriber::with_default(Registry::default().with(filter(directives)), || {
            [
                tracing::event_enabled!(target: "signpost::http", Level::INFO),
                tracing::event_enabled!(target: "signpost::http", Level::DEBUG),
                tracing::event_enabled!(target: "s3s::ops", Level::ERROR),
                tracing::event_enabled!(target: "s3s::service", Level::INFO),
            ]
        })
    }

    #[test]
    fn the_default_keeps_our_info_and_silences_the_stores_refusals() {
        assert_eq!(probe(DEFAULT_DIRECTIVES), [true, false, false, true]);
        assert_eq!(probe("info,signpost::http=debug"), [true, true, true, true]);
        assert_eq!(probe("info,[request]=debug"), [true, false, true, true]);
        // What EnvFilter cannot read falls back to the default.
        assert_eq!(probe("info,[unclosed="), probe(DEFAULT_DIRECTIVES));
    }
}
