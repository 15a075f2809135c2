//! Image bytes, pure and CPU-bound (no I/O): what a stored file really is ([`verify`]), and
//! its thumbnails, made from the pixels verification decoded ([`thumbnails`], from the
//! `signpost-thumbnail` crate in `crates/thumbnail`). Callers run them off the async
//! workers, a bounded number at a time.

mod verify;

pub use signpost_thumbnail::{
    Decoded, SIZES, Thumbnail, ThumbnailError, ThumbnailFormat, thumbnails,
};
pub use verify::{DecodeLimits, Verified, VerifyError, verify};
