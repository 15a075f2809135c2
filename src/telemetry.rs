//! Structured logs with `tracing`: text or JSON lines on stdout, written by a background
//! thread so a slow terminal never slows a request. `RUST_LOG` overrides the level.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// s3s logs every refused request (a bad signature, an expired form) at error level from
/// `s3s::ops`: the client gets that answer from the store itself, so by default those lines
/// are not ours to print. `RUST_LOG=info,s3s=debug` brings them back.
const DEFAULT_DIRECTIVES: &str = "info,s3s::ops=off";

/// The filter layer for these directives: exactly one of the two is set.
///
/// `target=level` lists, the default and most `RUST_LOG`s, go to `Targets`, which decides once
/// per call site. Span and field directives (`[span{field=value}]=debug`) need `EnvFilter`,
/// which takes a read lock on a map shared by every worker each time a span is entered, left
/// or closed: on every request.
fn filter_for(directives: &str) -> (Option<Targets>, Option<EnvFilter>) {
    // What EnvFilter cannot read falls back to the default, as it always has.
    let (directives, env) = match EnvFilter::try_new(directives) {
        Ok(env) => (directives, env),
        Err(_) => (DEFAULT_DIRECTIVES, EnvFilter::new(DEFAULT_DIRECTIVES)),
    };
    // Span and field directives are the ones written with brackets and braces.
    if directives.contains(['[', ']', '{', '}']) {
        return (None, Some(env));
    }
    // EnvFilter skips empty directives (`info,`, or an empty RUST_LOG: nothing at all);
    // Targets would read each as "errors only".
    let listed: Vec<&str> = directives.split(',').filter(|d| !d.is_empty()).collect();
    if listed.is_empty() {
        return (Some(Targets::new()), None);
    }
    match listed.join(",").parse::<Targets>() {
        Ok(targets) => (Some(targets), None),
        Err(_) => (None, Some(env)),
    }
}

/// Install the global subscriber. Keep the guard alive until exit: dropping it flushes.
pub fn init(format: LogFormat) -> WorkerGuard {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_DIRECTIVES.to_owned());
    let (targets, env) = filter_for(&directives);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Buffered: the worker thread writes a whole batch of lines per system call and
        // flushes whenever the queue runs empty.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    use std::io::IsTerminal;
    let ansi = std::io::stdout().is_terminal();
    // An absent layer lets everything through; only one of the two is set.
    let registry = tracing_subscriber::registry().with(targets).with(env);
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
    use tracing_subscriber::filter::LevelFilter;

    use super::*;

    fn targets(directives: &str) -> Targets {
        match filter_for(directives) {
            (Some(t), None) => t,
            other => panic!("{directives}: {other:?}"),
        }
    }

    #[test]
    fn target_lists_are_filtered_without_env_filter() {
        let t = targets(DEFAULT_DIRECTIVES);
        assert!(t.would_enable("signpost::http", &Level::INFO));
        assert!(!t.would_enable("signpost::http", &Level::DEBUG));
        assert!(!t.would_enable("s3s::ops", &Level::ERROR));
        assert!(t.would_enable("s3s::service", &Level::INFO));
        targets("trace");
        targets("warn,s3s=debug");
        let t = targets("info,signpost::http=debug");
        assert!(t.would_enable("signpost::http", &Level::DEBUG));
        assert!(!t.would_enable("signpost::web", &Level::DEBUG));
    }

    #[test]
    fn span_directives_go_to_env_filter_and_garbage_to_the_default() {
        let (None, Some(e)) = filter_for("info,[request{request_id=abc}]=trace") else {
            panic!("span directives need EnvFilter");
        };
        assert_eq!(
            tracing_subscriber::layer::Filter::<tracing_subscriber::Registry>::max_level_hint(&e),
            Some(LevelFilter::TRACE)
        );
        // The README's example.
        assert!(matches!(
            filter_for("info,[request]=debug"),
            (None, Some(_))
        ));
        // What EnvFilter cannot read falls back to the default, as before.
        let t = targets("info,[unclosed=");
        assert!(t.would_enable("signpost::http", &Level::INFO));
        assert!(!t.would_enable("s3s::ops", &Level::ERROR));
    }

    /// Every level of a few targets: what a subscriber with this filter lets through.
    fn enabled(filter: impl tracing_subscriber::Layer<Registry> + Send + Sync) -> Vec<bool> {
        macro_rules! probe {
            ($($target:literal),*) => {
                vec![$(
                    tracing::event_enabled!(target: $target, Level::ERROR),
                    tracing::event_enabled!(target: $target, Level::WARN),
                    tracing::event_enabled!(target: $target, Level::INFO),
                    tracing::event_enabled!(target: $target, Level::DEBUG),
                    tracing::event_enabled!(target: $target, Level::TRACE),
                )*]
            };
        }
        tracing::subscriber::with_default(Registry::default().with(filter), || {
            probe!(
                "signpost::http",
                "signpost::web",
                "s3s::ops",
                "s3s::service",
                "other"
            )
        })
    }

    /// Targets stands in for EnvFilter only where both let the same events through.
    #[test]
    fn targets_enable_what_env_filter_enables() {
        for directives in [
            DEFAULT_DIRECTIVES,
            "",
            ",",
            "info,",
            ",warn,,s3s=debug,",
            "signpost",
            "signpost::http",
            "INFO",
            "5",
            "off",
            "debug,s3s=warn",
            "s3s::ops=off,info",
            "info,signpost=trace,signpost::web=warn",
        ] {
            let (Some(targets), None) = filter_for(directives) else {
                panic!("{directives:?} is a target list");
            };
            let env = EnvFilter::try_new(directives).expect("EnvFilter reads it");
            assert_eq!(enabled(targets), enabled(env), "{directives:?}");
        }
    }
}
