//! The connection's tunables and their sane ranges.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::backoff::Backoff;
use super::channel::Position;
use crate::event::ChatKey;

/// Tunables of the connection; set through [`ClientBuilder`](crate::ClientBuilder),
/// which clamps each to a sane range (see [`Config::clamped`]).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) backoff: Backoff,
    pub(crate) ping_margin: Duration,
    pub(crate) command_timeout: Duration,
    /// How long the connect reply may take: below Centrifugo's 10 s stale
    /// timeout, so that we give up (and retry) before the server closes
    /// with the terminal 3502.
    pub(crate) connect_reply_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    /// How long one write to the socket may take before the link is
    /// declared dead.
    pub(crate) write_timeout: Duration,
    /// How long a link must stay up for the reconnect backoff to start over.
    pub(crate) healthy_after: Duration,
    /// How long live chat waits for a fill-in from REST it must follow.
    pub(crate) backfill_hold: Duration,
    /// Channels one connection carries at most (lowered per connection by
    /// the server's 106).
    pub(crate) channels_per_connection: usize,
    /// New connections of the pool open at most one per this interval.
    pub(crate) connection_pace: Duration,
    /// Stream positions (`epoch`, `offset`) to recover from at the first
    /// subscribe of these channels ([`ClientBuilder::resume`](crate::ClientBuilder::resume)).
    pub(crate) resume_from: Arc<HashMap<String, Position>>,
    /// The newest chat message an earlier reader delivered, per chat
    /// channel: a fill-in from REST continues after it
    /// ([`ClientBuilder::resume_chat`](crate::ClientBuilder::resume_chat)).
    pub(crate) resume_chat: Arc<HashMap<String, ChatKey>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: Backoff::default(),
            ping_margin: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
            connect_reply_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            healthy_after: Duration::from_secs(30),
            backfill_hold: Duration::from_secs(5),
            channels_per_connection: 128,
            connection_pace: Duration::from_millis(100),
            resume_from: Arc::default(),
            resume_chat: Arc::default(),
        }
    }
}

/// Shortest timeout accepted for any setting.
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// Longest timeout or margin accepted for any setting.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl Config {
    /// Every duration within `[10 ms, 1 h]`, backoff `min <= max`, and the
    /// connect reply timeout no longer than the command timeout: so that no
    /// setting can overflow a deadline or disable a safeguard.
    pub(crate) fn clamped(mut self) -> Config {
        let clamp = |value: Duration| value.clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        self.backoff.max = clamp(self.backoff.max);
        self.backoff.min = self
            .backoff
            .min
            .clamp(Duration::from_millis(1), self.backoff.max);
        self.ping_margin = self.ping_margin.min(MAX_TIMEOUT);
        self.command_timeout = clamp(self.command_timeout);
        self.connect_reply_timeout = clamp(self.connect_reply_timeout).min(self.command_timeout);
        self.connect_timeout = clamp(self.connect_timeout);
        self.write_timeout = clamp(self.write_timeout);
        self.healthy_after = self.healthy_after.min(MAX_TIMEOUT);
        self.backfill_hold = self.backfill_hold.min(MAX_TIMEOUT);
        self.channels_per_connection = self.channels_per_connection.max(1);
        self.connection_pace = self.connection_pace.min(MAX_TIMEOUT);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_settings_are_clamped_to_sane_ranges() {
        let config = Config {
            backoff: Backoff {
                min: Duration::MAX,
                max: Duration::MAX,
            },
            ping_margin: Duration::MAX,
            command_timeout: Duration::MAX,
            connect_reply_timeout: Duration::ZERO,
            connect_timeout: Duration::ZERO,
            write_timeout: Duration::MAX,
            healthy_after: Duration::MAX,
            backfill_hold: Duration::MAX,
            channels_per_connection: 0,
            connection_pace: Duration::MAX,
            resume_from: Arc::default(),
            resume_chat: Arc::default(),
        }
        .clamped();
        assert_eq!(config.backoff.max, MAX_TIMEOUT);
        assert_eq!(config.backoff.min, MAX_TIMEOUT);
        assert_eq!(config.ping_margin, MAX_TIMEOUT);
        assert_eq!(config.command_timeout, MAX_TIMEOUT);
        assert_eq!(config.connect_reply_timeout, MIN_TIMEOUT);
        assert_eq!(config.connect_timeout, MIN_TIMEOUT);
        assert_eq!(config.write_timeout, MAX_TIMEOUT);
        // Far deadlines stay representable.
        let now = std::time::Instant::now();
        let _ = now + config.ping_margin + config.command_timeout + config.healthy_after;
    }

    #[test]
    fn the_connect_reply_timeout_stays_below_centrifugos_stale_timeout() {
        let config = Config::default().clamped();
        assert!(config.connect_reply_timeout < Duration::from_secs(10));
    }
}
