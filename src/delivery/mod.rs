//! What reaches the caller, and the road it travels.
//!
//! - [`vocabulary`]: the caller's words ([`Event`], [`Publication`],
//!   [`Recovery`], [`CloseReason`], [`State`], [`Overflow`], ...);
//! - [`lazy`]: publications handed over undecoded ([`LazyPublication`]);
//! - [`payload`]: one [`Delivery`] (an event, or a publication whose payload
//!   is decoded in the caller's task) and what it counts against the budget;
//! - [`batch`]: the [`Outbox`] where the session's deliveries wait for the
//!   actor, the one place a frame's publications join a [`Batch`];
//! - [`copy_out`]: the one rule for when a publication stops sharing its
//!   received frame;
//! - [`queue`]: the queue from the actor to the [`Events`](crate::Events)
//!   stream, bounded in bytes: past its budget it tells the actor to stop
//!   reading the socket, or drops under [`Overflow::Drop`].
//!
//! This module imports nothing else of the crate but the leaf types it
//! carries (`event`, `error`, `protocol::Frame`), so every other module may
//! use it.

mod batch;
mod copy_out;
mod lazy;
mod payload;
mod queue;
mod vocabulary;

pub(crate) use batch::{Outbox, Queued};
pub use lazy::{LazyEvent, LazyPublication};
pub(crate) use payload::{Delivery, Payload, RawPublication};
pub(crate) use queue::{Receiver, Sender, queue};
pub use vocabulary::{
    CloseReason, ConnectionState, Event, Overflow, PoolState, Publication, Recovery, State,
};
