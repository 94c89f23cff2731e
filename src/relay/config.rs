//! What a relay relays, where to, and its lease's timing.

use std::sync::Arc;
use std::time::Duration;

use super::defaults::{DEFAULT_ACK_WINDOW, DEFAULT_BUCKET, DEFAULT_LEASE_TTL};
use super::nats::{NatsOptions, StreamSettings};
use crate::client::ClientBuilder;

/// A channel to relay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayChannel {
    /// The pubsub channel name.
    pub name: String,
    /// For a public chat, its VK channel's slug: chat missed beyond the
    /// server's history is filled in from REST.
    pub chat_slug: Option<String>,
}

impl RelayChannel {
    /// A channel relayed as it is.
    pub fn new(name: impl Into<String>) -> RelayChannel {
        RelayChannel {
            name: name.into(),
            chat_slug: None,
        }
    }

    /// The public chat of the VK channel `slug`.
    pub fn chat(name: impl Into<String>, slug: impl Into<String>) -> RelayChannel {
        RelayChannel {
            name: name.into(),
            chat_slug: Some(slug.into()),
        }
    }
}

/// What a [`Relay`](super::Relay) relays, where to, and its lease's timing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RelayConfig {
    /// The NATS server.
    pub nats: NatsOptions,
    /// The stream (created when missing).
    pub stream: StreamSettings,
    /// The KV bucket of the leases (default [`DEFAULT_BUCKET`]).
    pub bucket: String,
    /// The lease's TTL (default [`DEFAULT_LEASE_TTL`], at least 1 s).
    pub lease_ttl: Duration,
    /// Publications waiting for their ack at most (default
    /// [`DEFAULT_ACK_WINDOW`]); past it the relay stops reading VK.
    pub ack_window: usize,
    /// The channels, the same list on every relay.
    pub channels: Vec<RelayChannel>,
}

impl RelayConfig {
    /// The defaults, for `channels` through `nats`.
    pub fn new(nats: NatsOptions, channels: Vec<RelayChannel>) -> RelayConfig {
        RelayConfig {
            nats,
            stream: StreamSettings::default(),
            bucket: DEFAULT_BUCKET.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
            ack_window: DEFAULT_ACK_WINDOW,
            channels,
        }
    }
}

/// Makes the [`ClientBuilder`] of each VK connection (credentials, URLs);
/// the relay adds the channels.
pub type VkBuilder = Arc<dyn Fn() -> ClientBuilder + Send + Sync>;
