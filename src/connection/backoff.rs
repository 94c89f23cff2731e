//! Exponential backoff with full jitter, as a pure function of the attempt
//! number and a random draw.

use std::time::Duration;

/// Reconnect delays: exponential growth from `min` to `max`, with full jitter.
///
/// The delay before retry `attempt` (0-based) is drawn uniformly from
/// `[min, min + min(max, min·2^attempt)]` and clamped to `max`, which is the
/// formula of the official centrifuge-js SDK. Jitter keeps a fleet of bots
/// from reconnecting in lockstep after a server restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Smallest delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(20),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt`, given `random` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let min = self.min.as_secs_f64();
        let max = self.max.as_secs_f64().max(min);
        let growth = min * 2f64.powi(attempt.min(31) as i32);
        let spread = growth.min(max);
        let random = random.clamp(0.0, 1.0);
        Duration::from_secs_f64((min + spread * random).min(max))
    }

    /// The delay before retry `attempt` with a fresh random draw, never
    /// shorter than what the server asked for (`Retry-After`).
    /// The server's wish is capped at `MAX_SERVER_DELAY` (5 minutes), so a bogus
    /// `Retry-After` cannot park the client for days.
    pub fn next_delay(&self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let delay = self.delay(attempt, rand_unit());
        server_asked.map_or(delay, |asked| delay.max(asked.min(MAX_SERVER_DELAY)))
    }
}

/// The longest `Retry-After` honoured.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(300);

/// A random number in `[0, 1)` without a dependency: the standard library's
/// randomly seeded hasher is enough for jitter.
fn rand_unit() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::time::Instant::now().elapsed().as_nanos() as u64);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Backoff {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(20),
        }
    }

    #[test]
    fn first_retry_lies_between_min_and_twice_min() {
        let backoff = policy();
        assert_eq!(backoff.delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(
            backoff.delay(0, 0.999_999),
            Duration::from_secs_f64(0.5 + 0.5 * 0.999_999)
        );
    }

    #[test]
    fn delays_grow_exponentially_then_stay_at_max() {
        let backoff = policy();
        let upper: Vec<Duration> = (0..8).map(|attempt| backoff.delay(attempt, 1.0)).collect();
        assert_eq!(upper[1], Duration::from_millis(1500));
        assert_eq!(upper[2], Duration::from_millis(2500));
        assert_eq!(upper[5], Duration::from_millis(16_500));
        assert_eq!(upper[6], Duration::from_secs(20));
        assert_eq!(backoff.delay(1000, 1.0), Duration::from_secs(20));
        assert!(upper.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn jitter_spreads_delays_over_the_whole_window() {
        let backoff = policy();
        let low = backoff.delay(4, 0.0);
        let high = backoff.delay(4, 0.99);
        assert_eq!(low, Duration::from_millis(500));
        assert!(high > Duration::from_secs(7), "{high:?}");
    }

    #[test]
    fn retry_after_from_the_server_is_honoured() {
        let backoff = policy();
        let delay = backoff.next_delay(0, Some(Duration::from_secs(3)));
        assert!(delay >= Duration::from_secs(3));
        assert!(backoff.next_delay(0, None) <= Duration::from_secs(1));
        let absurd = Some(Duration::from_secs(86_400 * 365));
        assert_eq!(backoff.next_delay(0, absurd), MAX_SERVER_DELAY);
    }

    #[test]
    fn random_draws_stay_in_unit_interval() {
        for _ in 0..1000 {
            let value = rand_unit();
            assert!((0.0..1.0).contains(&value));
        }
    }
}
