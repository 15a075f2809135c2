//! The S3 glue: where the bucket is, presigned requests over awc with timeouts, and the
//! embedded s3s-fs store.

mod client;
pub mod embedded;
mod error;
pub mod multipart;
mod target;

pub use client::{ListedObject, Listing, ObjectHead, ObjectProbe, S3Client, presigned_get, strip_quotes};
pub use error::StoreError;
pub use target::StoreTarget;
