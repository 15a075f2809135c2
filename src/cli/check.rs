//! `signpost check` (stub, to be built).

use std::process::ExitCode;

use crate::config::Settings;

pub async fn run(_settings: &Settings) -> ExitCode {
    eprintln!("signpost check: not implemented yet");
    ExitCode::FAILURE
}
