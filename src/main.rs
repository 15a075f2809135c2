use std::process::ExitCode;

// mimalloc: signing allocates many small strings, which glibc's malloc serves slowly under
// concurrent load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use signpost::config::{Cli, Command, LogFormat, Settings};
use signpost::upload::Clock;
use signpost::web::startup::Application;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env(cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signpost: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Presign(args) => {
            match signpost::cli::presign::presign(&settings, &args, Clock::System) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("signpost presign: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Cors(args) => {
            actix_web::rt::System::new().block_on(signpost::cli::cors::run(&settings, &args))
        }
        Command::Check => {
            actix_web::rt::System::new().block_on(signpost::cli::check::run(&settings))
        }
        Command::Events(args) => {
            actix_web::rt::System::new().block_on(signpost::cli::events::run(&settings, &args))
        }
        Command::Token(args) => signpost::cli::identity::token(&settings, &args),
        Command::Link(args) => {
            actix_web::rt::System::new().block_on(signpost::cli::identity::link(&settings, &args))
        }
    }
}

fn serve(settings: Settings) -> ExitCode {
    let format = settings.log_format;
    let _guard = signpost::telemetry::init(format);
    let result = actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        match app.embedded_addr() {
            Some(s3) => tracing::info!(
                site = %app.public_url(),
                embedded_s3 = %format!("http://{s3}"),
                "signpost is serving; the embedded S3 store is running"
            ),
            None => tracing::info!(site = %app.public_url(), "signpost is serving"),
        }
        app.run_until_stopped()
            .await
            .map_err(|e| signpost::web::startup::StartupError::Config(e.to_string()))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Once: a JSON log line for log collectors, else a sentence on stderr.
        Err(e) => {
            match format {
                LogFormat::Json => tracing::error!(error = %e, "signpost could not start"),
                LogFormat::Text => eprintln!("signpost: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}
