//! The caller's vocabulary: what [`Events`](crate::Events) hands out and
//! what a [`Client`](crate::Client) reports.

use std::sync::Arc;

use crate::error::Error;
use crate::event::VkEvent;

/// Something that happened on the connection: a publication, or a lifecycle
/// change. The stream ends after [`Event::Closed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A publication in a subscribed channel, in order.
    Publication(Publication),
    /// The connection is up (after the first connect and after every reconnect).
    Connected {
        /// Client id the server assigned.
        client: String,
    },
    /// The connection was lost; the connector reconnects with backoff.
    Disconnected {
        /// WebSocket close code, when the server sent one.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// A channel is subscribed (again).
    Subscribed {
        /// The channel.
        channel: String,
        /// Whether publications missed while away were recovered.
        recovery: Recovery,
        /// The channel's stream epoch, as the server reported it: it changes
        /// when the stream restarts (offsets then count from 1 again), so a
        /// position is `(epoch, offset)`. Empty when the server keeps no
        /// positions for the channel.
        epoch: String,
        /// The stream offset the server reported with it: its top offset,
        /// or for a recovery the offset the recovered publications follow
        /// (0 when the server keeps no positions).
        offset: u64,
    },
    /// Publications of `channel` may have been missed and could not be
    /// recovered (from the server's history, or for chat from the REST
    /// API). It stands where the loss happened: before the publications that
    /// follow it. See `docs/reliability.md`.
    Gap {
        /// The channel.
        channel: String,
        /// How many were missed, when stream offsets tell it; `None` when the
        /// server keeps no positions (the count is unknown and may be zero).
        missed: Option<u64>,
    },
    /// The server refused to subscribe a channel; it will not be retried.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// Centrifugo error code (103 permission denied, 106 limit exceeded,
        /// 107 for an invalid name), or 0 when the API refused its token request.
        code: u32,
        /// The server's message.
        reason: String,
    },
    /// A subscription ended: the server unsubscribed us with a terminal code,
    /// or [`Client::unsubscribe`](crate::Client::unsubscribe) was called (code 0).
    Unsubscribed {
        /// The channel.
        channel: String,
        /// Unsubscribe code (0 when asked for by this client).
        code: u32,
        /// The reason.
        reason: String,
    },
    /// Only with [`Overflow::Drop`]: the caller read too slowly and this many
    /// publications were dropped to keep memory within the budget.
    Lagged {
        /// Publications dropped since the last delivered event.
        dropped: u64,
    },
    /// The connection ended for good; nothing follows.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// A publication: where it came from and the decoded VK event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Publication {
    /// The channel it was published in.
    pub channel: Arc<str>,
    /// Its position in the channel's stream (0 when the channel keeps none,
    /// and for chat filled in from the REST API).
    pub offset: u64,
    /// The decoded event.
    pub event: VkEvent,
    /// Filled in from the REST API (`GET /v1/chat/messages`) after the
    /// link was down and the server could not recover the chat: it was not
    /// received live. Its order among the others is by message time and id.
    pub backfilled: bool,
}

impl Publication {
    /// A publication received live or recovered from the server's history.
    pub fn new(channel: Arc<str>, offset: u64, event: VkEvent) -> Publication {
        Publication {
            channel,
            offset,
            event,
            backfilled: false,
        }
    }
}

/// The recovery outcome of a (re)subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A first subscription: nothing to recover.
    NotRequested,
    /// Every publication missed while away was delivered (right after this event).
    Recovered,
    /// A resubscription after the link was down, and the server could not
    /// recover what was missed (or keeps no history at all). An
    /// [`Event::Gap`] follows unless the chat could be filled in from REST.
    Failed,
}

/// Why the connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Client::close`](crate::Client::close) was called, or the
    /// [`Events`](crate::Events) stream was dropped.
    Requested,
    /// A permanent failure: a rejected token, a terminal close code, a
    /// non-temporary connect error.
    Failed(Error),
}

/// The connection's state, as seen from a [`Client`](crate::Client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Fetching tokens, dialing, or waiting to retry.
    Connecting,
    /// Connected.
    Connected,
    /// Ended; see the final [`Event::Closed`].
    Closed,
}

/// The pool of connections behind a [`Client`](crate::Client), as
/// [`Client::pool_state`](crate::Client::pool_state) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// Every open or opening connection, oldest first.
    pub connections: Vec<ConnectionState>,
}

/// One connection of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionState {
    /// Its number (as in the `connection` span of its log lines).
    pub id: u64,
    /// Connecting or connected.
    pub state: State,
    /// Channels placed on it.
    pub channels_wanted: usize,
    /// Of those, the ones the server confirmed.
    pub channels_subscribed: usize,
    /// Channels it may carry (the configured limit, or less after a 106).
    pub limit: usize,
}

/// What to do when the caller reads more slowly than events arrive and the
/// delivery budget is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop reading the socket until the caller catches up (the default):
    /// nothing is dropped. If the server then gives up on the connection,
    /// the connector reconnects once there is room and recovers what the
    /// server still has; anything else is reported as [`Event::Gap`].
    #[default]
    Wait,
    /// Drop new publications and report their count as [`Event::Lagged`]:
    /// for callers who prefer fresh events to complete ones.
    Drop,
}
