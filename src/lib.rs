//! signpost: browser uploads straight into an S3 bucket, signed by the server.
//!
//! - [`policy`]: the signing core (POST policies, SigV4, SigV2). Pure.
//! - [`upload`]: the upload domain (validation, keys, presigning). Pure.
//! - [`imaging`]: what a stored file really is (type, dimensions, structure). Pure.
//! - [`identity`]: who may upload (proxy users, tokens, links, anonymous). Pure.
//! - [`store`]: the S3 glue (presigned requests over awc, the embedded s3s-fs store).
//! - [`web`]: the actix-web application, its pages, fragments, API and errors.
//! - [`sweep`]: the background confirmation of every upload, and the events' delivery.
//! - [`notify`]: the events of confirmed uploads, signed, for the developer's API.
//! - [`cli`]: the subcommands besides `serve`.

pub mod cli;
pub mod config;
pub mod identity;
pub mod imaging;
pub mod notify;
pub mod policy;
pub mod secret;
pub mod store;
pub mod sweep;
pub mod telemetry;
#[doc(hidden)]
pub mod testdata;
pub mod upload;
pub mod web;
