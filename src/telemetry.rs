//! Structured logs with `tracing`: text or JSON lines on stdout, written by a background
//! thread so a slow terminal never slows a request. `RUST_LOG` overrides the level.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global subscriber. Keep the guard alive until exit: dropping it flushes.
pub fn init(format: LogFormat) -> WorkerGuard {
    // s3s logs every refused request (a bad signature, an expired form) at error level
    // from `s3s::ops`: the client gets that answer from the store itself, so by default
    // those lines are not ours to print. `RUST_LOG=info,s3s=debug` brings them back.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,s3s::ops=off"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Buffered: the worker thread writes a whole batch of lines per system call and
        // flushes whenever the queue runs empty.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(writer);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_target(false).try_init(),
    };
    if let Err(e) = result {
        eprintln!("signpost: logging is already set up ({e})");
    }
    guard
}
