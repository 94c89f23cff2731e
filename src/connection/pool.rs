//! Where channels go: the pure decisions of the connection pool.
//!
//! A server limits the channels of one connection (Centrifugo: 128 by
//! default, error 106 past it). The pool places each wanted channel on a
//! connection with room, opens a new connection only when every one is full,
//! learns a lower limit from a 106, and closes a connection left empty
//! (keeping at least one).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A connection of the pool, by number.
pub(crate) type MemberId = u64;

/// What the pool knows of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) id: MemberId,
    /// Channels it may carry: the configured limit, lowered by a 106.
    pub(crate) limit: usize,
    /// Channels placed on it.
    pub(crate) channels: usize,
}

/// Where a channel goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On this existing connection.
    Existing(MemberId),
    /// On a new connection (numbered), opened no earlier than `at`.
    New { id: MemberId, at: Instant },
}

/// The pool's bookkeeping.
#[derive(Debug)]
pub(crate) struct Pool {
    members: Vec<Member>,
    homes: HashMap<Arc<str>, MemberId>,
    limit: usize,
    pace: Duration,
    next_id: MemberId,
    /// When the last new connection was (or will be) opened.
    last_opened: Option<Instant>,
}

impl Pool {
    /// A pool whose connections carry at most `limit` channels each (at
    /// least 1) and open at most one every `pace`.
    pub(crate) fn new(limit: usize, pace: Duration) -> Pool {
        Pool {
            members: Vec::new(),
            homes: HashMap::new(),
            limit: limit.max(1),
            pace,
            next_id: 0,
            last_opened: None,
        }
    }

    pub(crate) fn members(&self) -> &[Member] {
        &self.members
    }

    /// The connection carrying `channel`.
    pub(crate) fn home(&self, channel: &str) -> Option<MemberId> {
        self.homes.get(channel).copied()
    }

    /// Places `channel` (not placed yet) on the first connection with room,
    /// else on a new one; `None` if it is placed already.
    pub(crate) fn place(&mut self, channel: &Arc<str>, now: Instant) -> Option<Placement> {
        if self.homes.contains_key(channel) {
            return None;
        }
        let placement = match self.members.iter_mut().find(|m| m.channels < m.limit) {
            Some(member) => {
                member.channels += 1;
                Placement::Existing(member.id)
            }
            None => {
                let id = self.open(now);
                let at = self.last_opened.unwrap_or(now);
                Placement::New { id, at }
            }
        };
        let id = match placement {
            Placement::Existing(id) | Placement::New { id, .. } => id,
        };
        self.homes.insert(channel.clone(), id);
        Some(placement)
    }

    /// A new member carrying one channel, opened at the pace.
    fn open(&mut self, now: Instant) -> MemberId {
        let at = match self.last_opened {
            Some(last) => (last + self.pace).max(now),
            None => now,
        };
        self.last_opened = Some(at);
        let id = self.next_id;
        self.next_id += 1;
        self.members.push(Member {
            id,
            limit: self.limit,
            channels: 1,
        });
        id
    }

    /// The server refused `channel` on its connection with 106: that
    /// connection carries at most what it carries without it, and the
    /// channel is to be placed again ([`Pool::place`]).
    pub(crate) fn refused(&mut self, channel: &str) {
        let Some(id) = self.homes.remove(channel) else {
            return;
        };
        if let Some(member) = self.members.iter_mut().find(|m| m.id == id) {
            member.channels = member.channels.saturating_sub(1);
            member.limit = member.channels.max(1);
        }
    }

    /// `channel` is no longer wanted. Returns the connection it leaves empty,
    /// to be closed, unless it is the last one.
    pub(crate) fn remove(&mut self, channel: &str) -> Option<MemberId> {
        let id = self.homes.remove(channel)?;
        let member = self.members.iter_mut().find(|m| m.id == id)?;
        member.channels = member.channels.saturating_sub(1);
        (member.channels == 0 && self.members.len() > 1).then(|| self.forget(id))
    }

    /// Forgets an empty connection.
    fn forget(&mut self, id: MemberId) -> MemberId {
        self.members.retain(|m| m.id != id);
        id
    }

    /// The first connection, opened with no channel: a client always has one.
    pub(crate) fn first(&mut self, now: Instant) -> MemberId {
        match self.members.first() {
            Some(member) => member.id,
            None => {
                let id = self.open(now);
                if let Some(member) = self.members.iter_mut().find(|m| m.id == id) {
                    member.channels = 0;
                }
                id
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> Arc<str> {
        format!("c{i}").into()
    }

    #[test]
    fn channels_fill_one_connection_before_the_next_opens_at_the_pace() {
        let now = Instant::now();
        let pace = Duration::from_secs(2);
        let mut pool = Pool::new(3, pace);
        let first = pool.first(now);
        let placements: Vec<Placement> =
            (0..7).map(|i| pool.place(&name(i), now).unwrap()).collect();
        assert_eq!(placements[..3], [Placement::Existing(first); 3]);
        assert_eq!(
            placements[3],
            Placement::New {
                id: 1,
                at: now + pace
            }
        );
        assert_eq!(placements[4], Placement::Existing(1));
        assert_eq!(
            placements[6],
            Placement::New {
                id: 2,
                at: now + 2 * pace
            }
        );
        assert_eq!(pool.members().len(), 3);
        assert_eq!(pool.place(&name(0), now), None, "placed once");
    }

    #[test]
    fn a_106_lowers_that_connections_limit_and_moves_the_channel() {
        let now = Instant::now();
        let mut pool = Pool::new(5, Duration::ZERO);
        pool.first(now);
        for i in 0..5 {
            pool.place(&name(i), now);
        }
        // The server holds only four: the fifth is refused.
        pool.refused("c4");
        assert_eq!(
            pool.place(&name(4), now),
            Some(Placement::New { id: 1, at: now })
        );
        assert_eq!(pool.members()[0].limit, 4);
        assert_eq!(pool.place(&name(5), now), Some(Placement::Existing(1)));
    }

    #[test]
    fn a_connection_left_empty_is_closed_but_never_the_last() {
        let now = Instant::now();
        let mut pool = Pool::new(2, Duration::ZERO);
        pool.first(now);
        for i in 0..4 {
            pool.place(&name(i), now);
        }
        assert_eq!(pool.remove("c2"), None);
        assert_eq!(pool.remove("c3"), Some(1), "the second is empty");
        assert_eq!(pool.remove("c0"), None);
        assert_eq!(pool.remove("c1"), None, "the last one stays");
        assert_eq!(pool.members().len(), 1);
        assert_eq!(pool.place(&name(9), now), Some(Placement::Existing(0)));
    }
}
