//! Delivery of confirmed uploads to the developer's API (`--notify-url`).
//!
//! The bucket is the queue: the background sweep ([`crate::sweep`]) confirms each new
//! upload and POSTs one signed JSON [`Event`] per confirmed upload, at least once.
//!
//! - [`event`]: the event body and its stable id (pure);
//! - [`signature`]: the `Signpost-Signature` header, and how a receiver verifies it (pure);
//! - [`delivery`]: one HTTP attempt, and the backoff between attempts;
//! - [`outbox`]: events that cannot be found in the bucket (deletions), queued there;
//! - [`dead_letter`]: events that kept failing, parked in the bucket.

pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod outbox;
pub mod signature;

pub use event::{Event, EventType, deleted_event_id, event_id};
pub use signature::{EVENT_ID_HEADER, SIGNATURE_HEADER};
