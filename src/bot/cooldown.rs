//! [`Cooldown`]: how often one user may use one command.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Per user and command, the time of the last use that was let through: a
/// use less than `period` after it is refused. At most `capacity` entries
/// are kept: expired ones are pruned when it is reached, and while it is
/// still full (more distinct users inside one period than the capacity)
/// new users are refused, so a flood of accounts cannot grow it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use vklive_pubsub::bot::Cooldown;
/// let mut cooldown = Cooldown::new(Duration::from_secs(5), 1000);
/// let now = Instant::now();
/// assert!(cooldown.allow(7, "ping", now));
/// assert!(!cooldown.allow(7, "PING", now + Duration::from_secs(1))); // names ignore case
/// assert!(cooldown.allow(8, "ping", now)); // another user
/// assert!(cooldown.allow(7, "uptime", now)); // another command
/// assert!(cooldown.allow(7, "ping", now + Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone)]
pub struct Cooldown {
    period: Duration,
    capacity: usize,
    last: HashMap<(i64, String), Instant>,
}

impl Cooldown {
    /// A cooldown of `period` per user and command, keeping at most
    /// `capacity` entries (at least 1).
    pub fn new(period: Duration, capacity: usize) -> Cooldown {
        Cooldown {
            period,
            capacity: capacity.max(1),
            last: HashMap::new(),
        }
    }

    /// Whether `user_id` may use `command` (case ignored) at `now`; a use let
    /// through starts a new period.
    pub fn allow(&mut self, user_id: i64, command: &str, now: Instant) -> bool {
        if self.period.is_zero() {
            return true;
        }
        let key = (user_id, command.to_lowercase());
        if let Some(last) = self.last.get(&key)
            && now.saturating_duration_since(*last) < self.period
        {
            return false;
        }
        if !self.last.contains_key(&key) && self.last.len() >= self.capacity {
            let period = self.period;
            self.last
                .retain(|_, last| now.saturating_duration_since(*last) < period);
            if self.last.len() >= self.capacity {
                return false;
            }
        }
        self.last.insert(key, now);
        true
    }

    /// How many users and commands are remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_distinct_users_cannot_grow_it_past_its_capacity() {
        let mut cooldown = Cooldown::new(Duration::from_secs(10), 100);
        let now = Instant::now();
        let allowed = (0..10_000)
            .filter(|user| cooldown.allow(*user, "ping", now))
            .count();
        assert_eq!(allowed, 100);
        assert_eq!(cooldown.len(), 100);
        // Once the period passed, the expired ones make room.
        assert!(cooldown.allow(20_000, "ping", now + Duration::from_secs(10)));
        assert_eq!(cooldown.len(), 1);
    }

    #[test]
    fn a_zero_period_lets_everything_through() {
        let mut cooldown = Cooldown::new(Duration::ZERO, 1);
        let now = Instant::now();
        assert!((0..5).all(|user| cooldown.allow(user, "ping", now)));
        assert!(cooldown.is_empty());
    }
}
