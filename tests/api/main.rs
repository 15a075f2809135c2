//! signpost's integration tests, in one test binary: `cargo test --test api`.
//!
//! Each module covers one part of the service; `helpers` holds what they share (a signpost
//! started on loopback with its embedded store, a fake store, a headless browser). Filter by
//! module path, e.g. `cargo test --test api pages::` or `cargo test --test api hostile::`.

mod helpers;

mod a11y;
mod browser;
mod cli;
mod confirmation;
mod embedded_store;
mod faults;
mod forgiving;
mod gallery;
mod hostile;
mod identity;
mod notify;
mod page;
mod pages;
mod photos;
mod presign_api;
mod process;
mod scale_out;
mod screenshots;
mod sign_request;
mod store_upload;
mod thumbnails;
mod uppy;
mod vectors;
