//! The connection's decisions, without I/O.
//!
//! [`Session`] is a state machine in the style of `quinn-proto`: the actor
//! feeds it inputs (a received frame, a command from the handle, a token or
//! REST answer, the socket's end, the time) through its `handle_*` methods,
//! and takes its outputs: [`Action`]s to perform (fetch tokens, dial, close
//! the socket, finish), frames to send ([`Session::take_outgoing`]),
//! deliveries for the caller ([`Session::take_deliveries`]) and the next
//! deadline ([`Session::poll_timeout`]). Time always comes in as an
//! argument (a `std::time::Instant`), and frames as
//! [`Frame`](crate::protocol::Frame)s: no tokio or tungstenite type, so the
//! unit tests drive every path without a socket, a runtime or a sleep.
//!
//! One `impl Session` block per job, each in its file; the files of the
//! jobs import this one and `state.rs`, never each other:
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the state, its outputs, the timer dispatch, backoff draws |
//! | `link.rs` | the link's life: phases, connect, reply matching, the watchdog, close, reconnect |
//! | `outgoing.rs` | commands and their reply deadlines, lines packed into frames, pongs |
//! | `subscriptions.rs` | wanted channels: subscribe, unsubscribe, their replies and pushes, per-channel timers |
//! | `tokens.rs` | the connection's answers for channel tokens: subscribe with them, refresh with them |
//! | `ingest.rs` | received frames: lines, publications in order and once, batching, hold-back |
//! | `catch_up.rs` | what the server's history still has after a failed recovery |
//! | `fill_in.rs` | chat filled in from REST after a loss |
//! | `slugs.rs` | VK channels followed by slug: lookups and their retries |
//! | `state.rs` | the parts of the state several jobs read (the link, how it ends, lookups, malformed lines, the wall clock) |
//! | `tests/` | the session driven directly, one file per job beside the harness |

mod catch_up;
mod fill_in;
mod ingest;
mod link;
mod outgoing;
mod slugs;
mod state;
mod subscriptions;
mod tokens;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backoff::Jitter;
use super::channel::{Channel, Status};
use super::config::Config;
use crate::delivery::{CloseReason, Event, Outbox, Queued, State};
use crate::event::WebSocketChannels;

use state::{Link, Malformed, Phase, Resolution, WallClock};

/// Why channel tokens are requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Subscribe,
    /// Subscribe again with a token fetched anew (the last one was refused
    /// as expired: 109, or unsubscribe 2501).
    Resubscribe,
    Refresh,
}

/// Something the actor must do for the session.
#[derive(Debug)]
pub(crate) enum Action {
    /// Fetch a connection token; answer with [`Session::handle_connection_token`].
    FetchConnectionToken { attempt: u64 },
    /// Fetch subscription tokens; answer with [`Session::handle_channel_tokens`].
    FetchChannelTokens {
        attempt: u64,
        purpose: Purpose,
        channels: Vec<Arc<str>>,
    },
    /// Look a VK channel up (`GET /v1/channel`) and which of its private
    /// channels this user is granted; answer with [`Session::handle_resolved`].
    ResolveChannel { slug: Arc<str> },
    /// Fetch a chat's recent messages; answer with [`Session::handle_chat_history`].
    FetchChatHistory {
        channel: Arc<str>,
        slug: Arc<str>,
        backfill: u64,
    },
    /// The server refused `channel` on this connection with 106 (too many
    /// channels): the channel was dropped here, to be placed on another.
    Refused {
        channel: String,
        chat_slug: Option<String>,
    },
    /// A VK channel followed by slug was looked up: these channels (with
    /// the slug of the public chat) are to be subscribed, on whichever
    /// connection has room.
    Discovered(Vec<(String, Option<String>)>),
    /// Open the WebSocket; answer with [`Session::handle_dialed`].
    Dial { attempt: u64 },
    /// Close the WebSocket. With `linger`, keep reading until the server's
    /// close frame (or the linger deadline) and report the end with
    /// [`Session::handle_closed`]; without, drop it at once.
    CloseSocket { linger: bool },
    /// The session is over: deliver this as the last event.
    Finish(CloseReason),
}

/// What a VK channel's lookup found: its pubsub channels, and the private
/// ones this user is granted a subscription token for.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) channels: WebSocketChannels,
    pub(crate) granted: HashSet<String>,
}

/// The connection's state machine. See the module docs.
pub(crate) struct Session {
    config: Config,
    /// Looked up for every publication: a fast hash (channel names come
    /// from the caller, so the server cannot choose colliding keys).
    channels: HashMap<Arc<str>, Channel, foldhash::fast::RandomState>,
    /// Channel timers, earliest first; an entry is stale when the channel's
    /// own next timer differs (checked when it comes up).
    timers: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    phase: Phase,
    link: Option<Link>,
    /// Numbers each connection attempt, so that late answers meant for an
    /// earlier one are recognised and ignored.
    attempt: u64,
    /// Consecutive failed attempts, for the reconnect backoff.
    failures: u32,
    token_retry_left: bool,
    state: State,
    actions: VecDeque<Action>,
    outgoing: Vec<String>,
    deliveries: Outbox,
    malformed: Malformed,
    clock: WallClock,
    backfills: u64,
    /// Draws for the backoff's jitter.
    jitter: Jitter,
    /// VK channels followed by slug whose channels are not known yet.
    slugs: HashMap<Arc<str>, Resolution>,
}

impl Session {
    /// A session that wants `channels` (with the VK slug of each chat
    /// channel that can be filled in from REST) and connects at once.
    pub(crate) fn new(
        config: Config,
        channels: Vec<(String, Option<String>)>,
        now: Instant,
        unix_millis: i64,
        seed: u64,
    ) -> Session {
        let mut session = Session {
            config,
            channels: HashMap::default(),
            timers: BinaryHeap::new(),
            phase: Phase::Waiting { until: now },
            link: None,
            attempt: 0,
            failures: 0,
            token_retry_left: true,
            state: State::Connecting,
            actions: VecDeque::new(),
            outgoing: Vec::new(),
            deliveries: Outbox::default(),
            malformed: Malformed::default(),
            clock: WallClock {
                at: now,
                unix_millis,
            },
            backfills: 0,
            jitter: Jitter::new(seed),
            slugs: HashMap::new(),
        };
        for (channel, slug) in channels {
            session.want(&channel, slug.as_deref());
        }
        session
    }

    // --- outputs ----------------------------------------------------------

    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Frames to send, in order, each at most
    /// [`MAX_OUTGOING_FRAME`](outgoing::MAX_OUTGOING_FRAME) bytes.
    pub(crate) fn take_outgoing(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outgoing)
    }

    /// Deliveries for the caller, in order.
    pub(crate) fn take_deliveries(&mut self) -> std::vec::Drain<'_, Queued> {
        self.deliveries.drain()
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// Whether a socket is open (frames may be read and sent).
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing { .. })
    }

    /// Delays the first connect (a pool opens its connections at a pace).
    pub(crate) fn start_at(&mut self, at: Instant) {
        if self.attempt == 0
            && let Phase::Waiting { until } = &mut self.phase
        {
            *until = at;
        }
    }

    /// Channels wanted, and those subscribed, on this connection.
    pub(crate) fn channel_counts(&self) -> (usize, usize) {
        let subscribed = self
            .channels
            .values()
            .filter(|channel| channel.status == Status::Subscribed)
            .count();
        (self.channels.len(), subscribed)
    }

    pub(crate) fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The next moment [`Session::handle_timeout`] must be called.
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Waiting { until } | Phase::Closing { until } => Some(until),
            _ => None,
        };
        let margin = self.config.ping_margin;
        let link = self.link.as_mut().map_or([None; 3], |link| {
            [
                link.watchdog(margin),
                link.command_deadline(),
                link.refresh_at,
            ]
        });
        let channel = self.next_channel_timer();
        let lookup = self.next_lookup_timer();
        [phase, channel, lookup]
            .into_iter()
            .chain(link)
            .flatten()
            .min()
    }

    /// Time passed: fire whatever is due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if !self.fire_link_timers(now) {
            return;
        }
        self.fire_channel_timers(now);
        self.fire_lookup_timers(now);
    }

    fn push_event(&mut self, event: Event) {
        self.deliveries.push_event(event);
    }

    /// The delay before retry `attempt` (0-based), at least what the server
    /// asked for.
    fn backoff(&mut self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let random = self.jitter.next();
        self.config
            .backoff
            .delay_at_least(attempt, random, server_asked)
    }
}

/// Whether a channel name can be asked for: not empty, and no `,` (it
/// would split the name in the token request's list).
pub(crate) fn valid_channel_name(channel: &str) -> bool {
    !channel.is_empty() && !channel.contains(',')
}

#[cfg(test)]
mod tests;
