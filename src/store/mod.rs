//! The S3 glue: where the bucket is, presigned requests over awc with timeouts, the
//! confirmation of uploads with their records and thumbnails, image URLs, and the embedded
//! s3s-fs store.

mod backend;
mod client;
mod confirm;
pub mod embedded;
mod error;
pub mod links;
pub mod multipart;
pub mod presigned;
pub mod records;
mod target;
pub mod thumbnails;
mod urls;

pub use backend::{Backend, BackendError, public_url};
pub use client::{
    ListedObject, Listing, ObjectHead, ObjectProbe, S3Client, presigned_get, strip_quotes,
};
pub use confirm::{
    ConfirmError, OnReject, PROBE_BYTES, RejectionKind, Verifier, confirm, parse_key, valid_etag,
};
pub use error::StoreError;
pub use records::Confirmed;
pub use target::StoreTarget;
pub use thumbnails::ThumbnailRef;
pub use urls::{ImageUrls, ThumbnailLink};
