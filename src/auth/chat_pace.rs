//! The pace of chat sends: [`ChatSettings`], and per channel a rate limiter
//! and the cached stream id, shared by every clone of a `VkApi`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// How [`VkApi::send_message`](super::VkApi::send_message) paces and retries.
///
/// ```
/// use std::time::Duration;
/// use vklive_pubsub::auth::ChatSettings;
/// let settings = ChatSettings { interval: Duration::from_secs(2), ..ChatSettings::default() };
/// assert_eq!(settings.burst, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSettings {
    /// At most one message per `interval` per channel, on average (default
    /// 1.5 s, the pace one public client keeps; VK publishes no number).
    /// Zero turns the limit off.
    pub interval: Duration,
    /// How many messages may go out back to back before the pace applies
    /// (default 1: VK's chat settings are per-user minimum intervals, which a
    /// burst would break).
    pub burst: u32,
    /// How long a send may keep retrying after `send_too_fast` or a 429
    /// (default 10 s): the waits start at `interval` (or the server's
    /// `Retry-After`, at most 5 minutes) and double. Zero: never retry;
    /// `Duration::MAX`: no bound.
    pub retry_too_fast_for: Duration,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            interval: DEFAULT_SEND_INTERVAL,
            burst: 1,
            retry_too_fast_for: Duration::from_secs(10),
        }
    }
}

/// The default pace of chat sends per channel: one per 1.5 s (see
/// [`ChatSettings`]).
pub const DEFAULT_SEND_INTERVAL: Duration = Duration::from_millis(1500);

/// How many channels' rate limiters and stream ids are kept at most; past
/// it, the least recently used channel with no send in flight is forgotten
/// (its next send looks its stream id up again).
pub(crate) const MAX_CHAT_CHANNELS: usize = 1024;

/// The shared state of chat sends: settings, and per channel a rate limiter
/// and the cached stream id. Shared by every clone of a [`VkApi`](super::VkApi).
pub(crate) struct ChatState {
    pub(super) settings: ChatSettings,
    channels: Mutex<Channels>,
}

/// The channels' slots, each with the tick of its last use.
#[derive(Default)]
struct Channels {
    slots: HashMap<String, (Arc<ChannelSlot>, u64)>,
    tick: u64,
}

impl Channels {
    /// Forgets the least recently used slot with no send in flight (none
    /// holds it but this map), if any.
    fn forget_one_idle(&mut self) {
        let idle = self
            .slots
            .iter()
            .filter(|(_, (slot, _))| Arc::strong_count(slot) == 1)
            .min_by_key(|(_, (_, used))| *used)
            .map(|(slug, _)| slug.clone());
        if let Some(slug) = idle {
            self.slots.remove(&slug);
        }
    }
}

pub(super) struct ChannelSlot {
    pub(super) limiter: Option<DefaultDirectRateLimiter>,
    /// The cached stream id; its lock also keeps one send per channel in
    /// flight, so that sends reach VK in the order and at the pace the
    /// limiter let them out.
    pub(super) stream_id: tokio::sync::Mutex<Option<String>>,
}

impl ChatState {
    pub(crate) fn new(settings: ChatSettings) -> ChatState {
        ChatState {
            settings,
            channels: Mutex::new(Channels::default()),
        }
    }

    /// The slot of `slug`, made when missing; past [`MAX_CHAT_CHANNELS`]
    /// the least recently used idle one makes room.
    pub(super) fn slot(&self, slug: &str) -> Arc<ChannelSlot> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        channels.tick += 1;
        let tick = channels.tick;
        if let Some((slot, used)) = channels.slots.get_mut(slug) {
            *used = tick;
            return Arc::clone(slot);
        }
        if channels.slots.len() >= MAX_CHAT_CHANNELS {
            channels.forget_one_idle();
        }
        let settings = &self.settings;
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        let limiter = Quota::with_period(settings.interval)
            .map(|quota| RateLimiter::direct(quota.allow_burst(burst)));
        let slot = Arc::new(ChannelSlot {
            limiter,
            stream_id: tokio::sync::Mutex::new(None),
        });
        channels
            .slots
            .insert(slug.to_owned(), (Arc::clone(&slot), tick));
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_pace_is_one_message_per_one_and_a_half_seconds_without_burst() {
        let settings = ChatSettings::default();
        assert_eq!(settings.interval, Duration::from_millis(1500));
        assert_eq!(settings.burst, 1);
        let state = ChatState::new(settings);
        let slot = state.slot("c");
        let limiter = slot.limiter.as_ref().unwrap();
        assert!(limiter.check().is_ok());
        assert!(
            limiter.check().is_err(),
            "a second message at once must wait"
        );
        assert!(Arc::ptr_eq(&slot, &state.slot("c")));
    }

    #[test]
    fn the_map_of_channel_limiters_stays_bounded() {
        let state = ChatState::new(ChatSettings::default());
        let busy = state.slot("busy");
        for n in 0..MAX_CHAT_CHANNELS * 2 {
            state.slot(&format!("channel{n}"));
        }
        let channels = state.channels.lock().unwrap();
        assert!(
            channels.slots.len() <= MAX_CHAT_CHANNELS,
            "{}",
            channels.slots.len()
        );
        assert!(
            channels.slots.contains_key("busy"),
            "a channel with a send in flight keeps its limiter"
        );
        drop(busy);
    }
}
