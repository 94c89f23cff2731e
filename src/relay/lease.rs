//! Lease decisions: when to renew, how long a lease may be trusted, which
//! channels look free, and how many channels are this relay's fair share.
//! Pure: the relay's lease task feeds it what the KV bucket said and when.
//!
//! A lease is a key in the bucket whose `max_age` is the lease's TTL: the
//! owner rewrites it (`update` on its revision) every TTL/3, so it never
//! expires while the owner lives; once the owner stops, the key expires
//! TTL after its last write and another relay's `create` succeeds.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::subject::{LEASE_KEY_PREFIX, PRESENCE_KEY_PREFIX};

/// The lease's timing, from its TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a key lives after its last write (the bucket's `max_age`).
    pub ttl: Duration,
}

impl Timing {
    /// A timing for `ttl` (at least 1 s: the KV's expiry runs by the second).
    pub fn new(ttl: Duration) -> Timing {
        Timing {
            ttl: ttl.max(Duration::from_secs(1)),
        }
    }

    /// Renew every TTL/3: two renewals may fail before the key expires.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How often the lease task looks at the bucket: often enough to take a
    /// lapsed channel over well within TTL + 2 s.
    pub fn tick(&self) -> Duration {
        (self.ttl / 6).clamp(Duration::from_millis(100), Duration::from_millis(500))
    }

    /// Until when a lease whose write was *sent* at `sent_at` (and
    /// succeeded) may be trusted: the key cannot expire before `sent_at +
    /// TTL`; a sixth of the TTL is kept as a margin for clocks and the
    /// server's expiry. A process frozen past it publishes nothing more.
    pub fn valid_until(&self, sent_at: Instant) -> Instant {
        sent_at + self.ttl - self.ttl / 6
    }

    /// Whether a key last seen written at `seen_at` has expired by `now`
    /// (no write for a whole TTL).
    pub fn lapsed(&self, seen_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(seen_at) >= self.ttl
    }
}

/// The fair share of `channels` among `relays` live relays: rounded up, so
/// that the shares always cover every channel.
///
/// ```
/// use vklive_pubsub::relay::lease::fair_share;
/// assert_eq!(fair_share(300, 3), 100);
/// assert_eq!(fair_share(300, 2), 150);
/// assert_eq!(fair_share(10, 3), 4);
/// assert_eq!(fair_share(10, 0), 10);
/// ```
pub fn fair_share(channels: usize, relays: usize) -> usize {
    channels.div_ceil(relays.max(1))
}

/// One key as last seen in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Who wrote it (a relay id).
    pub owner: String,
    /// Its revision.
    pub revision: u64,
    /// When this relay saw it written.
    pub at: Instant,
}

/// What this relay knows of the bucket, from its watcher.
#[derive(Debug, Default)]
pub struct Board {
    keys: HashMap<String, Seen>,
}

impl Board {
    /// A key was written (`put`, `create`, `update`).
    pub fn written(&mut self, key: &str, owner: &str, revision: u64, at: Instant) {
        let seen = Seen {
            owner: owner.to_owned(),
            revision,
            at,
        };
        self.keys.insert(key.to_owned(), seen);
    }

    /// A key was deleted or purged.
    pub fn removed(&mut self, key: &str) {
        self.keys.remove(key);
    }

    /// The key as last seen.
    pub fn get(&self, key: &str) -> Option<&Seen> {
        self.keys.get(key)
    }

    /// Relays alive at `now`: presence keys written within a TTL, this
    /// relay counted whatever the board says.
    pub fn live_relays(&self, me: &str, timing: Timing, now: Instant) -> usize {
        let others = self
            .keys
            .iter()
            .filter(|(key, seen)| {
                key.starts_with(PRESENCE_KEY_PREFIX)
                    && seen.owner != me
                    && !timing.lapsed(seen.at, now)
            })
            .count();
        others + 1
    }

    /// Whether the lease `key` looks free at `now`: never seen, removed, or
    /// not written for a whole TTL.
    pub fn looks_free(&self, key: &str, timing: Timing, now: Instant) -> bool {
        self.keys
            .get(key)
            .is_none_or(|seen| timing.lapsed(seen.at, now))
    }

    /// Lease keys this relay wrote last but no longer holds (it lost them
    /// while NATS was away): it may take them back with `update` on that
    /// revision, which fails if anyone wrote since.
    pub fn still_mine<'a>(
        &'a self,
        me: &'a str,
        held: &'a HashSet<String>,
    ) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.keys.iter().filter_map(move |(key, seen)| {
            (key.starts_with(LEASE_KEY_PREFIX) && seen.owner == me && !held.contains(key))
                .then_some((key.as_str(), seen.revision))
        })
    }
}

/// What to do about ownership this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Channels to try to acquire (`create`), in order.
    pub acquire: Vec<String>,
    /// How many held channels to give back (the relay holds more than its
    /// share while another relay could take them).
    pub release: usize,
}

/// Which `free` channels to try and how many held ones to release, given
/// this relay holds `held` channels and its share is `share`.
///
/// `free` is taken in its order (the relay ranks it differently per relay,
/// so that relays starting together try different channels first).
pub fn plan(held: usize, share: usize, free: &[String]) -> Plan {
    if held > share {
        return Plan {
            acquire: Vec::new(),
            release: held - share,
        };
    }
    Plan {
        acquire: free.iter().take(share - held).cloned().collect(),
        release: 0,
    }
}

/// A rank for `channel` that differs between relays: the order in which a
/// relay tries free channels.
pub fn rank(relay: &str, channel: &str) -> u128 {
    super::ids::fnv1a_128(format!("{relay}\n{channel}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing::new(Duration::from_secs(3))
    }

    #[test]
    fn renewals_come_three_times_a_ttl_and_trust_ends_before_expiry() {
        let timing = timing();
        assert_eq!(timing.renew_every(), Duration::from_secs(1));
        let sent = Instant::now();
        assert!(timing.valid_until(sent) < sent + timing.ttl);
        assert!(timing.valid_until(sent) > sent + timing.renew_every() * 2);
        assert!(timing.tick() <= Duration::from_millis(500));
        assert_eq!(Timing::new(Duration::ZERO).ttl, Duration::from_secs(1));
    }

    #[test]
    fn a_key_looks_free_once_unwritten_for_a_ttl() {
        let timing = timing();
        let t0 = Instant::now();
        let mut board = Board::default();
        assert!(board.looks_free("channel.a", timing, t0));
        board.written("channel.a", "r1", 5, t0);
        assert!(!board.looks_free("channel.a", timing, t0 + Duration::from_secs(2)));
        assert!(board.looks_free("channel.a", timing, t0 + Duration::from_secs(3)));
        board.written("channel.a", "r1", 6, t0 + Duration::from_secs(1));
        assert!(!board.looks_free("channel.a", timing, t0 + Duration::from_secs(3)));
        board.removed("channel.a");
        assert!(board.looks_free("channel.a", timing, t0));
    }

    #[test]
    fn live_relays_count_fresh_presence_keys_and_this_relay() {
        let timing = timing();
        let t0 = Instant::now();
        let mut board = Board::default();
        assert_eq!(board.live_relays("me", timing, t0), 1);
        board.written("relay.me", "me", 1, t0);
        board.written("relay.a", "a", 2, t0);
        board.written("relay.b", "b", 3, t0 + Duration::from_secs(2));
        board.written("channel.x", "a", 4, t0);
        assert_eq!(
            board.live_relays("me", timing, t0 + Duration::from_secs(2)),
            3
        );
        assert_eq!(
            board.live_relays("me", timing, t0 + Duration::from_secs(4)),
            2
        );
    }

    #[test]
    fn shares_cover_every_channel_and_excess_is_released() {
        for channels in [0, 1, 10, 299, 300, 301, 10_000] {
            for relays in 1..6 {
                assert!(fair_share(channels, relays) * relays >= channels);
            }
        }
        let free: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        assert_eq!(plan(0, 4, &free).acquire.len(), 4);
        assert_eq!(plan(3, 4, &free).acquire, vec!["c0".to_string()]);
        assert_eq!(
            plan(4, 4, &free),
            Plan {
                acquire: vec![],
                release: 0
            }
        );
        assert_eq!(
            plan(7, 4, &free),
            Plan {
                acquire: vec![],
                release: 3
            }
        );
        assert_eq!(plan(0, 4, &[]).acquire.len(), 0);
    }

    #[test]
    fn lost_keys_still_written_by_this_relay_can_be_taken_back() {
        let t0 = Instant::now();
        let mut board = Board::default();
        board.written("channel.a", "me", 7, t0);
        board.written("channel.b", "me", 8, t0);
        board.written("channel.c", "other", 9, t0);
        let held: HashSet<String> = ["channel.b".to_string()].into();
        let mine: Vec<_> = board.still_mine("me", &held).collect();
        assert_eq!(mine, vec![("channel.a", 7)]);
    }

    #[test]
    fn relays_rank_channels_differently() {
        let channels: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
        let order = |relay: &str| {
            let mut sorted = channels.clone();
            sorted.sort_by_key(|c| rank(relay, c));
            sorted
        };
        assert_ne!(order("a"), order("b"));
        assert_eq!(order("a"), order("a"));
    }
}
