//! The relay into NATS JetStream, and the way back out.
//!
//! A [`Relay`] follows VK channels with the connector and publishes every
//! publication as one JetStream message, whose body is the JSON object
//! `vklive tail --json` prints for it ([`ndjson`](crate::ndjson)). Several
//! relays given the same channels share them: each channel is owned through
//! a lease in a KV bucket ([`lease`]); when its owner dies, another relay
//! takes it over within the lease's TTL + 2 s and resumes from the newest
//! message of that channel in the stream, recovering the rest through VK's
//! history. [`Subscriber`] reads the stream back as the same
//! [`Event`](crate::Event)s a [`Client`](crate::Client) yields, alone or as
//! one of a fleet sharing a durable consumer. See `docs/relay.md`.
//!
//! ```no_run
//! # async fn run() -> Result<(), vklive_pubsub::relay::RelayError> {
//! use vklive_pubsub::Client;
//! use vklive_pubsub::relay::{NatsOptions, Relay, RelayChannel, RelayConfig};
//!
//! let config = RelayConfig::new(
//!     NatsOptions::new("nats://127.0.0.1:4222"),
//!     vec![RelayChannel::new("channel-chat:8845069")],
//! );
//! let relay = Relay::new(config, || Client::with_user_token("token"));
//! relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod config;
mod defaults;
mod error;
pub mod ids;
pub mod lease;
mod leases;
mod nats;
mod publisher;
pub mod subject;
mod subscriber;

use std::sync::Arc;

pub use config::{RelayChannel, RelayConfig, VkBuilder};
pub use defaults::{DEFAULT_ACK_WINDOW, DEFAULT_BUCKET, DEFAULT_LEASE_TTL, DEFAULT_STREAM};
pub use error::RelayError;
pub use nats::{NatsOptions, StreamSettings, redacted_url};
pub use subscriber::{Start, Subscriber};

use crate::client::ClientBuilder;

/// One relay process (see the [module](self) docs).
pub struct Relay {
    config: RelayConfig,
    vk: VkBuilder,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay of `config`'s channels; `vk` makes each VK connection's builder.
    pub fn new(
        config: RelayConfig,
        vk: impl Fn() -> ClientBuilder + Send + Sync + 'static,
    ) -> Relay {
        Relay {
            config,
            vk: Arc::new(vk),
        }
    }

    /// Runs until `shutdown` completes (then releases its leases, so that
    /// another relay takes over at once) or something fails for good: NATS
    /// unreachable at the start, the stream or bucket refused, the VK
    /// token rejected.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), RelayError> {
        let client = self.config.nats.connect().await?;
        let context = async_nats::jetstream::new(client.clone());
        let stream = nats::ensure_stream(&context, &self.config.stream).await?;
        let wanted = lease::Timing::new(self.config.lease_ttl);
        let store = nats::ensure_bucket(&context, &self.config.bucket, wanted.ttl).await?;
        // Keys live as long as the bucket says, whoever created it: all the
        // relays of a bucket must time their leases by it.
        let timing = match store.status().await.map(|status| status.max_age()) {
            Ok(ttl) if !ttl.is_zero() && ttl != wanted.ttl => {
                tracing::warn!(
                    bucket = %self.config.bucket,
                    ?ttl,
                    asked = ?wanted.ttl,
                    "the lease bucket exists with another TTL: using its TTL"
                );
                lease::Timing::new(ttl)
            }
            _ => wanted,
        };
        let id = relay_id();
        tracing::info!(relay = %id, channels = self.config.channels.len(), "relay started");
        let (leases, changes) = leases::spawn(leases::LeaseTask::new(
            id.clone(),
            timing,
            store,
            stream,
            self.config.channels.clone(),
        ));
        let publisher = publisher::Publisher::new(
            id,
            context,
            self.vk,
            leases.clone(),
            self.config.ack_window.max(1),
        );
        let outcome = publisher.run(changes, shutdown).await;
        leases.stop().await;
        // A flush waits for the server's answer, and while NATS is down
        // for the reconnect: bounded, or a stop request would hang then.
        if tokio::time::timeout(SHUTDOWN_FLUSH, client.flush())
            .await
            .is_err()
        {
            tracing::warn!("NATS did not confirm the last messages on the way out");
        }
        outcome
    }
}

/// How long a stopping relay waits for NATS to confirm what it sent last.
const SHUTDOWN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// A relay's id, the value of its lease keys: `<pid>-<hex>`, unique per
/// process (the pid tells an operator which process holds a channel).
fn relay_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let pid = std::process::id();
    let seed = format!("{pid}-{nanos}-{:p}", &nanos);
    format!("{pid}-{:x}", ids::fnv1a_128(seed.as_bytes()) >> 64)
}
