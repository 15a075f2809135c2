//! Image bytes, pure and CPU-bound (no I/O): what a stored file really is ([`verify`]).
//! Callers run it off the async workers, a bounded number at a time.

mod verify;

pub use verify::{DecodeLimits, Verified, VerifyError, verify};
