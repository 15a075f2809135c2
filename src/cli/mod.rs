//! The subcommands besides `serve`. Each returns the process's exit code.

pub mod check;
pub mod cors;
pub mod events;
pub mod identity;
pub mod presign;
