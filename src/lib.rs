#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod client;
mod connection;
mod delivery;
pub mod error;
pub mod event;
mod plaintext;
pub mod protocol;
mod secret;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use auth::{Authorization, Credentials};

/// Whether a log line from a dependency may carry a token: `tungstenite`,
/// the WebSocket library underneath, logs every frame's payload at `trace`,
/// and the `connect` frame carries the connection token. This crate's own
/// logs never contain a token at any level; filter these out in your
/// subscriber if you log dependencies at `trace`:
///
/// ```
/// use tracing_subscriber::filter::{filter_fn, FilterExt};
/// use tracing_subscriber::prelude::*;
/// let wanted = tracing_subscriber::EnvFilter::new("trace");
/// let safe = filter_fn(|metadata| !vklive_pubsub::may_contain_tokens(metadata));
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::fmt::layer().with_filter(wanted.and(safe)))
///     .init();
/// ```
pub fn may_contain_tokens(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() == tracing::Level::TRACE && metadata.target().starts_with("tungstenite")
}
pub use client::{Client, ClientBuilder, DEFAULT_DELIVERY_BUDGET, DEFAULT_WS_URL, Events};
pub use connection::Backoff;
pub use delivery::{
    CloseReason, ConnectionState, Event, Overflow, PoolState, Publication, Recovery, State,
};
pub use error::{Error, ErrorKind};
pub use event::VkEvent;
pub use secret::Secret;
