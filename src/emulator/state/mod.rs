//! Everything the emulator knows, behind one `std::sync::Mutex`.
//!
//! The lock is held only for short, synchronous decisions: no await happens
//! while it is held. Outgoing lines are handed to each connection's bounded
//! queue with `try_send` under the lock, which is what makes "subscribe
//! reply + registration" atomic with respect to `publish`: a publication is
//! either inside the reply (top offset, recovered publications) or queued
//! after it, never lost and never duplicated.
//!
//! One lock, one [`State`], one `impl State` block per job, each in its own
//! file: `identity` (users, apps, access and pubsub tokens), `channels`
//! (registered VK channels, their streams' ids and chat logs), `streams`
//! (publication, history, server unsubscribes), `blast` (benchmark frames,
//! built outside the lock), `connections` (queues and closes),
//! `protocol` (the Centrifugo commands), `faults` (injected failures)
//! and `log` (what a test observes). `bots` keeps what the bot-facing
//! REST methods need.

pub(crate) mod blast;
mod bots;
mod channels;
mod chat_log;
mod connections;
mod faults;
mod identity;
mod log;
mod protocol;
mod streams;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

use bots::BotState;
pub use bots::DemandDecision;
pub(crate) use bots::{AuthCode, LastSent};
use chat_log::LoggedMessage;

use super::config::EmulatorConfig;
use super::random::random_string;
use super::reports::{ReceivedCommand, RestCall};
use crate::protocol::{ErrorReply, Publication};

/// How many entries each observation log keeps.
pub(crate) const LOG_LIMIT: usize = 100_000;
/// Centrifugo's `recovery_max_publication_limit`.
pub(crate) const RECOVERY_LIMIT: u64 = 300;
/// Above this many stored pubsub tokens, expired ones are pruned on insert.
const TOKEN_PRUNE_THRESHOLD: usize = 10_000;
/// Chat messages kept per VK channel for `GET /v1/chat/messages`.
pub(crate) const CHAT_LOG_LIMIT: usize = 1_000;
/// Messages `GET /v1/chat/messages` returns when `limit` is absent.
pub(crate) const CHAT_MESSAGES_DEFAULT_LIMIT: usize = 20;
/// The largest `limit` `GET /v1/chat/messages` accepts.
pub(crate) const CHAT_MESSAGES_MAX_LIMIT: usize = 200;
/// What a connection's writer task is told to send.
pub(crate) enum Out {
    /// One JSON line; may be merged with others into one frame.
    Line(Arc<str>),
    /// A frame sent verbatim, on its own.
    Raw(Arc<str>),
    /// A close frame, after everything queued before it.
    Close(u16, String),
}

/// Out-of-band orders to a connection's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kill {
    /// Nothing to do.
    Alive,
    /// A close frame is queued: stop processing commands.
    Closing,
    /// Send this close frame now, skipping the queue (the queue is full).
    CloseNow(u16, String),
    /// Drop the TCP connection without a close frame.
    Abort,
}

/// Who a token or connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subject {
    User(u64),
    App(String),
}

struct ConnToken {
    subject: Subject,
    expires_at: Option<Instant>,
    issued_by: Option<String>,
}

struct SubToken {
    user_id: u64,
    channel: String,
    expires_at: Option<Instant>,
    issued_by: Option<String>,
}

struct AccessToken {
    user_id: u64,
    expires_at: Option<Instant>,
    /// Scopes granted through the authorization-code flow; `None` (tokens
    /// from `add_user`) may do everything.
    scopes: Option<Vec<String>>,
}

struct RefreshGrant {
    user_id: u64,
    client_id: String,
    scopes: Option<Vec<String>>,
}

struct ChannelRecord {
    slug: String,
    id: u64,
    /// Registration order (the first registered is the default of triggers).
    registered: u64,
    started_at: u64,
    stream_id: String,
    category_id: String,
    /// Whether the stream is live (`stop_stream` ends it).
    live: bool,
}

/// What chat send needs to know about a channel.
pub(crate) struct ChannelView {
    pub(crate) id: u64,
    /// The live stream's id; `None` while offline.
    pub(crate) live_stream_id: Option<String>,
}

struct Stream {
    epoch: String,
    top: u64,
    history: VecDeque<Publication>,
    subscribers: HashSet<u64>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            epoch: random_string(6),
            top: 0,
            history: VecDeque::new(),
            subscribers: HashSet::new(),
        }
    }
}

pub(crate) struct ConnEntry {
    tx: mpsc::Sender<Out>,
    kill: watch::Sender<Kill>,
    subject: Option<Subject>,
    subs: HashSet<String>,
    closing: bool,
    faults: Arc<ConnFaults>,
}

/// Faults of one connection that its writer task applies frame by frame.
#[derive(Debug, Default)]
pub(crate) struct ConnFaults {
    /// Send nothing at all (frames are dropped, not delayed).
    pub(crate) silent: AtomicBool,
    /// Frames still to be dropped instead of sent.
    pub(crate) drop_frames: AtomicUsize,
}

impl ConnFaults {
    /// Whether the writer should drop the frame it is about to send
    /// (counting it against `drop_frames`).
    pub(crate) fn swallow(&self) -> bool {
        if self.silent.load(Ordering::SeqCst) {
            return true;
        }
        self.drop_frames
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }
}

/// A REST failure injected with `fail_next_rest` / `fail_next_ws_upgrade`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InjectedFailure {
    pub remaining: usize,
    pub status: u16,
    pub retry_after: Option<u64>,
}

/// Who called a REST method.
pub(crate) enum Caller {
    User { user_id: u64, access_token: String },
    App { client_id: String },
}

/// What a protocol step asks the connection's session to do next.
pub(crate) enum Outcome {
    /// Done (a reply, possibly an error reply, was queued).
    Done,
    /// Success; the new expiry deadline (token expiry + grace), if any.
    Deadline(Option<Instant>),
    /// `connect` answered error 109: ignore the rest of the frame.
    ConnectFailed,
    /// Close the connection.
    Close {
        code: u16,
        reason: &'static str,
        violation: Option<String>,
    },
}

impl Outcome {
    fn close(code: u16, reason: &'static str, violation: impl Into<Option<String>>) -> Outcome {
        Outcome::Close {
            code,
            reason,
            violation: violation.into(),
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) silent: AtomicBool,
    pub(crate) pings_sent: AtomicU64,
    pub(crate) pongs_received: AtomicU64,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: EmulatorConfig) -> Shared {
        Shared {
            state: Mutex::new(State::new(config)),
            silent: AtomicBool::new(false),
            pings_sent: AtomicU64::new(0),
            pongs_received: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Locks the state. A panic elsewhere while it was held does not make
    /// the emulator unusable: the data is still consistent enough for tests.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether [`Emulator::shutdown`](crate::emulator::Emulator::shutdown) was called.
    pub(crate) fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    users: HashMap<u64, String>,
    /// The first user added: who the OAuth page authorizes by default.
    first_user: Option<u64>,
    /// Chat, demands, OAuth codes: what bots use (see `state/bots.rs`).
    pub(crate) bots: BotState,
    access_tokens: HashMap<String, AccessToken>,
    revoked_access_tokens: HashSet<String>,
    apps: HashMap<String, String>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    conn_tokens: HashMap<String, ConnToken>,
    sub_tokens: HashMap<String, SubToken>,
    channels: HashMap<String, ChannelRecord>,
    denied: HashSet<(u64, String)>,
    streams: HashMap<String, Stream>,
    /// Chat messages published into each public chat channel, oldest first,
    /// at most [`CHAT_LOG_LIMIT`] each, whatever the history setting.
    chat_logs: HashMap<String, VecDeque<LoggedMessage>>,
    connections: HashMap<u64, ConnEntry>,
    next_connection: u64,
    fail_rest: Option<InjectedFailure>,
    fail_upgrade: Option<InjectedFailure>,
    /// REST calls still to be answered late (`delay_next_rest`).
    delay_rest: Option<(usize, Duration)>,
    /// Pubsub tokens still to be issued already expired (`expire_next_tokens`).
    expire_next: usize,
    /// Subscribes still to be refused with this error (`fail_next_subscribes`).
    fail_subscribe: Option<(usize, ErrorReply)>,
    /// The next message or demand id a trigger uses when given none.
    pub(crate) next_trigger_id: i64,
    pub(crate) received: VecDeque<ReceivedCommand>,
    pub(crate) rest_calls: VecDeque<RestCall>,
    /// REST calls recorded so far (the last one's sequence number).
    rest_recorded: u64,
    pub(crate) close_codes: VecDeque<u16>,
    pub(crate) violations: VecDeque<String>,
}

/// Appends to an observation log, dropping its oldest entry when full.
pub(super) fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= LOG_LIMIT {
        log.pop_front();
    }
    log.push_back(item);
}

impl State {
    fn new(config: EmulatorConfig) -> State {
        State {
            config,
            users: HashMap::new(),
            first_user: None,
            bots: BotState::default(),
            access_tokens: HashMap::new(),
            revoked_access_tokens: HashSet::new(),
            apps: HashMap::new(),
            refresh_tokens: HashMap::new(),
            conn_tokens: HashMap::new(),
            sub_tokens: HashMap::new(),
            channels: HashMap::new(),
            denied: HashSet::new(),
            streams: HashMap::new(),
            chat_logs: HashMap::new(),
            connections: HashMap::new(),
            next_connection: 0,
            fail_rest: None,
            fail_upgrade: None,
            delay_rest: None,
            expire_next: 0,
            fail_subscribe: None,
            next_trigger_id: 800_000_000,
            received: VecDeque::new(),
            rest_calls: VecDeque::new(),
            rest_recorded: 0,
            close_codes: VecDeque::new(),
            violations: VecDeque::new(),
        }
    }
}
