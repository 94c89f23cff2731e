//! Exponential backoff with full jitter, as a pure function of the attempt
//! number and a random draw.

use std::time::Duration;

/// Delays between retries: exponential growth from `min` to `max`, with
/// full jitter. Set it with
/// [`ClientBuilder::backoff_policy`](crate::ClientBuilder::backoff_policy).
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
    /// Delays from `min` to `max`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vklive_pubsub::Backoff;
    ///
    /// let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    /// assert_eq!(backoff.delay(0, 0.0), Duration::from_secs(1));
    /// assert_eq!(backoff.delay(0, 0.5), Duration::from_millis(1500));
    /// assert_eq!(backoff.delay(10, 0.99), Duration::from_secs(30), "never past max");
    /// ```
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max }
    }

    /// The delay before retry number `attempt`, given `random` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let min = self.min.as_secs_f64();
        let max = self.max.as_secs_f64().max(min);
        let growth = min * 2f64.powi(attempt.min(31) as i32);
        let spread = growth.min(max);
        let random = random.clamp(0.0, 1.0);
        Duration::from_secs_f64((min + spread * random).min(max))
    }

    /// The delay before retry `attempt` given `random`, never shorter
    /// than what the server asked for (`Retry-After`). The server's wish is
    /// capped at [`MAX_SERVER_DELAY`] (5 minutes), so a bogus `Retry-After`
    /// cannot park the client for days.
    pub(crate) fn delay_at_least(
        &self,
        attempt: u32,
        random: f64,
        server_asked: Option<Duration>,
    ) -> Duration {
        let delay = self.delay(attempt, random);
        server_asked.map_or(delay, |asked| delay.max(asked.min(MAX_SERVER_DELAY)))
    }
}

/// The longest `Retry-After` honoured.
pub(crate) const MAX_SERVER_DELAY: Duration = Duration::from_secs(300);

/// Random draws in `[0, 1)` for the jitter: xorshift64*, which jitter needs
/// no more than.
#[derive(Debug, Clone)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    /// Draws from `seed` (any value).
    pub(crate) fn new(seed: u64) -> Jitter {
        Jitter { state: seed | 1 }
    }

    /// A seed that differs from process to process: the standard library's
    /// randomly keyed hasher is enough.
    pub(crate) fn random_seed() -> u64 {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9E37_79B9_7F4A_7C15);
        hasher.finish()
    }

    /// The next draw, in `[0, 1)`.
    pub(crate) fn next(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
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
        let delay = backoff.delay_at_least(0, 0.5, Some(Duration::from_secs(3)));
        assert_eq!(delay, Duration::from_secs(3));
        assert_eq!(
            backoff.delay_at_least(0, 0.5, None),
            backoff.delay(0, 0.5),
            "nothing asked, the backoff's own delay"
        );
        let absurd = Some(Duration::from_secs(86_400 * 365));
        assert_eq!(backoff.delay_at_least(0, 0.5, absurd), MAX_SERVER_DELAY);
    }

    #[test]
    fn random_draws_stay_in_the_unit_interval_and_spread_over_it() {
        let mut jitter = Jitter::new(Jitter::random_seed());
        let draws: Vec<f64> = (0..1000).map(|_| jitter.next()).collect();
        assert!(draws.iter().all(|draw| (0.0..1.0).contains(draw)));
        assert!(draws.iter().any(|draw| *draw < 0.1) && draws.iter().any(|draw| *draw > 0.9));
        let mut zero = Jitter::new(0);
        assert!(zero.next() > 0.0, "a zero seed still draws");
    }
}
