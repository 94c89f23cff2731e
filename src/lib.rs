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
pub use client::{
    Client, ClientBuilder, CloseReason, DEFAULT_WS_URL, Event, Events, Publication, Recovery, State,
};
pub use connection::Backoff;
pub use error::{Error, ErrorKind};
pub use event::VkEvent;
pub use secret::Secret;
