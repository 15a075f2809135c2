//! The subcommands besides `serve`.

pub mod presign;
