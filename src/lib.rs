#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
mod client;
mod connection;
pub mod error;
pub mod event;
pub mod protocol;
mod secret;

#[cfg(feature = "emulator")]
pub mod emulator;

pub use auth::{Authorization, Credentials};

/// A `tracing` filter directive to add to your subscriber: `tungstenite`, the
/// WebSocket library underneath, logs every frame's payload at `trace`, and the
/// `connect` frame carries the connection token. This crate's own logs never
/// contain a token at any level.
///
/// ```
/// let filter = tracing_subscriber::EnvFilter::new("trace")
///     .add_directive(vklive_pubsub::SAFE_TUNGSTENITE_LOG.parse().unwrap());
/// # let _ = filter;
/// ```
pub const SAFE_TUNGSTENITE_LOG: &str = "tungstenite=debug";
pub use client::{
    Client, ClientBuilder, CloseReason, DEFAULT_WS_URL, Event, Events, Publication, Recovery, State,
};
pub use connection::Backoff;
pub use error::{Error, ErrorKind};
pub use event::VkEvent;
pub use secret::Secret;
