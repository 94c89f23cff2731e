//! Everything the emulator knows, behind one `std::sync::Mutex`.
//!
//! The lock is held only for short, synchronous decisions: no await happens
//! while it is held. Outgoing lines are handed to each connection's bounded
//! queue with `try_send` under the lock, which is what makes "subscribe
//! reply + registration" atomic with respect to `publish`: a publication is
//! either inside the reply (top offset, recovered publications) or queued
//! after it, never lost and never duplicated.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};

use super::{ChannelNames, EmulatorConfig, ReceivedCommand, RestCall};
use crate::protocol::{
    Command, ConnectResult, Empty, ErrorReply, HistoryResult, Publication, Push, RefreshResult,
    Reply, SubscribeRequest, SubscribeResult, UnsubscribePush, codes,
};

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
/// Namespace of the public chat channels, whose messages the chat log keeps.
const CHAT_NAMESPACE: &str = "api-channel-chat:";

/// Namespaces and whether they need a subscription token.
const NAMESPACES: [(&str, bool); 8] = [
    ("api-channel-chat", false),
    ("api-channel-info", false),
    ("api-channel-points", false),
    ("api-channel-private-chat", true),
    ("api-channel-private-info", true),
    ("api-channel-private-points", true),
    ("api-channel-limited-chat", true),
    ("api-channel-limited-private-chat", true),
];

/// `Some(private)` for a channel in a known namespace, `None` otherwise.
pub(crate) fn namespace_privacy(channel: &str) -> Option<bool> {
    let (namespace, rest) = channel.split_once(':')?;
    if rest.is_empty() {
        return None;
    }
    NAMESPACES
        .iter()
        .find(|(name, _)| *name == namespace)
        .map(|(_, private)| *private)
}

/// What [`Emulator::blast`](super::Emulator::blast) queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlastReport {
    /// Offset of the first publication.
    pub first_offset: u64,
    /// Offset of the last publication (the channel's new top).
    pub last_offset: u64,
    /// Frames queued to each subscriber.
    pub frames: usize,
    /// Bytes of those frames (for one subscriber).
    pub bytes: usize,
    /// Connections the frames were queued to.
    pub subscribers: usize,
}

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

/// One chat message kept for `GET /v1/chat/messages`: its id (to apply a
/// `channel_chat_message_delete`) and `data.chat_message` verbatim.
struct LoggedMessage {
    id: Option<i64>,
    message: Box<RawValue>,
}

/// What a publication means to the chat log.
enum ChatEntry {
    Send(LoggedMessage),
    Delete(i64),
}

/// Reads a publication into the public chat channel as a chat-log entry:
/// `channel_chat_message_send` keeps `data.chat_message`,
/// `channel_chat_message_delete` names the message to drop; anything else
/// (other types, other channels, payloads of another shape) is `None`.
fn chat_entry(channel: &str, data: &RawValue) -> Option<ChatEntry> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: String,
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        chat_message: Box<RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    if !channel.starts_with(CHAT_NAMESPACE) {
        return None;
    }
    let envelope: Envelope = serde_json::from_str(data.get()).ok()?;
    let id = serde_json::from_str::<Id>(envelope.data.chat_message.get())
        .ok()
        .map(|id| id.id);
    match envelope.kind.as_str() {
        "channel_chat_message_send" => Some(ChatEntry::Send(LoggedMessage {
            id,
            message: envelope.data.chat_message,
        })),
        "channel_chat_message_delete" => id.map(ChatEntry::Delete),
        _ => None,
    }
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

/// One open pubsub connection, as [`Emulator::connections`](super::Emulator::connections) lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionInfo {
    /// Its id (1, 2, 3, … in accept order), for the per-connection faults.
    pub id: u64,
    /// The user it connected as, once `connect` succeeded.
    pub user_id: Option<u64>,
    /// The app it connected as (client id), once `connect` succeeded.
    pub app: Option<String>,
    /// Its subscriptions, sorted.
    pub subscriptions: Vec<String>,
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
}

pub(crate) struct State {
    pub(crate) config: EmulatorConfig,
    users: HashMap<u64, String>,
    /// The first user added: who the OAuth page authorizes by default.
    first_user: Option<u64>,
    /// Chat, demands, OAuth codes: what bots use (see `bots.rs`).
    pub(crate) bots: super::bots::BotState,
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

fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() >= LOG_LIMIT {
        log.pop_front();
    }
    log.push_back(item);
}

/// A random alphanumeric string.
pub(crate) fn random_string(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric)
        .take(len)
        .collect()
}

/// A random version-4 UUID in its text form.
pub(crate) fn random_uuid() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        (fastrand::u16(..) & 0x3fff) | 0x8000,
        fastrand::u64(..1 << 48)
    )
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whole seconds from `now` to `expires_at`, rounded up, at least 1.
fn ttl_secs(expires_at: Instant, now: Instant) -> u32 {
    let left = expires_at.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

fn expired(expires_at: Option<Instant>, now: Instant) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

fn line(reply: &Reply) -> Arc<str> {
    let mut text = String::new();
    crate::protocol::append_line(&mut text, reply);
    Arc::from(text)
}

fn error_line(id: u32, code: u32, message: &str) -> Arc<str> {
    line(&Reply {
        id,
        error: Some(ErrorReply {
            code,
            message: message.to_owned(),
            temporary: false,
        }),
        ..Reply::default()
    })
}

fn error_message(code: u32) -> &'static str {
    match code {
        codes::INTERNAL => "internal server error",
        codes::UNAUTHORIZED => "unauthorized",
        codes::UNKNOWN_CHANNEL => "unknown channel",
        codes::PERMISSION_DENIED => "permission denied",
        codes::METHOD_NOT_FOUND => "method not found",
        codes::ALREADY_SUBSCRIBED => "already subscribed",
        codes::LIMIT_EXCEEDED => "limit exceeded",
        codes::BAD_REQUEST => "bad request",
        codes::NOT_AVAILABLE => "not available",
        codes::TOKEN_EXPIRED => "token expired",
        codes::UNRECOVERABLE_POSITION => "unrecoverable position",
        _ => "error",
    }
}

fn raw_json(value: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| {
        // A `Value` always serializes; keep a valid payload regardless.
        RawValue::from_string(String::from("null")).unwrap_or_default()
    })
}

impl State {
    fn new(config: EmulatorConfig) -> State {
        State {
            config,
            users: HashMap::new(),
            first_user: None,
            bots: super::bots::BotState::default(),
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

    // ----- identities ---------------------------------------------------------

    pub(crate) fn add_user(&mut self, access_token: &str, user_id: u64, nick: &str) {
        self.first_user.get_or_insert(user_id);
        self.users.insert(user_id, nick.to_owned());
        self.revoked_access_tokens.remove(access_token);
        self.access_tokens.insert(
            access_token.to_owned(),
            AccessToken {
                user_id,
                expires_at: None,
                scopes: None,
            },
        );
    }

    pub(crate) fn add_app(&mut self, client_id: &str, client_secret: &str) {
        self.apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    pub(crate) fn add_refresh_token(&mut self, refresh_token: &str, user_id: u64, client_id: &str) {
        self.refresh_tokens.insert(
            refresh_token.to_owned(),
            RefreshGrant {
                user_id,
                client_id: client_id.to_owned(),
                scopes: None,
            },
        );
    }

    pub(crate) fn revoke_access_token(&mut self, access_token: &str) {
        let user = self.access_tokens.remove(access_token).map(|t| t.user_id);
        self.revoked_access_tokens.insert(access_token.to_owned());
        if let Some(user_id) = user {
            let victims: Vec<u64> = self
                .connections
                .iter()
                .filter(|(_, entry)| entry.subject == Some(Subject::User(user_id)))
                .map(|(id, _)| *id)
                .collect();
            for id in victims {
                self.close_connection(id, codes::CLOSE_INVALID_TOKEN, "invalid token");
            }
        }
    }

    fn is_revoked(&self, issued_by: &Option<String>) -> bool {
        issued_by
            .as_ref()
            .is_some_and(|token| self.revoked_access_tokens.contains(token))
    }

    /// Resolves an `Authorization` header value.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Option<Caller> {
        use base64::Engine as _;
        let header = header?.trim();
        let (scheme, value) = header.split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = self.access_tokens.get(value)?;
            if expired(token.expires_at, Instant::now()) {
                return None;
            }
            Some(Caller::User {
                user_id: token.user_id,
                access_token: value.to_owned(),
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (client_id, secret) = decoded.split_once(':')?;
            self.app_valid(client_id, secret).then(|| Caller::App {
                client_id: client_id.to_owned(),
            })
        } else {
            None
        }
    }

    pub(crate) fn app_known(&self, client_id: &str) -> bool {
        self.apps.contains_key(client_id)
    }

    pub(crate) fn app_valid(&self, client_id: &str, secret: &str) -> bool {
        self.apps.get(client_id).is_some_and(|s| s == secret)
    }

    fn token_expiry(&mut self, ttl: Option<Duration>) -> Option<Instant> {
        let now = Instant::now();
        if self.expire_next > 0 {
            self.expire_next -= 1;
            return Some(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
        }
        ttl.map(|ttl| now + ttl)
    }

    fn prune_tokens(&mut self) {
        let now = Instant::now();
        let grace = self.config.expiry_grace;
        let stale = |at: Option<Instant>| at.is_some_and(|at| at + grace < now);
        if self.conn_tokens.len() > TOKEN_PRUNE_THRESHOLD {
            self.conn_tokens.retain(|_, t| !stale(t.expires_at));
        }
        if self.sub_tokens.len() > TOKEN_PRUNE_THRESHOLD {
            self.sub_tokens.retain(|_, t| !stale(t.expires_at));
        }
    }

    pub(crate) fn issue_connection_token(
        &mut self,
        subject: Subject,
        issued_by: Option<String>,
        ttl: Option<Duration>,
    ) -> String {
        self.prune_tokens();
        let token = format!("emu-conn-{}", random_string(32));
        let expires_at = self.token_expiry(ttl);
        self.conn_tokens.insert(
            token.clone(),
            ConnToken {
                subject,
                expires_at,
                issued_by,
            },
        );
        token
    }

    pub(crate) fn issue_connection_token_for(
        &mut self,
        user_id: u64,
        ttl: Option<Duration>,
    ) -> String {
        let ttl = ttl.or(self.config.token_ttl);
        self.issue_connection_token(Subject::User(user_id), None, ttl)
    }

    fn issue_subscription_token(
        &mut self,
        user_id: u64,
        channel: &str,
        issued_by: Option<String>,
        ttl: Option<Duration>,
    ) -> String {
        self.prune_tokens();
        let token = format!("emu-sub-{}", random_string(32));
        let expires_at = self.token_expiry(ttl);
        self.sub_tokens.insert(
            token.clone(),
            SubToken {
                user_id,
                channel: channel.to_owned(),
                expires_at,
                issued_by,
            },
        );
        token
    }

    pub(crate) fn issue_subscription_token_for(
        &mut self,
        user_id: u64,
        channel: &str,
        ttl: Option<Duration>,
    ) -> String {
        let ttl = ttl.or(self.config.token_ttl);
        self.issue_subscription_token(user_id, channel, None, ttl)
    }

    /// Tokens for the requested channels the user may read, in request order.
    pub(crate) fn subscription_tokens(
        &mut self,
        user_id: u64,
        access_token: &str,
        channels: &[String],
    ) -> Vec<(String, String)> {
        let ttl = self.config.token_ttl;
        let mut seen = HashSet::new();
        let mut tokens = Vec::new();
        for channel in channels {
            if namespace_privacy(channel).is_none()
                || self.denied.contains(&(user_id, channel.clone()))
                || !seen.insert(channel.clone())
            {
                continue;
            }
            let token =
                self.issue_subscription_token(user_id, channel, Some(access_token.to_owned()), ttl);
            tokens.push((channel.clone(), token));
        }
        tokens
    }

    /// Exchanges a refresh token: `Ok((access, refresh, expires_in))`, or
    /// `Err(())` for an unknown token or one of another client.
    pub(crate) fn oauth_refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<(String, String, u64), ()> {
        match self.refresh_tokens.get(refresh_token) {
            Some(grant) if grant.client_id == client_id => {}
            _ => return Err(()),
        }
        let grant = self.refresh_tokens.remove(refresh_token).ok_or(())?;
        let access = format!("emu-at-{}", random_string(32));
        let refresh = format!("emu-rt-{}", random_string(32));
        let lifetime = self.config.access_token_lifetime;
        self.access_tokens.insert(
            access.clone(),
            AccessToken {
                user_id: grant.user_id,
                expires_at: lifetime.map(|d| Instant::now() + d),
                scopes: grant.scopes.clone(),
            },
        );
        self.refresh_tokens.insert(refresh.clone(), grant);
        let expires_in = lifetime.map_or(3600, |d| d.as_secs().max(1));
        Ok((access, refresh, expires_in))
    }

    // ----- channels --------------------------------------------------------------

    pub(crate) fn add_channel(&mut self, slug: &str, channel_id: u64) -> ChannelNames {
        let registered = self
            .channels
            .get(slug)
            .map_or(self.channels.len() as u64, |record| record.registered);
        self.channels.insert(
            slug.to_owned(),
            ChannelRecord {
                slug: slug.to_owned(),
                id: channel_id,
                registered,
                started_at: unix_now(),
                stream_id: random_uuid(),
                category_id: random_uuid(),
                live: true,
            },
        );
        ChannelNames::for_channel_id(channel_id)
    }

    /// Starts a new stream on a channel: a new id and start time. False for
    /// an unknown slug.
    pub(crate) fn start_stream(&mut self, slug: &str) -> bool {
        let Some(record) = self.channels.get_mut(slug) else {
            return false;
        };
        record.stream_id = random_uuid();
        record.started_at = unix_now();
        record.live = true;
        true
    }

    /// Ends a channel's stream: `GET /v1/channel` answers `stream: null`.
    pub(crate) fn stop_stream(&mut self, slug: &str) -> bool {
        let Some(record) = self.channels.get_mut(slug) else {
            return false;
        };
        record.live = false;
        true
    }

    pub(crate) fn channel_view(&self, slug: &str) -> Option<ChannelView> {
        let record = self.channels.get(slug)?;
        Some(ChannelView {
            id: record.id,
            live_stream_id: record.live.then(|| record.stream_id.clone()),
        })
    }

    /// The slug of the channel with this id.
    pub(crate) fn channel_slug_of(&self, channel_id: u64) -> Option<String> {
        self.channels
            .values()
            .find(|record| record.id == channel_id)
            .map(|record| record.slug.clone())
    }

    pub(crate) fn user_nick(&self, user_id: u64) -> Option<String> {
        self.users
            .get(&user_id)
            .or_else(|| self.bots.nicks.get(&user_id))
            .cloned()
    }

    pub(crate) fn first_user(&self) -> Option<u64> {
        self.first_user
    }

    /// Whether `access_token` may use `scope` (tokens without a scope list
    /// may do everything).
    pub(crate) fn has_scope(&self, access_token: &str, scope: &str) -> bool {
        self.access_tokens.get(access_token).is_none_or(|token| {
            token
                .scopes
                .as_ref()
                .is_none_or(|s| s.iter().any(|s| s == scope))
        })
    }

    /// When `access_token` expires, as Unix seconds (`None`: never).
    pub(crate) fn access_token_expiry(&self, access_token: &str) -> Option<u64> {
        let at = self.access_tokens.get(access_token)?.expires_at?;
        let left = at.saturating_duration_since(Instant::now());
        Some(unix_now() + left.as_secs())
    }

    /// Issues an access token and a refresh token of `user_id` for the app
    /// `client_id`: `(access, refresh, expires_in)`.
    pub(crate) fn issue_user_tokens(
        &mut self,
        user_id: u64,
        client_id: &str,
        scopes: Vec<String>,
    ) -> (String, String, u64) {
        let refresh = format!("emu-rt-{}", random_string(32));
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                user_id,
                client_id: client_id.to_owned(),
                scopes: Some(scopes),
            },
        );
        // Exchange it at once: one place decides what an access token is.
        self.oauth_refresh(client_id, &refresh)
            .unwrap_or_else(|()| (String::new(), String::new(), 0))
    }

    pub(crate) fn deny(&mut self, user_id: u64, channel: &str) {
        self.denied.insert((user_id, channel.to_owned()));
    }

    /// The `data` of `GET /v1/channel`, per vk-devapi.md §3.3.
    pub(crate) fn channel_info(&self, slug: &str) -> Option<serde_json::Value> {
        let record = self.channels.get(slug)?;
        let names = ChannelNames::for_channel_id(record.id);
        let nick = self
            .users
            .get(&record.id)
            .cloned()
            .unwrap_or_else(|| record.slug.clone());
        let color = record.id % 16;
        let avatar = format!("https://images.emulator.invalid/avatar/{}.png", record.id);
        let stream = record.live.then(|| {
            json!({
                "id": record.stream_id,
                "title": format!("Эмулятор: стрим {}", record.slug),
                "started_at": record.started_at,
                "ended_at": null,
                "category": {"id": record.category_id, "title": "Общение", "type": "irl"},
                "counters": {"viewers": 512, "views": 1024},
            })
        });
        Some(json!({
            "channel": {
                "id": record.id,
                "url": record.slug,
                "nick": nick,
                "nick_color": color,
                "avatar_url": avatar,
                "status": if record.live { "online" } else { "offline" },
                "counters": {"subscribers": 128},
                "web_socket_channels": {
                    "chat": names.chat,
                    "private_chat": names.private_chat,
                    "info": names.info,
                    "private_info": names.private_info,
                    "channel_points": names.channel_points,
                    "private_channel_points": names.private_channel_points,
                    "limited_chat": names.limited_chat,
                    "limited_private_chat": names.limited_private_chat,
                },
            },
            "owner": {"id": record.id, "nick": nick, "nick_color": color, "avatar_url": avatar, "is_verified_streamer": true},
            "stream": stream,
            "streams": stream.iter().collect::<Vec<_>>(),
        }))
    }

    fn stream_mut(&mut self, channel: &str) -> &mut Stream {
        self.streams
            .entry(channel.to_owned())
            .or_insert_with(Stream::new)
    }

    pub(crate) fn stream_position(&mut self, channel: &str) -> (String, u64) {
        let stream = self.stream_mut(channel);
        (stream.epoch.clone(), stream.top)
    }

    pub(crate) fn publish(&mut self, channel: &str, data: &serde_json::Value) -> u64 {
        self.bots.learn(channel, data);
        self.publish_raw(channel, raw_json(data))
    }

    /// [`State::publish`] with the payload already serialized. Returns the
    /// publication's offset, or 0 when history is off (it carries none).
    pub(crate) fn publish_raw(&mut self, channel: &str, data: Box<RawValue>) -> u64 {
        let history = self.config.history;
        let history_size = self.config.history_size;
        let stream = self.stream_mut(channel);
        let offset = if history {
            stream.top += 1;
            stream.top
        } else {
            0
        };
        let publication = Publication {
            data,
            offset,
            info: None,
            tags: None,
        };
        let push_line = line(&Reply {
            push: Some(Push {
                channel: channel.to_owned(),
                publication: Some(publication.clone()),
                ..Push::default()
            }),
            ..Reply::default()
        });
        let subscribers: Vec<u64> = stream.subscribers.iter().copied().collect();
        for id in subscribers {
            self.deliver(id, Out::Line(Arc::clone(&push_line)));
        }
        // After the pushes are queued, so a paced publication's stamp is not
        // delayed by the chat log.
        self.record_chat(channel, &publication.data);
        if history && history_size > 0 {
            let stream = self.stream_mut(channel);
            stream.history.push_back(publication);
            while stream.history.len() > history_size {
                stream.history.pop_front();
            }
        }
        offset
    }

    /// Applies a publication into `channel` to the chat log.
    fn record_chat(&mut self, channel: &str, data: &RawValue) {
        match chat_entry(channel, data) {
            Some(ChatEntry::Send(message)) => {
                let log = self.chat_logs.entry(channel.to_owned()).or_default();
                if log.len() >= CHAT_LOG_LIMIT {
                    log.pop_front();
                }
                log.push_back(message);
            }
            Some(ChatEntry::Delete(id)) => {
                if let Some(log) = self.chat_logs.get_mut(channel) {
                    log.retain(|message| message.id != Some(id));
                }
            }
            None => {}
        }
    }

    /// The most recent chat messages of the VK channel `slug` (at most
    /// `limit`), newest first, each the `data.chat_message` object of its
    /// `channel_chat_message_send`; `None` for an unknown slug.
    pub(crate) fn chat_messages(&self, slug: &str, limit: usize) -> Option<Vec<&RawValue>> {
        let record = self.channels.get(slug)?;
        let chat = ChannelNames::for_channel_id(record.id).chat;
        Some(
            self.chat_logs
                .get(&chat)
                .map(|log| {
                    log.iter()
                        .rev()
                        .take(limit)
                        .map(|logged| &*logged.message)
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// Turns history and recovery on or off. A change starts every channel's
    /// stream afresh (new epoch, offsets from 1, history cleared), as a
    /// Centrifugo restarted with the new setting would; subscriptions stay.
    pub(crate) fn set_history(&mut self, enabled: bool) {
        if self.config.history == enabled {
            return;
        }
        self.config.history = enabled;
        for stream in self.streams.values_mut() {
            stream.epoch = random_string(6);
            stream.top = 0;
            stream.history.clear();
        }
    }

    /// Publishes `count` publications in one go, `per_frame` push lines to a
    /// frame, every frame built before the first is queued. `payload(i)` makes
    /// the i-th payload. Offsets and history advance as with `count` calls of
    /// [`State::publish`]; the frames go to each subscriber's queue verbatim,
    /// so the writer sends them as fast as the client reads.
    pub(crate) fn blast(
        &mut self,
        channel: &str,
        count: usize,
        per_frame: usize,
        mut payload: impl FnMut(usize) -> Box<RawValue>,
    ) -> Result<BlastReport, String> {
        let per_frame = per_frame.max(1);
        let frames = count.div_ceil(per_frame);
        let room = self.config.outgoing_queue_capacity;
        if frames > room {
            return Err(format!(
                "{frames} frames do not fit a connection's queue of {room}; raise per_frame"
            ));
        }
        let history = self.config.history;
        let history_size = if history { self.config.history_size } else { 0 };
        let quoted_channel = serde_json::to_string(channel).map_err(|e| e.to_string())?;
        let chat_from = if channel.starts_with(CHAT_NAMESPACE) {
            count.saturating_sub(CHAT_LOG_LIMIT)
        } else {
            count
        };
        let mut chat: Vec<Box<RawValue>> = Vec::new();
        let stream = self.stream_mut(channel);
        // Without history publications carry no offset (0 in the report).
        let first_offset = if history { stream.top + 1 } else { 0 };
        let keep_from = count.saturating_sub(history_size);
        let mut built: Vec<Arc<str>> = Vec::with_capacity(frames);
        let mut frame = String::new();
        let mut bytes = 0;
        for index in 0..count {
            let data = payload(index);
            let offset = if history {
                first_offset + index as u64
            } else {
                0
            };
            if !frame.is_empty() {
                frame.push('\n');
            }
            // What `line(&Reply { push: Some(Push { channel, publication }) })`
            // writes, without a serializer pass over the payload.
            frame.push_str("{\"push\":{\"channel\":");
            frame.push_str(&quoted_channel);
            frame.push_str(",\"pub\":{\"data\":");
            frame.push_str(data.get());
            if history {
                frame.push_str(",\"offset\":");
                frame.push_str(&offset.to_string());
            }
            frame.push_str("}}}");
            if index >= chat_from {
                chat.push(data.clone());
            }
            if index >= keep_from {
                stream.history.push_back(Publication {
                    data,
                    offset,
                    info: None,
                    tags: None,
                });
            }
            if (index + 1) % per_frame == 0 || index + 1 == count {
                bytes += frame.len();
                built.push(Arc::from(std::mem::take(&mut frame)));
            }
        }
        while stream.history.len() > history_size {
            stream.history.pop_front();
        }
        let last_offset = if history {
            stream.top += count as u64;
            stream.top
        } else {
            0
        };
        let subscribers: Vec<u64> = stream.subscribers.iter().copied().collect();
        for id in &subscribers {
            for frame in &built {
                self.deliver(*id, Out::Raw(Arc::clone(frame)));
            }
        }
        for data in &chat {
            self.record_chat(channel, data);
        }
        Ok(BlastReport {
            first_offset,
            last_offset,
            frames: built.len(),
            bytes,
            subscribers: subscribers.len(),
        })
    }

    pub(crate) fn restart_channel(&mut self, channel: &str) {
        let stream = self.stream_mut(channel);
        stream.epoch = random_string(6);
        stream.top = 0;
        stream.history.clear();
        self.unsubscribe_all(
            channel,
            codes::UNSUBSCRIBE_INSUFFICIENT_STATE,
            "insufficient state",
        );
    }

    pub(crate) fn unsubscribe_all(&mut self, channel: &str, code: u32, reason: &str) {
        let subscribers: Vec<u64> = self
            .streams
            .get(channel)
            .map(|s| s.subscribers.iter().copied().collect())
            .unwrap_or_default();
        for id in subscribers {
            self.server_unsubscribe(id, channel, code, reason);
        }
    }

    /// Ends one subscription with an unsubscribe push.
    pub(crate) fn server_unsubscribe(&mut self, id: u64, channel: &str, code: u32, reason: &str) {
        let removed = self
            .connections
            .get_mut(&id)
            .is_some_and(|entry| entry.subs.remove(channel));
        if let Some(stream) = self.streams.get_mut(channel) {
            stream.subscribers.remove(&id);
        }
        if removed {
            let push = line(&Reply {
                push: Some(Push {
                    channel: channel.to_owned(),
                    unsubscribe: Some(UnsubscribePush {
                        code,
                        reason: reason.to_owned(),
                    }),
                    ..Push::default()
                }),
                ..Reply::default()
            });
            self.deliver(id, Out::Line(push));
        }
    }

    pub(crate) fn subscriber_count(&self, channel: &str) -> usize {
        self.streams
            .get(channel)
            .map_or(0, |stream| stream.subscribers.len())
    }

    /// Subscriber counts of every channel that has subscribers.
    pub(crate) fn subscriber_counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.streams
            .iter()
            .filter(|(_, stream)| !stream.subscribers.is_empty())
            .map(|(channel, stream)| (channel.clone(), stream.subscribers.len()))
            .collect()
    }

    // ----- connections -----------------------------------------------------------

    pub(crate) fn register_connection(
        &mut self,
    ) -> (
        u64,
        mpsc::Receiver<Out>,
        watch::Receiver<Kill>,
        Arc<ConnFaults>,
    ) {
        self.next_connection += 1;
        let id = self.next_connection;
        let (tx, rx) = mpsc::channel(self.config.outgoing_queue_capacity.max(1));
        let (kill, kill_rx) = watch::channel(Kill::Alive);
        let faults = Arc::new(ConnFaults::default());
        self.connections.insert(
            id,
            ConnEntry {
                tx,
                kill,
                subject: None,
                subs: HashSet::new(),
                closing: false,
                faults: Arc::clone(&faults),
            },
        );
        (id, rx, kill_rx, faults)
    }

    /// The open connections (not closing), by id.
    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = self
            .connections
            .iter()
            .filter(|(_, entry)| !entry.closing)
            .map(|(id, entry)| {
                let mut subscriptions: Vec<String> = entry.subs.iter().cloned().collect();
                subscriptions.sort();
                ConnectionInfo {
                    id: *id,
                    user_id: match &entry.subject {
                        Some(Subject::User(user)) => Some(*user),
                        _ => None,
                    },
                    app: match &entry.subject {
                        Some(Subject::App(app)) => Some(app.clone()),
                        _ => None,
                    },
                    subscriptions,
                }
            })
            .collect();
        list.sort_by_key(|info| info.id);
        list
    }

    /// The faults of an open connection, `None` for an unknown or closing one.
    pub(crate) fn faults(&self, id: u64) -> Option<Arc<ConnFaults>> {
        self.connections
            .get(&id)
            .filter(|entry| !entry.closing)
            .map(|entry| Arc::clone(&entry.faults))
    }

    /// Drops one connection at once, with no close frame. False when it is
    /// unknown or closing.
    pub(crate) fn abort_connection(&mut self, id: u64) -> bool {
        let Some(entry) = self.connections.get_mut(&id) else {
            return false;
        };
        if entry.closing {
            return false;
        }
        entry.closing = true;
        entry.kill.send_replace(Kill::Abort);
        self.detach(id);
        true
    }

    /// Whether `id` is an open connection.
    pub(crate) fn is_open(&self, id: u64) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|entry| !entry.closing)
    }

    /// The id of the newest chat message in a public chat channel's log.
    pub(crate) fn newest_chat_message(&self, channel: &str) -> Option<i64> {
        self.chat_logs
            .get(channel)
            .and_then(|log| log.iter().rev().find_map(|message| message.id))
    }

    /// The slug and channel id of a registered channel: `key` is a slug or
    /// the decimal id; `None` names the channel registered first.
    pub(crate) fn registered_channel(&self, key: Option<&str>) -> Option<(String, u64)> {
        match key {
            Some(key) => self
                .channels
                .values()
                .find(|record| record.slug == key || record.id.to_string() == key)
                .map(|record| (record.slug.clone(), record.id)),
            None => self
                .channels
                .values()
                .min_by_key(|record| record.registered)
                .map(|record| (record.slug.clone(), record.id)),
        }
    }

    /// Forgets a connection whose tasks have ended.
    pub(crate) fn remove_connection(&mut self, id: u64) {
        self.detach(id);
        self.connections.remove(&id);
    }

    /// Removes a connection's subscriptions from every stream.
    fn detach(&mut self, id: u64) {
        let subs = self
            .connections
            .get_mut(&id)
            .map(|entry| std::mem::take(&mut entry.subs))
            .unwrap_or_default();
        for channel in subs {
            if let Some(stream) = self.streams.get_mut(&channel) {
                stream.subscribers.remove(&id);
            }
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections
            .values()
            .filter(|entry| !entry.closing && entry.subject.is_some())
            .count()
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.connections
            .values()
            .filter(|entry| !entry.closing)
            .count()
    }

    /// Queues `out` for a connection. A full queue closes it with 3008.
    pub(crate) fn deliver(&mut self, id: u64, out: Out) -> bool {
        let Some(entry) = self.connections.get_mut(&id) else {
            return false;
        };
        if entry.closing {
            return false;
        }
        match entry.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                entry.closing = true;
                entry
                    .kill
                    .send_replace(Kill::CloseNow(3008, String::from("slow")));
                push_bounded(&mut self.close_codes, 3008);
                self.detach(id);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Closes a connection with a close frame after what is queued; the
    /// first close of a connection wins.
    pub(crate) fn close_connection(&mut self, id: u64, code: u16, reason: &str) {
        let Some(entry) = self.connections.get_mut(&id) else {
            return;
        };
        if entry.closing {
            return;
        }
        entry.closing = true;
        let kill = match entry.tx.try_send(Out::Close(code, reason.to_owned())) {
            Ok(()) => Kill::Closing,
            Err(_) => Kill::CloseNow(code, reason.to_owned()),
        };
        entry.kill.send_replace(kill);
        push_bounded(&mut self.close_codes, code);
        self.detach(id);
    }

    /// The peer closed: stop delivering to the connection.
    pub(crate) fn mark_closing(&mut self, id: u64) {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.closing = true;
        }
        self.detach(id);
    }

    pub(crate) fn close_all(&mut self, code: u16, reason: &str) {
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.close_connection(id, code, reason);
        }
    }

    pub(crate) fn abort_all(&mut self) {
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.abort_connection(id);
        }
    }

    /// The connection subscribed to `channel` (the first, if several are).
    pub(crate) fn connection_subscribed_to(&self, channel: &str) -> Option<u64> {
        let mut ids: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, entry)| entry.subs.contains(channel))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.first().copied()
    }

    pub(crate) fn send_raw(&mut self, frame: &str) {
        let frame: Arc<str> = Arc::from(frame);
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.deliver(id, Out::Raw(Arc::clone(&frame)));
        }
    }

    pub(crate) fn record_command(&mut self, connection: u64, command: &Command) {
        push_bounded(
            &mut self.received,
            ReceivedCommand {
                connection,
                command: command.clone(),
            },
        );
    }

    pub(crate) fn record_violation(&mut self, connection: u64, violation: &str) {
        push_bounded(
            &mut self.violations,
            format!("connection {connection}: {violation}"),
        );
    }

    // ----- protocol steps ----------------------------------------------------------

    pub(crate) fn connect(
        &mut self,
        id: u64,
        command_id: u32,
        token: Option<&str>,
        ping_secs: u32,
    ) -> Outcome {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("connect without a token"),
            );
        };
        let now = Instant::now();
        let (subject, expires_at) = match self.conn_tokens.get(token) {
            None => {
                return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None);
            }
            Some(t) if self.is_revoked(&t.issued_by) => {
                return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None);
            }
            Some(t) => (t.subject.clone(), t.expires_at),
        };
        if expired(expires_at, now) {
            let reply = error_line(command_id, codes::TOKEN_EXPIRED, "token expired");
            self.deliver(id, Out::Line(reply));
            return Outcome::ConnectFailed;
        }
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subject = Some(subject);
        }
        let reply = line(&Reply {
            id: command_id,
            connect: Some(ConnectResult {
                client: random_uuid(),
                version: String::from("4.1.0-emulator"),
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
                ping: ping_secs,
                pong: ping_secs > 0,
                ..ConnectResult::default()
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    pub(crate) fn subscribe(
        &mut self,
        id: u64,
        command_id: u32,
        request: &SubscribeRequest,
    ) -> Outcome {
        let channel = request.channel.as_str();
        if channel.is_empty() {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("subscribe without a channel"),
            );
        }
        let Some(private) = namespace_privacy(channel) else {
            return self.reply_error(id, command_id, codes::UNKNOWN_CHANNEL);
        };
        if let Some(error) = self.take_subscribe_failure() {
            let reply = Reply {
                id: command_id,
                error: Some(error),
                ..Reply::default()
            };
            self.deliver(id, Out::Line(line(&reply)));
            return Outcome::Done;
        }
        let Some(entry) = self.connections.get(&id) else {
            return Outcome::Done;
        };
        if entry.subs.contains(channel) {
            return self.reply_error(id, command_id, codes::ALREADY_SUBSCRIBED);
        }
        if self
            .config
            .channel_limit
            .is_some_and(|limit| entry.subs.len() >= limit)
        {
            return self.reply_error(id, command_id, codes::LIMIT_EXCEEDED);
        }
        let subject = entry.subject.clone();
        let now = Instant::now();
        let token = request
            .token
            .as_ref()
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty());
        let expires_at = match token {
            None if private => {
                return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
            }
            None => None,
            Some(token) => match self.check_sub_token(token, channel, subject.as_ref(), now) {
                Ok(expires_at) => expires_at,
                Err(outcome) => return self.fail_sub_token(id, command_id, outcome),
            },
        };

        let stream = self
            .streams
            .entry(channel.to_owned())
            .or_insert_with(Stream::new);
        let history = self.config.history;
        let mut result = SubscribeResult {
            expires: expires_at.is_some(),
            ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            ..SubscribeResult::default()
        };
        // As centrifuge's `client.go`: `was_recovering` echoes the request
        // whether or not the channel can recover; stream fields and the
        // recovery attempt only exist with history (recovery) on.
        result.was_recovering = request.recover;
        if history {
            result.recoverable = true;
            result.positioned = true;
            result.epoch = stream.epoch.clone();
            result.offset = stream.top;
        }
        if history && request.recover {
            let epoch_matches = request.epoch.is_empty() || request.epoch == stream.epoch;
            let from = request.offset;
            let missed = stream.top.saturating_sub(from);
            let oldest_kept = stream.history.front().map_or(stream.top + 1, |p| p.offset);
            let recoverable = epoch_matches
                && from <= stream.top
                && missed <= RECOVERY_LIMIT
                && (missed == 0 || oldest_kept <= from + 1);
            if recoverable {
                result.recovered = true;
                result.offset = from;
                result.publications = stream
                    .history
                    .iter()
                    .filter(|p| p.offset > from)
                    .cloned()
                    .collect();
            }
        }
        stream.subscribers.insert(id);
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subs.insert(channel.to_owned());
        }
        let reply = line(&Reply {
            id: command_id,
            subscribe: Some(result),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    /// Validates a subscription token for `channel` and the connection's
    /// subject: `Ok(expiry)` or `Err(what to answer)`.
    fn check_sub_token(
        &self,
        token: &str,
        channel: &str,
        subject: Option<&Subject>,
        now: Instant,
    ) -> Result<Option<Instant>, SubTokenProblem> {
        let Some(record) = self.sub_tokens.get(token) else {
            return Err(SubTokenProblem::Invalid);
        };
        if self.is_revoked(&record.issued_by) {
            return Err(SubTokenProblem::Invalid);
        }
        if record.channel != channel || subject != Some(&Subject::User(record.user_id)) {
            return Err(SubTokenProblem::Mismatch);
        }
        if expired(record.expires_at, now) {
            return Err(SubTokenProblem::Expired);
        }
        Ok(record.expires_at)
    }

    fn fail_sub_token(&mut self, id: u64, command_id: u32, problem: SubTokenProblem) -> Outcome {
        match problem {
            SubTokenProblem::Invalid => self.reply_error(id, command_id, codes::PERMISSION_DENIED),
            SubTokenProblem::Expired => self.reply_error(id, command_id, codes::TOKEN_EXPIRED),
            SubTokenProblem::Mismatch => Outcome::close(
                codes::CLOSE_INVALID_TOKEN,
                "invalid token",
                String::from("subscription token of another channel or user"),
            ),
        }
    }

    /// `history` from a subscriber of the channel, when allowed (see
    /// `EmulatorConfig::history_for_subscribers`): the kept publications
    /// after `since`, at most `limit` (all with a negative limit, none with
    /// 0, as Centrifugo), and the stream's position.
    pub(crate) fn history(
        &mut self,
        id: u64,
        command_id: u32,
        request: Option<&RawValue>,
    ) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Since {
            #[serde(default)]
            offset: u64,
            #[serde(default)]
            epoch: String,
        }
        #[derive(serde::Deserialize)]
        struct HistoryRequest {
            channel: String,
            #[serde(default)]
            limit: i64,
            #[serde(default)]
            since: Option<Since>,
        }
        if !self.config.history_for_subscribers {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        let Some(request) =
            request.and_then(|raw| serde_json::from_str::<HistoryRequest>(raw.get()).ok())
        else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("history without a channel"),
            );
        };
        let subscribed = self
            .connections
            .get(&id)
            .is_some_and(|entry| entry.subs.contains(&request.channel));
        if !subscribed {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        if !self.config.history {
            return self.reply_error(id, command_id, codes::NOT_AVAILABLE);
        }
        let stream = self
            .streams
            .entry(request.channel.clone())
            .or_insert_with(Stream::new);
        let after = match &request.since {
            Some(since) if !since.epoch.is_empty() && since.epoch != stream.epoch => {
                return self.reply_error(id, command_id, codes::UNRECOVERABLE_POSITION);
            }
            Some(since) => since.offset,
            None => 0,
        };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let result = HistoryResult {
            publications: stream
                .history
                .iter()
                .filter(|p| p.offset > after)
                .take(limit)
                .cloned()
                .collect(),
            epoch: stream.epoch.clone(),
            offset: stream.top,
        };
        let reply = line(&Reply {
            id: command_id,
            history: Some(result),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        Outcome::Done
    }

    pub(crate) fn reply_error(&mut self, id: u64, command_id: u32, code: u32) -> Outcome {
        self.deliver(
            id,
            Out::Line(error_line(command_id, code, error_message(code))),
        );
        Outcome::Done
    }

    pub(crate) fn unsubscribe(&mut self, id: u64, command_id: u32, channel: &str) -> Outcome {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subs.remove(channel);
        }
        if let Some(stream) = self.streams.get_mut(channel) {
            stream.subscribers.remove(&id);
        }
        let reply = line(&Reply {
            id: command_id,
            unsubscribe: Some(Empty {}),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        Outcome::Done
    }

    pub(crate) fn refresh(&mut self, id: u64, command_id: u32, token: Option<&str>) -> Outcome {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("refresh without a token"),
            );
        };
        let now = Instant::now();
        let current = self.connections.get(&id).and_then(|e| e.subject.clone());
        let expires_at = match self.conn_tokens.get(token) {
            Some(t) if !self.is_revoked(&t.issued_by) && Some(&t.subject) == current.as_ref() => {
                t.expires_at
            }
            _ => return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None),
        };
        if expired(expires_at, now) {
            return Outcome::close(codes::CLOSE_CONNECTION_EXPIRED, "connection expired", None);
        }
        let reply = line(&Reply {
            id: command_id,
            refresh: Some(RefreshResult {
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    pub(crate) fn sub_refresh(
        &mut self,
        id: u64,
        command_id: u32,
        channel: &str,
        token: Option<&str>,
    ) -> Outcome {
        if channel.is_empty() {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("sub_refresh without a channel"),
            );
        }
        let Some(entry) = self.connections.get(&id) else {
            return Outcome::Done;
        };
        if !entry.subs.contains(channel) {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        let subject = entry.subject.clone();
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return self.reply_error(id, command_id, codes::BAD_REQUEST);
        };
        let now = Instant::now();
        let expires_at = match self.check_sub_token(token, channel, subject.as_ref(), now) {
            Ok(expires_at) => expires_at,
            Err(SubTokenProblem::Expired) => {
                return Outcome::close(
                    codes::CLOSE_SUBSCRIPTION_EXPIRED,
                    "subscription expired",
                    None,
                );
            }
            Err(problem) => return self.fail_sub_token(id, command_id, problem),
        };
        let reply = line(&Reply {
            id: command_id,
            sub_refresh: Some(RefreshResult {
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    // ----- REST fault injection and log -------------------------------------------------

    pub(crate) fn fail_next_rest(&mut self, count: usize, status: u16, retry_after: Option<u64>) {
        self.fail_rest = (count > 0).then_some(InjectedFailure {
            remaining: count,
            status,
            retry_after,
        });
    }

    pub(crate) fn fail_next_ws_upgrade(&mut self, count: usize, status: u16) {
        self.fail_upgrade = (count > 0).then_some(InjectedFailure {
            remaining: count,
            status,
            retry_after: None,
        });
    }

    pub(crate) fn delay_next_rest(&mut self, count: usize, delay: Duration) {
        self.delay_rest = (count > 0).then_some((count, delay));
    }

    pub(crate) fn take_rest_delay(&mut self) -> Option<Duration> {
        let (remaining, delay) = self.delay_rest.as_mut()?;
        *remaining -= 1;
        let delay = *delay;
        if *remaining == 0 {
            self.delay_rest = None;
        }
        Some(delay)
    }

    pub(crate) fn expire_next_tokens(&mut self, count: usize) {
        self.expire_next = count;
    }

    pub(crate) fn fail_next_subscribes(&mut self, count: usize, code: u32, temporary: bool) {
        let error = ErrorReply {
            code,
            message: error_message(code).to_owned(),
            temporary,
        };
        self.fail_subscribe = (count > 0).then_some((count, error));
    }

    fn take_subscribe_failure(&mut self) -> Option<ErrorReply> {
        let (remaining, error) = self.fail_subscribe.as_mut()?;
        *remaining -= 1;
        let error = error.clone();
        if *remaining == 0 {
            self.fail_subscribe = None;
        }
        Some(error)
    }

    fn take(slot: &mut Option<InjectedFailure>) -> Option<InjectedFailure> {
        let failure = slot.as_mut()?;
        failure.remaining -= 1;
        let taken = *failure;
        if failure.remaining == 0 {
            *slot = None;
        }
        Some(taken)
    }

    pub(crate) fn take_rest_failure(&mut self) -> Option<InjectedFailure> {
        Self::take(&mut self.fail_rest)
    }

    pub(crate) fn take_upgrade_failure(&mut self) -> Option<InjectedFailure> {
        Self::take(&mut self.fail_upgrade)
    }

    /// Records a REST call; returns its sequence number for
    /// [`State::finish_rest`].
    pub(crate) fn record_rest(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: String,
    ) -> u64 {
        push_bounded(
            &mut self.rest_calls,
            RestCall {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                body,
                status: None,
                error: None,
            },
        );
        self.rest_recorded += 1;
        self.rest_recorded
    }

    /// Writes the answer of the call numbered `seq` into its record (if it
    /// is still kept).
    pub(crate) fn finish_rest(&mut self, seq: u64, status: u16, error: Option<String>) {
        let behind = self.rest_recorded - seq;
        let Some(index) = (self.rest_calls.len() as u64).checked_sub(behind + 1) else {
            return;
        };
        if let Some(call) = self.rest_calls.get_mut(index as usize) {
            call.status = Some(status);
            call.error = error;
        }
    }
}

pub(crate) enum SubTokenProblem {
    Invalid,
    Expired,
    Mismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_tell_public_private_and_unknown_apart() {
        assert_eq!(namespace_privacy("api-channel-chat:1"), Some(false));
        assert_eq!(namespace_privacy("api-channel-points:7"), Some(false));
        assert_eq!(
            namespace_privacy("api-channel-private-points:7"),
            Some(true)
        );
        assert_eq!(
            namespace_privacy("api-channel-limited-private-chat:7"),
            Some(true)
        );
        assert_eq!(namespace_privacy("news:1"), None);
        assert_eq!(namespace_privacy("api-channel-chat:"), None);
        assert_eq!(namespace_privacy("api-channel-chat"), None);
    }

    #[test]
    fn every_channel_name_is_in_a_known_namespace_with_the_documented_privacy() {
        let names = ChannelNames::for_channel_id(9);
        for name in names.all().iter().take(3) {
            assert_eq!(namespace_privacy(name), Some(false), "{name}");
        }
        for name in names.private() {
            assert_eq!(namespace_privacy(&name), Some(true), "{name}");
        }
    }

    #[test]
    fn ttl_rounds_up_and_is_at_least_one_second() {
        let now = Instant::now();
        assert_eq!(ttl_secs(now + Duration::from_millis(1500), now), 2);
        assert_eq!(ttl_secs(now + Duration::from_secs(3), now), 3);
        assert_eq!(ttl_secs(now, now), 1);
    }

    #[test]
    fn history_is_bounded_and_offsets_restart_with_a_new_epoch() {
        let mut state = State::new(EmulatorConfig {
            history_size: 3,
            ..EmulatorConfig::default()
        });
        for n in 1..=5 {
            assert_eq!(state.publish("api-channel-chat:1", &json!({"n": n})), n);
        }
        let (epoch, top) = state.stream_position("api-channel-chat:1");
        assert_eq!(top, 5);
        let stream = &state.streams["api-channel-chat:1"];
        let kept: Vec<u64> = stream.history.iter().map(|p| p.offset).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        state.restart_channel("api-channel-chat:1");
        let (new_epoch, top) = state.stream_position("api-channel-chat:1");
        assert_eq!(top, 0);
        assert_ne!(epoch, new_epoch);
        assert_eq!(state.publish("api-channel-chat:1", &json!({})), 1);
    }

    fn logged_ids(state: &State, slug: &str, limit: usize) -> Vec<i64> {
        state
            .chat_messages(slug, limit)
            .expect("known slug")
            .iter()
            .map(|message| {
                serde_json::from_str::<serde_json::Value>(message.get()).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn chat_log_is_bounded_newest_first_and_kept_without_history() {
        let mut state = State::new(EmulatorConfig {
            history: false,
            ..EmulatorConfig::default()
        });
        let names = state.add_channel("slug", 4);
        let total = CHAT_LOG_LIMIT as i64 + 5;
        for id in 1..=total {
            let payload = super::super::demo_chat_message(id, "hi");
            assert_eq!(state.publish(&names.chat, &payload), 0);
        }
        // Other channels and other types are not chat.
        state.publish(
            &names.private_chat,
            &super::super::demo_chat_message(-1, "x"),
        );
        state.publish(
            &names.chat,
            &json!({"type": "channel_follow_create", "data": {}}),
        );
        state.publish(&names.chat, &json!({"unexpected": true}));
        assert_eq!(state.chat_logs[&names.chat].len(), CHAT_LOG_LIMIT);
        assert_eq!(
            logged_ids(&state, "slug", 3),
            vec![total, total - 1, total - 2]
        );
        assert_eq!(
            logged_ids(&state, "slug", usize::MAX).last(),
            Some(&(total - CHAT_LOG_LIMIT as i64 + 1))
        );
        state.publish(&names.chat, &super::super::chat_message_delete(total - 1));
        assert_eq!(logged_ids(&state, "slug", 2), vec![total, total - 2]);
        assert!(state.chat_messages("unknown", 5).is_none());
        assert!(state.streams[&names.chat].history.is_empty());
    }

    #[test]
    fn without_history_blast_frames_carry_no_offset_and_fill_the_chat_log() {
        let mut state = State::new(EmulatorConfig {
            history: false,
            ..EmulatorConfig::default()
        });
        state.add_channel("slug", 2);
        let report = state
            .blast(
                "api-channel-chat:2",
                1_500,
                100,
                super::super::blast::chat_payload,
            )
            .unwrap();
        assert_eq!((report.first_offset, report.last_offset), (0, 0));
        assert_eq!(state.stream_position("api-channel-chat:2").1, 0);
        assert_eq!(state.chat_logs["api-channel-chat:2"].len(), CHAT_LOG_LIMIT);
        assert_eq!(logged_ids(&state, "slug", 1), vec![700_000_000 + 1_499]);
    }

    #[test]
    fn switching_history_restarts_every_stream() {
        let mut state = State::new(EmulatorConfig::default());
        state.publish("api-channel-chat:1", &json!({}));
        let (epoch, _) = state.stream_position("api-channel-chat:1");
        state.set_history(false);
        assert_eq!(state.publish("api-channel-chat:1", &json!({})), 0);
        assert!(state.streams["api-channel-chat:1"].history.is_empty());
        state.set_history(true);
        let (new_epoch, top) = state.stream_position("api-channel-chat:1");
        assert_ne!(epoch, new_epoch);
        assert_eq!(top, 0);
        assert_eq!(state.publish("api-channel-chat:1", &json!({})), 1);
        // Setting the same value again changes nothing.
        state.set_history(true);
        assert_eq!(state.stream_position("api-channel-chat:1"), (new_epoch, 1));
    }

    #[test]
    fn injected_rest_failures_run_out() {
        let mut state = State::new(EmulatorConfig::default());
        state.fail_next_rest(2, 503, Some(1));
        assert_eq!(state.take_rest_failure().map(|f| f.status), Some(503));
        assert_eq!(state.take_rest_failure().map(|f| f.status), Some(503));
        assert!(state.take_rest_failure().is_none());
    }

    #[test]
    fn refresh_tokens_rotate_and_are_bound_to_their_client() {
        let mut state = State::new(EmulatorConfig::default());
        state.add_refresh_token("r1", 5, "app");
        assert!(state.oauth_refresh("other-app", "r1").is_err());
        let (access, refresh, _) = state.oauth_refresh("app", "r1").unwrap();
        assert!(state.oauth_refresh("app", "r1").is_err());
        assert!(matches!(
            state.authenticate(Some(&format!("Bearer {access}"))),
            Some(Caller::User { user_id: 5, .. })
        ));
        assert!(state.oauth_refresh("app", &refresh).is_ok());
    }
}
