//! Delivery of confirmed uploads to the developer's API.

use actix_web::web;

use crate::web::State;

/// Start the background sweep when notifications are configured.
pub fn spawn(_state: &web::Data<State>) -> Option<actix_web::rt::task::JoinHandle<()>> {
    None
}
