//! The signing core: S3 POST Object policies, their SigV4 and SigV2 signatures, and the
//! ordered form fields a browser posts with them.
//!
//! Pure logic: no web framework, no I/O. Everything takes the current time as an argument,
//! so the AWS documentation's vectors can be reproduced byte for byte.

mod document;
mod form;
pub mod sigv2;
pub mod sigv4;
pub mod time;
mod value;

pub use document::{Condition, PostPolicy};
#[cfg(test)]
pub(crate) use form::is_plain_name;
pub use form::{PostForm, SignedForm, Signer, Version, all_fields_covered, is_exempt};
pub use value::{Encoded, FieldValue};
