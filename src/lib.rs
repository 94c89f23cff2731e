//! # vklive-pubsub
//!
//! The real-time side of VK Video Live for Rust: fetch the pubsub tokens from
//! the DevAPI, hold a Centrifugo v2 WebSocket open for days, and hand over a
//! `Stream` of typed events.
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
pub use client::{
    Client, ClientBuilder, CloseReason, DEFAULT_WS_URL, Event, Events, Publication, Recovery, State,
};
pub use connection::Backoff;
pub use error::{Error, ErrorKind};
pub use event::VkEvent;
pub use secret::Secret;
