//! One wanted channel's state, kept in one place: where its subscription
//! stands, its token, its stream position, its timers, and for chat the
//! record that keeps delivery free of duplicates across live traffic and
//! the REST history.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::delivery::Delivery;
use crate::event::ChatKey;
use crate::secret::Secret;

/// Where a channel's subscription stands on the current link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Waiting for the next link or its retry timer.
    Idle,
    /// A token request is in flight.
    AwaitingToken,
    /// Subscribe sent with this command id.
    Subscribing(u32),
    Subscribed,
}

/// A channel's stream position, for recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// A channel the caller wants.
#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) status: Status,
    pub(crate) token: Option<Secret>,
    /// Fetch a fresh token before the next subscribe (after 109 or 2501).
    pub(crate) needs_token: bool,
    pub(crate) position: Option<Position>,
    /// Consecutive failed attempts, for the resubscribe backoff.
    pub(crate) failures: u32,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) refresh_at: Option<Instant>,
    /// It was subscribed before: a new subscription may have missed
    /// publications (a first one cannot have).
    pub(crate) was_subscribed: bool,
    /// Present for a chat channel whose VK channel slug is known.
    pub(crate) chat: Option<ChatLog>,
    /// Missed publications being fetched from the server's history.
    pub(crate) catch_up: Option<CatchUp>,
}

/// A publication held back (with its chat key, if a chat message) until
/// what it must follow was delivered.
pub(crate) type Held = (Option<ChatKey>, Delivery);

/// A catch-up from the server's history after a failed recovery: pages of
/// `history` from our old position up to the top the resubscribe found.
#[derive(Debug)]
pub(crate) struct CatchUp {
    pub(crate) epoch: String,
    /// The last offset delivered.
    pub(crate) cursor: u64,
    /// The stream's top when we resubscribed.
    pub(crate) top: u64,
    /// No page arrived yet.
    pub(crate) first_page: bool,
    /// Live publications, held until the catch-up is over.
    pub(crate) held: Vec<Held>,
}

impl Channel {
    pub(crate) fn new(slug: Option<Arc<str>>) -> Channel {
        Channel {
            status: Status::Idle,
            token: None,
            needs_token: false,
            position: None,
            failures: 0,
            retry_at: None,
            refresh_at: None,
            was_subscribed: false,
            chat: slug.map(ChatLog::new),
            catch_up: None,
        }
    }

    /// The earliest of this channel's timers.
    pub(crate) fn next_timer(&self) -> Option<Instant> {
        let backfill = self.chat.as_ref().and_then(ChatLog::next_timer);
        [self.retry_at, self.refresh_at, backfill]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Chat messages remembered for de-duplication, per channel.
const RECENT_IDS: usize = 1024;

/// What a chat channel remembers of the chat it delivered.
#[derive(Debug)]
pub(crate) struct ChatLog {
    /// The VK channel's slug, for `GET /v1/chat/messages`.
    pub(crate) slug: Arc<str>,
    /// The newest message delivered.
    pub(crate) last: Option<ChatKey>,
    /// Ids of the last [`RECENT_IDS`] messages delivered.
    recent: VecDeque<i64>,
    recent_set: HashSet<i64, foldhash::fast::RandomState>,
    /// Unix milliseconds when the link last went down while subscribed: the
    /// start of a possible gap when no message was delivered before it.
    pub(crate) lost_at_millis: Option<i64>,
    pub(crate) backfill: Option<Backfill>,
}

/// A fill-in from the REST history in progress.
#[derive(Debug)]
pub(crate) struct Backfill {
    /// Tells its answers from those of an earlier fill-in.
    pub(crate) id: u64,
    /// The delivered message it continues from (or the time the link went down).
    pub(crate) after: After,
    /// How many were missed, when offsets tell it.
    pub(crate) missed: Option<u64>,
    pub(crate) failures: u32,
    pub(crate) retry_at: Option<Instant>,
    /// Live chat held back until the fill-in arrives, so it comes after it;
    /// released at `hold_until` whatever happens.
    pub(crate) held: Vec<Held>,
    pub(crate) hold_until: Option<Instant>,
}

/// Where a fill-in starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// After this delivered message.
    Message(ChatKey),
    /// From this moment (Unix milliseconds): nothing was delivered before.
    Time(i64),
}

impl After {
    /// Whether a message with `key` comes after this point.
    pub(crate) fn precedes(self, key: ChatKey) -> bool {
        match self {
            After::Message(last) => key > last,
            After::Time(millis) => key.created_at_millis >= millis,
        }
    }
}

impl ChatLog {
    fn new(slug: Arc<str>) -> ChatLog {
        ChatLog {
            slug,
            last: None,
            recent: VecDeque::new(),
            recent_set: HashSet::default(),
            lost_at_millis: None,
            backfill: None,
        }
    }

    /// Whether the message with this id was delivered already.
    pub(crate) fn seen(&self, id: i64) -> bool {
        self.recent_set.contains(&id)
    }

    /// Records a delivered message.
    pub(crate) fn delivered(&mut self, key: ChatKey) {
        if self.last.is_none_or(|last| key > last) {
            self.last = Some(key);
        }
        if self.recent_set.insert(key.id) {
            self.recent.push_back(key.id);
            if self.recent.len() > RECENT_IDS
                && let Some(oldest) = self.recent.pop_front()
            {
                self.recent_set.remove(&oldest);
            }
        }
    }

    /// Where a fill-in should start: after the newest delivered message,
    /// else from when the link went down.
    pub(crate) fn resume_point(&self) -> Option<After> {
        self.last
            .map(After::Message)
            .or(self.lost_at_millis.map(After::Time))
    }

    fn next_timer(&self) -> Option<Instant> {
        let backfill = self.backfill.as_ref()?;
        [backfill.retry_at, backfill.hold_until]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(created_at_millis: i64, id: i64) -> ChatKey {
        ChatKey {
            created_at_millis,
            id,
        }
    }

    #[test]
    fn remembers_the_newest_message_and_a_bounded_set_of_ids() {
        let mut log = ChatLog::new("slug".into());
        log.delivered(key(2000, 2));
        log.delivered(key(1000, 1));
        assert_eq!(log.last, Some(key(2000, 2)));
        assert!(log.seen(1) && log.seen(2) && !log.seen(3));
        for id in 10..(10 + RECENT_IDS as i64) {
            log.delivered(key(3000, id));
        }
        assert!(!log.seen(1), "the oldest ids are forgotten");
        assert_eq!(log.recent.len(), RECENT_IDS);
    }

    #[test]
    fn a_fill_in_starts_after_the_last_message_or_at_the_loss() {
        let mut log = ChatLog::new("slug".into());
        assert_eq!(log.resume_point(), None);
        log.lost_at_millis = Some(5000);
        assert_eq!(log.resume_point(), Some(After::Time(5000)));
        assert!(After::Time(5000).precedes(key(5000, 1)));
        assert!(!After::Time(5000).precedes(key(4999, 1)));
        log.delivered(key(4000, 9));
        assert_eq!(log.resume_point(), Some(After::Message(key(4000, 9))));
        assert!(After::Message(key(4000, 9)).precedes(key(4000, 10)));
        assert!(!After::Message(key(4000, 9)).precedes(key(4000, 9)));
    }
}
