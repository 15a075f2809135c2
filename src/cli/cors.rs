//! `signpost cors` (stub, to be built).

use std::process::ExitCode;

use crate::config::Settings;

pub async fn run(_settings: &Settings, _args: &crate::config::CorsArgs) -> ExitCode {
    eprintln!("signpost cors: not implemented yet");
    ExitCode::FAILURE
}
