//! The connection: a state machine that makes every protocol decision
//! ([`session`]) and the actor that does its I/O ([`actor`]).
//!
//! The actor is the one task that owns the WebSocket. It feeds the session
//! what happens (frames, the caller's commands, token and REST answers, the
//! socket's end, the time) and carries out what the session asks (fetch
//! tokens, dial, send frames, close) and hands the session's deliveries to
//! the caller through the budgeted queue of [`crate::delivery`].

mod actor;
mod backfill;
mod backoff;
mod channel;
mod command;
mod config;
mod home;
mod policy;
mod pool;
mod session;
mod tokens;

pub(crate) use actor::Actor;
pub use backoff::Backoff;
pub(crate) use channel::Position;
pub(crate) use command::{Command, Order};
pub(crate) use config::Config;
pub(crate) use home::{on_own_thread, spawn_on_own_thread};
