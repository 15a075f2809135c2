//! `signpost events` (stub, to be built).

use std::process::ExitCode;

use crate::config::Settings;

pub async fn run(_settings: &Settings, _args: &crate::config::EventsArgs) -> ExitCode {
    eprintln!("signpost events: not implemented yet");
    ExitCode::FAILURE
}
