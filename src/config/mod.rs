//! Configuration: the command line ([`cli`]: flags with environment fallbacks, the standard
//! AWS names where one exists), validated once at start into one typed [`Settings`]. Every
//! default is written once, in [`DEFAULTS`].

mod cli;
mod defaults;
mod duration;
mod settings;

pub use cli::{
    CheckpointArg, Cli, Command, Config, CorsArgs, EventsAction, EventsArgs, GalleryArg,
    LinkAction, LinkArgs, LogFormat, PresignArgs, SignatureArg, TokenAction, TokenArgs,
};
pub use defaults::{DEFAULTS, Defaults};
pub use duration::parse_duration;
pub use settings::{ConfigError, IdentitySettings, NotifySettings, Settings, StoreSettings};
