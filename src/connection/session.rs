//! The connection's decisions, without I/O.
//!
//! [`Session`] is a state machine in the style of `quinn-proto`: the actor
//! feeds it inputs (a received frame, a command from the handle, a token or
//! REST answer, the socket's end, the time) through its `handle_*` methods,
//! and takes its outputs: [`Action`]s to perform (fetch tokens, dial, close
//! the socket, finish), frames to send ([`Session::take_outgoing`]),
//! deliveries for the caller ([`Session::take_deliveries`]) and the next
//! deadline ([`Session::poll_timeout`]). Time always comes in as an
//! argument, so the unit tests below drive every path without a socket or a
//! sleep.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::backfill;
use super::channel::{Backfill, CatchUp, Channel, Held, Position, Status};
use super::command::Command;
use super::config::Config;
use super::policy::{self, AfterClose};
use crate::delivery::{
    Batch, CloseReason, Delivery, Event, Payload, Publication, Queued, RawPublication, Recovery,
    State,
};
use crate::error::{Error, ErrorKind};
use crate::event::{ChatKey, ChatMessage, VkEvent, WebSocketChannels, skim_chat_key};
use crate::protocol::{self, Reply, codes};
use crate::secret::Secret;

/// Largest outgoing frame: Centrifugo's default inbound limit is 64 KiB.
pub(crate) const MAX_OUTGOING_FRAME: usize = 32 * 1024;
/// Retry delay for a failed token refresh that may still succeed.
const REFRESH_RETRY: Duration = Duration::from_secs(5);
/// How long `close()` waits for the server's answering close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Failed chat fill-in requests before the loss is reported as a gap.
const BACKFILL_ATTEMPTS: u32 = 8;
/// Publications asked for in one `history` page.
const HISTORY_PAGE: usize = 1000;
/// Malformed lines are logged at most this often (with their count).
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(1);

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

/// Where the session stands between links.
#[derive(Debug)]
enum Phase {
    /// The next attempt starts at `until`.
    Waiting {
        until: Instant,
    },
    /// Token requests for attempt `attempt` are out.
    Fetching {
        connection: Option<Secret>,
        channels: Option<HashMap<String, Secret>>,
        asked: Vec<Arc<str>>,
    },
    /// The WebSocket is being opened.
    Dialing {
        connection: Secret,
        channels: HashMap<String, Secret>,
        asked: Vec<Arc<str>>,
    },
    /// A socket is open: see `Session::link`.
    Open,
    /// `close()` was asked; waiting for the server's close frame.
    Closing {
        until: Instant,
    },
    Finished,
}

/// What a sent command waits for.
#[derive(Debug)]
enum Pending {
    Connect,
    Subscribe(Arc<str>),
    Unsubscribe,
    Refresh,
    SubRefresh(Arc<str>),
    History(Arc<str>),
}

/// Everything that belongs to one open WebSocket.
#[derive(Debug)]
struct Link {
    next_id: u32,
    pending: HashMap<u32, Pending>,
    /// Command ids in sending order with their reply deadlines.
    deadlines: VecDeque<(u32, Instant)>,
    /// Set by the connect reply.
    ping: Option<Duration>,
    pong: bool,
    last_received: Instant,
    connected_at: Option<Instant>,
    refresh_at: Option<Instant>,
    /// Reading stopped at this moment (the caller is behind): silence is
    /// ours, not the server's, so the watchdog and reply deadlines wait.
    paused_since: Option<Instant>,
}

impl Link {
    fn new(now: Instant) -> Link {
        Link {
            next_id: 0,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            ping: None,
            pong: false,
            last_received: now,
            connected_at: None,
            refresh_at: None,
            paused_since: None,
        }
    }

    fn watchdog(&self, margin: Duration) -> Option<Instant> {
        if self.paused_since.is_some() {
            return None;
        }
        self.ping
            .map(|ping| self.last_received + ping.saturating_add(margin))
    }

    /// The earliest reply deadline of a command still waiting.
    fn command_deadline(&mut self) -> Option<Instant> {
        if self.paused_since.is_some() {
            return None;
        }
        while let Some((id, deadline)) = self.deadlines.front() {
            if self.pending.contains_key(id) {
                return Some(*deadline);
            }
            self.deadlines.pop_front();
        }
        None
    }
}

/// How a link (or an attempt at one) ended.
#[derive(Debug)]
enum LinkEnd {
    /// Something failed that may work next time.
    Retry {
        code: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server closed the connection with a code.
    ServerClosed { code: u16, reason: String },
    /// Stop for good.
    Stop(CloseReason),
}

impl LinkEnd {
    fn retry(reason: impl Into<String>) -> LinkEnd {
        LinkEnd::Retry {
            code: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A failed API call: retry if it may help, stop if not.
    fn from_api_error(error: Error) -> LinkEnd {
        if error.is_retryable() {
            LinkEnd::Retry {
                code: None,
                reason: error.to_string(),
                retry_after: error.retry_after(),
            }
        } else {
            LinkEnd::Stop(CloseReason::Failed(error))
        }
    }
}

/// Malformed lines, counted and logged at most once a second.
#[derive(Debug, Default)]
struct Malformed {
    since_log: u64,
    logged_at: Option<Instant>,
}

impl Malformed {
    fn note(&mut self, now: Instant, what: &dyn std::fmt::Display) {
        self.since_log += 1;
        if self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= MALFORMED_LOG_EVERY)
        {
            tracing::warn!(
                skipped = self.since_log,
                last = %what,
                "skipping lines the connector cannot read"
            );
            self.since_log = 0;
            self.logged_at = Some(now);
        }
    }
}

/// Unix time of an [`Instant`]: the session is given both once.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    at: Instant,
    unix_millis: i64,
}

impl WallClock {
    fn millis(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.at).as_millis();
        self.unix_millis
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
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
    deliveries: Vec<Queued>,
    malformed: Malformed,
    clock: WallClock,
    backfills: u64,
    random: u64,
    /// VK channels followed by slug whose channels are not known yet.
    slugs: HashMap<Arc<str>, Resolution>,
}

/// A VK channel being looked up: `retry_at` is set while waiting to ask again.
#[derive(Debug, Default)]
struct Resolution {
    failures: u32,
    retry_at: Option<Instant>,
}

/// What a VK channel's lookup found: its pubsub channels, and the private
/// ones this user is granted a subscription token for.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) channels: WebSocketChannels,
    pub(crate) granted: HashSet<String>,
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
            deliveries: Vec::new(),
            malformed: Malformed::default(),
            clock: WallClock {
                at: now,
                unix_millis,
            },
            backfills: 0,
            random: seed | 1,
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

    /// Frames to send, in order, each at most [`MAX_OUTGOING_FRAME`] bytes.
    pub(crate) fn take_outgoing(&mut self) -> Vec<String> {
        std::mem::take(&mut self.outgoing)
    }

    /// Deliveries for the caller, in order.
    pub(crate) fn take_deliveries(&mut self) -> std::vec::Drain<'_, Queued> {
        self.deliveries.drain(..)
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
        let lookup = self.slugs.values().filter_map(|slug| slug.retry_at).min();
        [phase, channel, lookup]
            .into_iter()
            .chain(link)
            .flatten()
            .min()
    }

    fn next_channel_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, name))) = self.timers.peek() {
            let current = self.channels.get(name).and_then(Channel::next_timer);
            if current == Some(*at) {
                return Some(*at);
            }
            self.timers.pop();
        }
        None
    }

    /// Registers the channel's next timer.
    fn arm(&mut self, name: &Arc<str>) {
        if let Some(at) = self.channels.get(name).and_then(Channel::next_timer) {
            self.timers.push(Reverse((at, name.clone())));
        }
    }

    // --- inputs: the caller -------------------------------------------

    pub(crate) fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Subscribe { channel, chat_slug } => {
                if let Some(name) = self.want(&channel, chat_slug.as_deref())
                    && self.has_link()
                {
                    self.request_tokens(vec![name], Purpose::Subscribe);
                }
            }
            Command::Follow { slug } => self.follow(slug),
            Command::Unsubscribe(channel) => self.unsubscribe(now, &channel),
            Command::Close => self.close(now),
        }
    }

    /// Subscribes a burst of channels with one token request.
    pub(crate) fn handle_subscribe_burst(&mut self, burst: Vec<(String, Option<String>)>) {
        let names: Vec<Arc<str>> = burst
            .into_iter()
            .filter_map(|(channel, slug)| self.want(&channel, slug.as_deref()))
            .collect();
        if self.has_link() {
            self.request_tokens(names, Purpose::Subscribe);
        }
    }

    /// Reading the socket stops (the caller is behind) or starts again.
    /// Time spent paused does not count against the server.
    pub(crate) fn set_paused(&mut self, now: Instant, paused: bool) {
        let Some(link) = &mut self.link else {
            return;
        };
        if paused {
            link.paused_since.get_or_insert(now);
        } else if let Some(since) = link.paused_since.take() {
            let paused_for = now.saturating_duration_since(since);
            link.last_received = now;
            for (_, deadline) in &mut link.deadlines {
                *deadline += paused_for;
            }
        }
    }

    /// The caller dropped its stream: stop at once.
    pub(crate) fn handle_caller_gone(&mut self) {
        self.finish(CloseReason::Requested);
    }

    fn close(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Open) {
            self.actions.push_back(Action::CloseSocket { linger: true });
            self.phase = Phase::Closing {
                until: now + CLOSE_LINGER,
            };
        } else if !matches!(self.phase, Phase::Closing { .. }) {
            self.finish(CloseReason::Requested);
        }
    }

    /// Whether a link is open (connected or waiting for the connect reply):
    /// a subscribe sent now follows `connect` on it, which the server handles
    /// in order.
    fn has_link(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    // --- inputs: answers to actions ----------------------------------

    pub(crate) fn handle_connection_token(
        &mut self,
        now: Instant,
        attempt: u64,
        answer: Result<Secret, Error>,
    ) {
        if attempt != self.attempt {
            return;
        }
        match (&mut self.phase, answer) {
            (
                Phase::Fetching {
                    connection, asked, ..
                },
                Ok(token),
            ) => {
                *connection = Some(token);
                *asked = self.channels.keys().cloned().collect();
                self.actions.push_back(Action::FetchChannelTokens {
                    attempt,
                    purpose: Purpose::Subscribe,
                    channels: asked.clone(),
                });
            }
            (Phase::Fetching { .. }, Err(error)) => {
                self.end_link(now, LinkEnd::from_api_error(error));
            }
            (Phase::Open, Ok(token)) => {
                let command = protocol::Command {
                    refresh: Some(protocol::RefreshRequest { token: Some(token) }),
                    ..Default::default()
                };
                self.send_command(now, command, Pending::Refresh);
            }
            (Phase::Open, Err(error)) if error.is_retryable() => {
                tracing::warn!(%error, "connection token refresh failed; retrying");
                if let Some(link) = &mut self.link {
                    link.refresh_at = Some(now + REFRESH_RETRY);
                }
            }
            (Phase::Open, Err(error)) => self.finish(CloseReason::Failed(error)),
            _ => {}
        }
    }

    pub(crate) fn handle_channel_tokens(
        &mut self,
        now: Instant,
        attempt: u64,
        purpose: Purpose,
        channels: Vec<Arc<str>>,
        answer: Result<HashMap<String, Secret>, Error>,
    ) {
        if attempt != self.attempt {
            return;
        }
        if let Phase::Fetching {
            channels: fetched, ..
        } = &mut self.phase
        {
            match answer {
                Ok(tokens) => {
                    *fetched = Some(tokens);
                    self.dial_when_ready();
                }
                Err(error) => self.end_link(now, LinkEnd::from_api_error(error)),
            }
            return;
        }
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        match answer {
            Ok(tokens) => {
                for name in channels {
                    let token = tokens.get(name.as_ref()).cloned();
                    match purpose {
                        Purpose::Subscribe | Purpose::Resubscribe => {
                            self.subscribe_with_token(now, &name, token)
                        }
                        Purpose::Refresh => self.refresh_with_token(now, &name, token),
                    }
                }
            }
            Err(error) if error.kind() == ErrorKind::Unauthorized => {
                self.finish(CloseReason::Failed(error));
            }
            Err(error) if !error.is_retryable() => {
                // The API refused this batch for good: those channels fail,
                // the connection and its other channels go on.
                for name in channels {
                    self.fail_channel(&name, 0, error.to_string());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "subscription token request failed; retrying");
                for name in channels {
                    match purpose {
                        Purpose::Subscribe | Purpose::Resubscribe => {
                            self.schedule_resubscribe(now, &name, true, error.retry_after())
                        }
                        Purpose::Refresh => {
                            if let Some(channel) = self.channels.get_mut(&name) {
                                channel.refresh_at = Some(now + REFRESH_RETRY);
                                self.arm(&name);
                            }
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn handle_dialed(&mut self, now: Instant, attempt: u64, result: Result<(), String>) {
        if attempt != self.attempt {
            return;
        }
        let Phase::Dialing { .. } = self.phase else {
            return;
        };
        if let Err(reason) = result {
            self.end_link(now, LinkEnd::retry(reason));
            return;
        }
        let Phase::Dialing {
            connection,
            channels: tokens,
            asked,
        } = std::mem::replace(&mut self.phase, Phase::Open)
        else {
            unreachable!("checked above");
        };
        self.link = Some(Link::new(now));
        let connect = protocol::Command {
            connect: Some(protocol::ConnectRequest {
                token: Some(connection),
                name: "vklive-pubsub".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                data: None,
            }),
            ..Default::default()
        };
        self.send_command(now, connect, Pending::Connect);
        // Subscribes go in the same frames as connect (the server handles
        // them in order), so a thousand channels cost one round trip.
        let asked: HashSet<Arc<str>> = asked.into_iter().collect();
        let mut late = Vec::new();
        let names: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for name in names {
            if let Some(channel) = self.channels.get_mut(&name) {
                channel.status = Status::AwaitingToken;
            }
            if asked.contains(&name) {
                let token = tokens.get(name.as_ref()).cloned();
                self.subscribe_with_token(now, &name, token);
            } else {
                // Wanted while the tokens were being fetched.
                late.push(name);
            }
        }
        self.request_tokens(late, Purpose::Subscribe);
    }

    pub(crate) fn handle_chat_history(
        &mut self,
        now: Instant,
        name: &str,
        backfill_id: u64,
        answer: Result<Vec<ChatMessage>, Error>,
    ) {
        let Some((name, channel)) = self.channels.get_key_value(name) else {
            return;
        };
        let name = name.clone();
        let Some(backfill) = channel
            .chat
            .as_ref()
            .and_then(|chat| chat.backfill.as_ref())
        else {
            return;
        };
        if backfill.id != backfill_id {
            return;
        }
        match answer {
            Ok(messages) => self.complete_backfill(&name, messages),
            Err(error) if error.is_retryable() && backfill.failures + 1 < BACKFILL_ATTEMPTS => {
                tracing::warn!(channel = %name, %error, "chat history request failed; retrying");
                let failures = backfill.failures;
                let delay = self.backoff(failures, error.retry_after());
                if let Some(backfill) = self.backfill_mut(&name) {
                    backfill.failures += 1;
                    backfill.retry_at = Some(now + delay);
                }
                self.arm(&name);
            }
            Err(error) => {
                tracing::warn!(channel = %name, %error, "chat history unavailable; reporting a gap");
                let missed = backfill.missed;
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed,
                });
                self.end_backfill(&name);
            }
        }
    }

    /// The answer to [`Action::ResolveChannel`]: subscribe the VK channel's
    /// public channels (its chat filled in from REST after a loss) and the
    /// private ones granted; retry what may work later, report the rest.
    pub(crate) fn handle_resolved(
        &mut self,
        now: Instant,
        slug: &str,
        answer: Result<Resolved, Error>,
    ) {
        let Some((slug, lookup)) = self.slugs.get_key_value(slug) else {
            return;
        };
        let slug = slug.clone();
        let resolved = match answer {
            Ok(resolved) => resolved,
            Err(error) if error.is_retryable() => {
                let failures = lookup.failures;
                let delay = self.backoff(failures, error.retry_after());
                tracing::warn!(%slug, %error, "channel lookup failed; retrying");
                if let Some(lookup) = self.slugs.get_mut(&slug) {
                    lookup.failures = failures.saturating_add(1);
                    lookup.retry_at = Some(now + delay);
                }
                return;
            }
            Err(error) => {
                self.slugs.remove(&slug);
                self.push_event(Event::SubscriptionFailed {
                    channel: slug.to_string(),
                    code: 0,
                    reason: error.to_string(),
                });
                return;
            }
        };
        self.slugs.remove(&slug);
        let chat = resolved
            .channels
            .chat
            .as_deref()
            .filter(|name| !name.is_empty());
        let discovered: Vec<(String, Option<String>)> = resolved
            .channels
            .iter()
            .filter(|(key, name)| key.is_public() || resolved.granted.contains(*name))
            .map(|(_, name)| {
                let chat_slug = (chat == Some(name)).then(|| slug.to_string());
                (name.to_owned(), chat_slug)
            })
            .collect();
        tracing::debug!(%slug, channels = discovered.len(), "channel resolved");
        self.actions.push_back(Action::Discovered(discovered));
    }

    /// Starts following a VK channel by slug.
    fn follow(&mut self, slug: String) {
        let slug: Arc<str> = slug.into();
        if self.slugs.contains_key(&slug) {
            return;
        }
        self.slugs.insert(slug.clone(), Resolution::default());
        self.actions.push_back(Action::ResolveChannel { slug });
    }

    // --- inputs: the socket --------------------------------------------

    /// A text frame: one or more lines.
    pub(crate) fn handle_frame(&mut self, now: Instant, frame: &Utf8Bytes) {
        let Some(link) = &mut self.link else {
            return;
        };
        link.last_received = now;
        let first_new = self.deliveries.len();
        let mut shared = 0;
        for (number, line) in protocol::frame_lines(frame.as_str()) {
            if !self.is_open() {
                break;
            }
            // The common line, a publication push as Centrifugo writes it,
            // cut without parsing: its payload stays in the frame, and the
            // typed decode in `Events` is its only parse.
            if let Some(cut) = protocol::cut_publication(line) {
                let start = position_in(frame, line);
                let data = start + cut.data.start..start + cut.data.end;
                shared += self.on_raw_publication(frame, cut.channel, cut.offset, data);
                continue;
            }
            // Other publication pushes in one pass, their payload validated.
            let raw = std::marker::PhantomData::<&RawValue>;
            if let Some(publication) = protocol::decode_publication(line, raw) {
                let data = publication.data.get();
                let start = position_in(frame, data);
                let range = start..start + data.len();
                shared +=
                    self.on_raw_publication(frame, &publication.channel, publication.offset, range);
                continue;
            }
            // A ping is exactly `{}`: an unsolicited pong makes Centrifugo
            // close with the terminal 3501.
            if protocol::is_ping_line(line) {
                self.on_ping();
                continue;
            }
            match protocol::decode_line::<Reply>(number, line) {
                Ok(reply) => self.on_reply(now, reply),
                Err(error) => self.malformed.note(now, &error),
            }
        }
        // Queued publications keep their frame alive: only where they are
        // most of it, so that memory stays proportional to what is queued.
        if shared * 2 < frame.len() {
            let new: Vec<Queued> = self.deliveries.drain(first_new..).collect();
            for mut delivery in new.into_iter().flat_map(Queued::into_deliveries) {
                if let Delivery::Publication(publication) = &mut delivery {
                    publication.data.unshare();
                }
                self.deliveries.push(Queued::One(delivery));
            }
        }
    }

    /// Any other inbound activity (a WebSocket ping, a binary frame): the
    /// link is alive.
    pub(crate) fn handle_activity(&mut self, now: Instant) {
        if let Some(link) = &mut self.link {
            link.last_received = now;
        }
    }

    /// The socket ended: a close frame with `code`, or an error or EOF
    /// (`code` is `None`).
    pub(crate) fn handle_closed(&mut self, now: Instant, code: Option<u16>, reason: String) {
        match self.phase {
            Phase::Closing { .. } => self.finish(CloseReason::Requested),
            Phase::Open => {
                let end = match code {
                    Some(code) => LinkEnd::ServerClosed { code, reason },
                    None => LinkEnd::retry(reason),
                };
                self.end_link(now, end);
            }
            _ => {}
        }
    }

    /// Time passed: fire whatever is due.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting { until } if until <= now => self.start_attempt(),
            Phase::Closing { until } if until <= now => {
                self.actions
                    .push_back(Action::CloseSocket { linger: false });
                self.finish(CloseReason::Requested);
                return;
            }
            _ => {}
        }
        if let Some(link) = &mut self.link {
            if link
                .watchdog(self.config.ping_margin)
                .is_some_and(|at| at <= now)
            {
                self.end_link(
                    now,
                    LinkEnd::retry("no ping from the server in time; the link is dead"),
                );
                return;
            }
            if link.command_deadline().is_some_and(|at| at <= now) {
                self.end_link(now, LinkEnd::retry("a command got no reply in time"));
                return;
            }
            if link.refresh_at.is_some_and(|at| at <= now) {
                link.refresh_at = None;
                self.actions.push_back(Action::FetchConnectionToken {
                    attempt: self.attempt,
                });
            }
        }
        self.fire_channel_timers(now);
        let due: Vec<Arc<str>> = self
            .slugs
            .iter()
            .filter(|(_, lookup)| lookup.retry_at.is_some_and(|at| at <= now))
            .map(|(slug, _)| slug.clone())
            .collect();
        for slug in due {
            if let Some(lookup) = self.slugs.get_mut(&slug) {
                lookup.retry_at = None;
            }
            self.actions.push_back(Action::ResolveChannel { slug });
        }
    }

    // --- the connection's life --------------------------------------------

    fn start_attempt(&mut self) {
        self.attempt += 1;
        // The connection token first: if the API refuses it, no channel
        // token is fetched in vain.
        self.actions.push_back(Action::FetchConnectionToken {
            attempt: self.attempt,
        });
        self.phase = Phase::Fetching {
            connection: None,
            channels: None,
            asked: Vec::new(),
        };
    }

    fn dial_when_ready(&mut self) {
        let Phase::Fetching {
            connection: Some(_),
            channels: Some(_),
            ..
        } = &self.phase
        else {
            return;
        };
        let Phase::Fetching {
            connection: Some(connection),
            channels: Some(channels),
            asked,
        } = std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            unreachable!("checked above");
        };
        self.phase = Phase::Dialing {
            connection,
            channels,
            asked,
        };
        self.actions.push_back(Action::Dial {
            attempt: self.attempt,
        });
    }

    /// A link, or an attempt at one, ended: reconnect after backoff, or stop.
    fn end_link(&mut self, now: Instant, end: LinkEnd) {
        let link = self.link.take();
        if link.is_some() {
            self.actions
                .push_back(Action::CloseSocket { linger: false });
        }
        let connected_for = link
            .as_ref()
            .and_then(|link| link.connected_at)
            .map(|at| now.saturating_duration_since(at));
        if connected_for.is_some_and(|lived| lived >= policy::TOKEN_RETRY_RESET_AFTER) {
            self.token_retry_left = true;
        }
        // A catch-up cut short: what it did not bring is a loss.
        let catching_up: Vec<Arc<str>> = self
            .channels
            .iter()
            .filter(|(_, channel)| channel.catch_up.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        for name in catching_up {
            self.end_catch_up(now, &name);
        }
        self.idle_channels(now);
        let (code, reason, retry_after) = match end {
            LinkEnd::Stop(reason) => return self.finish(reason),
            LinkEnd::Retry {
                code,
                reason,
                retry_after,
            } => (code, reason, retry_after),
            LinkEnd::ServerClosed { code, reason } => {
                match policy::after_close(code, &reason, self.token_retry_left) {
                    AfterClose::Reconnect => {}
                    AfterClose::RetryWithFreshToken => self.token_retry_left = false,
                    AfterClose::Stop => {
                        return self.finish(CloseReason::Failed(Error::new(
                            ErrorKind::Rejected,
                            format!(
                                "the pubsub server closed the connection with code {code}: {reason}"
                            ),
                        )));
                    }
                }
                (Some(code), reason, None)
            }
        };
        self.failures =
            policy::failures_after_link(self.failures, connected_for, self.config.healthy_after);
        let delay = self.backoff(self.failures - 1, retry_after);
        tracing::info!(?code, %reason, delay_ms = delay.as_millis() as u64, "disconnected; will reconnect");
        self.push_event(Event::Disconnected { code, reason });
        self.state = State::Connecting;
        self.phase = Phase::Waiting { until: now + delay };
    }

    /// After a link ended, every wanted channel waits for the next one,
    /// keeping its position for recovery; chat remembers when it was lost.
    fn idle_channels(&mut self, now: Instant) {
        let lost_at = self.clock.millis(now);
        for channel in self.channels.values_mut() {
            if channel.status == Status::Subscribed
                && let Some(chat) = &mut channel.chat
            {
                chat.lost_at_millis = Some(lost_at);
            }
            channel.status = Status::Idle;
            channel.retry_at = None;
            channel.refresh_at = None;
        }
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.is_finished() {
            return;
        }
        if self.link.take().is_some() {
            self.actions
                .push_back(Action::CloseSocket { linger: false });
        }
        match &reason {
            CloseReason::Failed(error) => tracing::debug!(%error, "connection ended"),
            CloseReason::Requested => tracing::debug!("connection closed as requested"),
        }
        // What was held back for a fill-in or a catch-up is delivered
        // rather than lost.
        let names: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for name in names {
            self.release_all_held(&name);
        }
        self.phase = Phase::Finished;
        self.state = State::Closed;
        self.actions.push_back(Action::Finish(reason));
    }

    fn backoff(&mut self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let random = self.next_random();
        let delay = self.config.backoff.delay(attempt, random);
        server_asked.map_or(delay, |asked| {
            delay.max(asked.min(super::backoff::MAX_SERVER_DELAY))
        })
    }

    /// xorshift64*: jitter needs no more.
    fn next_random(&mut self) -> f64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    // --- outgoing ----------------------------------------------------------

    /// Queues a command that expects a reply.
    fn send_command(
        &mut self,
        now: Instant,
        mut command: protocol::Command,
        pending: Pending,
    ) -> u32 {
        let timeout = match pending {
            Pending::Connect => self.config.connect_reply_timeout,
            _ => self.config.command_timeout,
        };
        let Some(link) = &mut self.link else {
            return 0;
        };
        link.next_id = link.next_id.wrapping_add(1).max(1);
        command.id = link.next_id;
        link.pending.insert(command.id, pending);
        link.deadlines.push_back((command.id, now + timeout));
        tracing::trace!(
            id = command.id,
            request = command.request_name(),
            "command queued"
        );
        self.queue_line(&command);
        command.id
    }

    /// Appends a line to the last frame, or starts a new frame when the line
    /// would take the last one past `MAX_OUTGOING_FRAME`.
    fn queue_line(&mut self, command: &protocol::Command) {
        let mut line = String::new();
        protocol::append_line(&mut line, command);
        match self.outgoing.last_mut() {
            Some(frame) if frame.len() + 1 + line.len() <= MAX_OUTGOING_FRAME => {
                frame.push('\n');
                frame.push_str(&line);
            }
            _ => self.outgoing.push(line),
        }
    }

    fn on_ping(&mut self) {
        if self.link.as_ref().is_some_and(|link| link.pong) {
            self.queue_line(&protocol::Command::default());
        }
    }

    fn push_event(&mut self, event: Event) {
        self.deliveries.push(Queued::One(event.into()));
    }

    // --- replies -------------------------------------------------------------

    fn on_reply(&mut self, now: Instant, reply: Reply) {
        if reply.id == 0 {
            match reply.push {
                Some(push) => self.on_push(now, push),
                None => self
                    .malformed
                    .note(now, &"a line with neither id nor push that is not a ping"),
            }
            return;
        }
        let Some(pending) = self
            .link
            .as_mut()
            .and_then(|link| link.pending.remove(&reply.id))
        else {
            tracing::debug!(id = reply.id, "reply to an unknown command ignored");
            return;
        };
        match pending {
            Pending::Connect => self.on_connect_reply(now, reply),
            Pending::Subscribe(name) => self.on_subscribe_reply(now, &name, reply),
            Pending::Unsubscribe => {}
            Pending::Refresh => self.on_refresh_reply(now, reply),
            Pending::SubRefresh(name) => self.on_sub_refresh_reply(now, &name, reply),
            Pending::History(name) => self.on_history_reply(now, &name, reply),
        }
    }

    fn on_connect_reply(&mut self, now: Instant, reply: Reply) {
        if let Some(error) = reply.error {
            let end = match codes::error_action(error.code, error.temporary) {
                // The next attempt fetches a fresh token anyway.
                codes::ErrorAction::RefreshToken | codes::ErrorAction::Retry => {
                    LinkEnd::retry(format!("connect refused: {} {}", error.code, error.message))
                }
                codes::ErrorAction::Fail => LinkEnd::Stop(CloseReason::Failed(Error::new(
                    ErrorKind::Rejected,
                    format!(
                        "connect refused by the pubsub server: {} {}",
                        error.code, error.message
                    ),
                ))),
            };
            return self.end_link(now, end);
        }
        let result = reply.connect.unwrap_or_default();
        let Some(link) = &mut self.link else {
            return;
        };
        link.ping = Some(policy::ping_interval(result.ping));
        link.pong = result.pong;
        link.connected_at = Some(now);
        link.refresh_at = refresh_deadline(now, result.expires, result.ttl);
        self.state = State::Connected;
        tracing::info!(client = %result.client, ping = result.ping, "connected");
        self.push_event(Event::Connected {
            client: result.client,
        });
    }

    fn on_subscribe_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(channel) = self.channels.get_mut(name) else {
            // Unsubscribed while the subscribe was in flight.
            if reply.subscribe.is_some() {
                self.send_unsubscribe(now, name);
            }
            return;
        };
        if !matches!(channel.status, Status::Subscribing(id) if id == reply.id) {
            return;
        }
        if let Some(error) = reply.error {
            return self.on_subscribe_error(now, name, error);
        }
        let result = reply.subscribe.unwrap_or_default();
        let resubscribed = channel.was_subscribed;
        channel.status = Status::Subscribed;
        channel.was_subscribed = true;
        channel.failures = 0;
        channel.refresh_at = refresh_deadline(now, result.expires, result.ttl);
        let recovery = match (result.was_recovering, result.recovered) {
            (true, true) => Recovery::Recovered,
            (true, false) => Recovery::Failed,
            // A server without history: a resubscription may have missed some.
            (false, _) if resubscribed => Recovery::Failed,
            (false, _) => Recovery::NotRequested,
        };
        // A position given without its epoch (`ClientBuilder::resume` by a
        // process that never saw it) is taken to be in the server's epoch.
        if let Some(ours) = channel.position.as_mut()
            && ours.epoch.is_empty()
        {
            ours.epoch.clone_from(&result.epoch);
        }
        let missed = match (recovery, &channel.position) {
            (Recovery::Failed, Some(ours)) => {
                policy::missed_publications(&ours.epoch, ours.offset, &result.epoch, result.offset)
            }
            (Recovery::Failed, None) => None,
            _ => Some(0),
        };
        let ours = channel.position.clone();
        // After a successful recovery the reply's offset is the one we asked
        // for and the publications bring us to the top; otherwise adopt the
        // server's current position.
        if recovery != Recovery::Recovered {
            channel.position = (result.recoverable || !result.epoch.is_empty()).then(|| Position {
                epoch: result.epoch.clone(),
                offset: result.offset,
            });
        }
        self.arm(name);
        tracing::debug!(channel = %name, ?recovery, recovered = result.publications.len(), "subscribed");
        self.push_event(Event::Subscribed {
            channel: name.to_string(),
            recovery,
        });
        match (missed, ours) {
            (Some(0), _) => {}
            // Offsets tell what is missing: ask the server's history for it.
            (Some(_), Some(ours)) => self.start_catch_up(now, name, ours, result.offset),
            (missed, _) => self.report_loss(now, name, missed, Vec::new()),
        }
        for publication in result.publications {
            let payload = Payload::Owned(publication.data.into());
            self.on_publication(name, publication.offset, payload);
        }
    }

    fn on_subscribe_error(&mut self, now: Instant, name: &Arc<str>, error: protocol::ErrorReply) {
        let action = codes::error_action(error.code, error.temporary);
        tracing::debug!(channel = %name, code = error.code, ?action, "subscribe refused");
        if error.code == codes::LIMIT_EXCEEDED {
            // This connection is full: the pool places the channel elsewhere.
            let chat_slug = self
                .channels
                .get(name)
                .and_then(|c| c.chat.as_ref())
                .map(|chat| chat.slug.to_string());
            self.remove_channel(name);
            self.actions.push_back(Action::Refused {
                channel: name.to_string(),
                chat_slug,
            });
            return;
        }
        match action {
            codes::ErrorAction::RefreshToken => self.schedule_resubscribe(now, name, true, None),
            codes::ErrorAction::Retry => self.schedule_resubscribe(now, name, false, None),
            codes::ErrorAction::Fail => self.fail_channel(name, error.code, error.message),
        }
    }

    fn on_refresh_reply(&mut self, now: Instant, reply: Reply) {
        let Some(link) = &mut self.link else {
            return;
        };
        if let Some(error) = reply.error {
            if error.temporary {
                link.refresh_at = Some(now + REFRESH_RETRY);
                return;
            }
            let reason = format!("token refresh refused: {} {}", error.code, error.message);
            return self.end_link(now, LinkEnd::retry(reason));
        }
        let result = reply.refresh.unwrap_or_default();
        link.refresh_at = refresh_deadline(now, result.expires, result.ttl);
        tracing::debug!(ttl = result.ttl, "connection token refreshed");
    }

    fn on_sub_refresh_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        match (reply.error, reply.sub_refresh) {
            (Some(error), _) if error.temporary => {
                channel.refresh_at = Some(now + REFRESH_RETRY);
                self.arm(name);
            }
            (Some(error), _) => {
                tracing::debug!(channel = %name, code = error.code, "sub_refresh refused; resubscribing");
                self.send_unsubscribe(now, name);
                self.schedule_resubscribe(now, name, true, None);
            }
            (None, result) => {
                let result = result.unwrap_or_default();
                channel.refresh_at = refresh_deadline(now, result.expires, result.ttl);
                self.arm(name);
            }
        }
    }

    fn on_push(&mut self, now: Instant, push: protocol::Push) {
        if let Some(publication) = push.publication {
            if let Some(name) = self.subscribed(&push.channel) {
                let payload = Payload::Owned(publication.data.into());
                self.on_publication(&name, publication.offset, payload);
            }
        } else if let Some(unsubscribe) = push.unsubscribe {
            self.on_unsubscribe_push(now, &push.channel, unsubscribe);
        } else if let Some(disconnect) = push.disconnect {
            let code = u16::try_from(disconnect.code).unwrap_or(u16::MAX);
            self.end_link(
                now,
                LinkEnd::ServerClosed {
                    code,
                    reason: disconnect.reason,
                },
            );
        }
    }

    fn on_unsubscribe_push(
        &mut self,
        now: Instant,
        channel: &str,
        push: protocol::UnsubscribePush,
    ) {
        let Some((name, _)) = self.channels.get_key_value(channel) else {
            return;
        };
        let name = name.clone();
        if codes::unsubscribe_resubscribes(push.code) {
            tracing::debug!(
                channel,
                code = push.code,
                "server unsubscribed; resubscribing"
            );
            if let Some(chat) = self.channels.get_mut(&name).and_then(|c| c.chat.as_mut()) {
                chat.lost_at_millis = Some(self.clock.millis(now));
            }
            let fresh_token = push.code == codes::UNSUBSCRIBE_EXPIRED;
            self.schedule_resubscribe(now, &name, fresh_token, None);
        } else {
            self.remove_channel(&name);
            self.push_event(Event::Unsubscribed {
                channel: channel.to_owned(),
                code: push.code,
                reason: push.reason,
            });
        }
    }

    // --- publications ----------------------------------------------------------

    /// The name of `channel` if it is subscribed, else `None` (logged).
    fn subscribed(&self, channel: &str) -> Option<Arc<str>> {
        let name = self
            .channels
            .get_key_value(channel)
            .and_then(|(name, c)| (c.status == Status::Subscribed).then(|| name.clone()));
        if name.is_none() {
            tracing::debug!(channel, "publication for a channel not subscribed dropped");
        }
        name
    }

    /// A publication whose payload is the `data` range of `frame`; returns
    /// the payload's length if it was kept.
    fn on_raw_publication(
        &mut self,
        frame: &Utf8Bytes,
        channel: &str,
        offset: u64,
        data: Range<usize>,
    ) -> usize {
        if self.add_to_batch(frame, channel, offset, &data) {
            return data.len();
        }
        let Some(name) = self.subscribed(channel) else {
            return 0;
        };
        let length = data.len();
        let payload = Payload::Shared {
            frame: frame.clone(),
            range: data,
        };
        if self.on_publication(&name, offset, payload) {
            length
        } else {
            0
        }
    }

    /// The common case of [`Session::on_raw_publication`], without a
    /// reference taken to the frame or the channel's name per publication:
    /// a new publication of a subscribed channel that nothing holds back or
    /// de-duplicates joins the batch of its frame at the back of the
    /// deliveries. Whether it did; anything else takes the general path.
    fn add_to_batch(
        &mut self,
        frame: &Utf8Bytes,
        name: &str,
        offset: u64,
        data: &Range<usize>,
    ) -> bool {
        let Some(channel) = self.channels.get_mut(name) else {
            return false;
        };
        let plain = channel.status == Status::Subscribed
            && channel.chat.is_none()
            && channel.catch_up.is_none()
            && classify(&channel.position, offset) == Offset::New;
        if !plain {
            return false;
        }
        advance(&mut channel.position, offset);
        match self.deliveries.last_mut() {
            Some(Queued::Batch(batch)) if batch.holds(name, frame) => {
                batch.add(offset, data.clone());
            }
            _ => self.deliveries.push(Queued::Batch(Box::new(Batch::new(
                name,
                frame,
                offset,
                data.clone(),
            )))),
        }
        true
    }

    /// Delivers a publication exactly once and in order; returns whether it
    /// was queued for delivery.
    fn on_publication(&mut self, name: &Arc<str>, offset: u64, payload: Payload) -> bool {
        let Some(channel) = self.channels.get_mut(name) else {
            return false;
        };
        match advance(&mut channel.position, offset) {
            Offset::New => {}
            Offset::Repeated => {
                tracing::debug!(channel = %name, offset, "duplicate publication dropped");
                return false;
            }
            Offset::Reset => {
                tracing::warn!(channel = %name, offset, "the stream's offsets went back: a new stream");
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed: None,
                });
            }
        }
        let delivery = Delivery::Publication(RawPublication {
            channel: name.clone(),
            offset,
            data: payload,
        });
        self.deliver_live(name, delivery)
    }

    /// Hands a publication over, unless it is a chat message delivered
    /// already; holds it back while a catch-up or a chat fill-in it must
    /// follow is on its way.
    fn deliver_live(&mut self, name: &Arc<str>, mut delivery: Delivery) -> bool {
        let Some(channel) = self.channels.get_mut(name) else {
            return false;
        };
        let key = match (&channel.chat, &delivery) {
            (Some(_), Delivery::Publication(raw)) => skim_chat_key(raw.data.text()),
            _ => None,
        };
        if let (Some(chat), Some(key)) = (&channel.chat, key)
            && chat.seen(key.id)
        {
            tracing::debug!(channel = %name, id = key.id, "chat message delivered already");
            return false;
        }
        let holder = match &mut channel.catch_up {
            Some(catch_up) => Some(&mut catch_up.held),
            None => channel
                .chat
                .as_mut()
                .and_then(|chat| chat.backfill.as_mut())
                .filter(|backfill| backfill.hold_until.is_some())
                .map(|backfill| &mut backfill.held),
        };
        if let Some(held) = holder {
            if let Delivery::Publication(raw) = &mut delivery {
                raw.data.unshare();
            }
            held.push((key, delivery));
            return false;
        }
        self.deliver_now(name, key, delivery)
    }

    /// Hands a publication over now, once: a chat message is remembered, and
    /// skipped if it was delivered already.
    fn deliver_now(&mut self, name: &str, key: Option<ChatKey>, delivery: Delivery) -> bool {
        if let Some(key) = key
            && let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut())
        {
            if chat.seen(key.id) {
                return false;
            }
            chat.delivered(key);
        }
        self.deliveries.push(Queued::One(delivery));
        true
    }

    /// A loss the server could not recover: filled in from REST for a chat
    /// followed by slug, else reported as a gap. `held` follows it.
    fn report_loss(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        missed: Option<u64>,
        mut held: Vec<Held>,
    ) {
        if self.start_backfill(now, name, missed, &mut held) {
            return;
        }
        self.push_event(Event::Gap {
            channel: name.to_string(),
            missed,
        });
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    // --- catch-up from the server's history -------------------------------------

    fn start_catch_up(&mut self, now: Instant, name: &Arc<str>, from: Position, top: u64) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        channel.catch_up = Some(CatchUp {
            epoch: from.epoch,
            cursor: from.offset,
            top,
            first_page: true,
            held: Vec::new(),
        });
        self.ask_history(now, name);
    }

    /// Asks for the next page of history after the catch-up's cursor.
    fn ask_history(&mut self, now: Instant, name: &Arc<str>) {
        let Some(catch_up) = self.channels.get(name).and_then(|c| c.catch_up.as_ref()) else {
            return;
        };
        let request = serde_json::json!({
            "channel": &**name,
            "limit": HISTORY_PAGE,
            "since": {"offset": catch_up.cursor, "epoch": &catch_up.epoch},
        });
        let command = protocol::Command {
            history: serde_json::value::to_raw_value(&request).ok(),
            ..Default::default()
        };
        self.send_command(now, command, Pending::History(name.clone()));
    }

    fn on_history_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(catch_up) = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.as_mut())
        else {
            return;
        };
        let result = match (reply.error, reply.history) {
            (None, Some(result)) if result.epoch == catch_up.epoch => result,
            (error, _) => {
                let code = error.map(|error| error.code);
                tracing::debug!(channel = %name, ?code, "history unavailable");
                return self.end_catch_up(now, name);
            }
        };
        let (cursor, top) = (catch_up.cursor, catch_up.top);
        let page: Vec<protocol::Publication> = result
            .publications
            .into_iter()
            .filter(|p| p.offset > cursor && p.offset <= top)
            .collect();
        let full = page.len() >= HISTORY_PAGE;
        if std::mem::take(&mut catch_up.first_page) {
            // What the server no longer keeps comes before what it has.
            let lost = page.first().map_or(top - cursor, |p| p.offset - cursor - 1);
            if lost > 0 {
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed: Some(lost),
                });
            }
        }
        let mut last = cursor;
        for publication in page {
            last = publication.offset;
            let text: Box<str> = publication.data.into();
            let delivery = Delivery::Publication(RawPublication {
                channel: name.clone(),
                offset: last,
                data: Payload::Owned(text),
            });
            let key = match &delivery {
                Delivery::Publication(raw) => skim_chat_key(raw.data.text()),
                Delivery::Event(_) => None,
            };
            self.deliver_now(name, key, delivery);
        }
        if let Some(catch_up) = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.as_mut())
        {
            catch_up.cursor = last;
        }
        if full && last < top {
            self.ask_history(now, name);
        } else {
            self.end_catch_up(now, name);
        }
    }

    /// Ends a catch-up: what it did not bring is a loss; then the live
    /// publications it held.
    fn end_catch_up(&mut self, now: Instant, name: &Arc<str>) {
        let Some(catch_up) = self.channels.get_mut(name).and_then(|c| c.catch_up.take()) else {
            return;
        };
        let remaining = catch_up.top.saturating_sub(catch_up.cursor);
        if remaining > 0 {
            self.report_loss(now, name, Some(remaining), catch_up.held);
        } else {
            for (key, delivery) in catch_up.held {
                self.deliver_now(name, key, delivery);
            }
        }
    }

    // --- chat fill-in ------------------------------------------------------------

    /// Starts filling a chat in from REST, holding `held` until it is done;
    /// false if it cannot be (not a chat followed by slug, or no point to
    /// resume from), and `held` is left as it was.
    fn start_backfill(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        missed: Option<u64>,
        held: &mut Vec<Held>,
    ) -> bool {
        self.backfills += 1;
        let id = self.backfills;
        let hold = self.config.backfill_hold;
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return false;
        };
        let Some(after) = chat.resume_point() else {
            return false;
        };
        // A fill-in still under way is overtaken: what it held goes first.
        let mut all_held = chat.backfill.take().map(|old| old.held).unwrap_or_default();
        all_held.append(held);
        let held = all_held;
        chat.backfill = Some(Backfill {
            id,
            after,
            missed,
            failures: 0,
            retry_at: None,
            held,
            hold_until: Some(now + hold),
        });
        let slug = chat.slug.clone();
        self.actions.push_back(Action::FetchChatHistory {
            channel: name.clone(),
            slug,
            backfill: id,
        });
        self.arm(name);
        true
    }

    fn backfill_mut(&mut self, name: &str) -> Option<&mut Backfill> {
        self.channels
            .get_mut(name)?
            .chat
            .as_mut()?
            .backfill
            .as_mut()
    }

    fn complete_backfill(&mut self, name: &Arc<str>, answer: Vec<ChatMessage>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let Some(backfill) = &chat.backfill else {
            return;
        };
        let mut fill_in = backfill::select(
            answer,
            backfill.after,
            |id| chat.seen(id),
            backfill::LIMIT as usize,
        );
        let missed = backfill.missed;
        // Live chat was released before this answer came: what is older
        // than the newest message delivered can no longer come in order.
        let too_late = if backfill.hold_until.is_none() {
            chat.last
        } else {
            None
        };
        let in_time = fill_in
            .messages
            .iter()
            .position(|message| too_late.is_none_or(|last| message.key() > last))
            .unwrap_or(fill_in.messages.len());
        let late = fill_in.messages.drain(..in_time).count();
        if !fill_in.complete || late > 0 {
            let found = fill_in.messages.len() as u64;
            self.push_event(Event::Gap {
                channel: name.to_string(),
                missed: missed.map(|missed| missed.saturating_sub(found)),
            });
        }
        tracing::debug!(channel = %name, filled = fill_in.messages.len(), complete = fill_in.complete, "chat filled in from REST");
        for message in fill_in.messages {
            if let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) {
                chat.delivered(message.key());
            }
            self.push_event(Event::Publication(Publication {
                backfilled: true,
                ..Publication::new(name.clone(), 0, VkEvent::ChatMessage(Box::new(message)))
            }));
        }
        self.end_backfill(name);
    }

    /// Ends the fill-in and delivers the chat it held back.
    fn end_backfill(&mut self, name: &Arc<str>) {
        self.release_held(name);
        if let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) {
            chat.backfill = None;
        }
    }

    /// Delivers the chat held back for a fill-in, skipping what the fill-in
    /// brought already; later chat is not held any more.
    fn release_held(&mut self, name: &Arc<str>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let Some(backfill) = &mut chat.backfill else {
            return;
        };
        backfill.hold_until = None;
        let held = std::mem::take(&mut backfill.held);
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    /// Delivers everything held back for a fill-in or a catch-up.
    fn release_all_held(&mut self, name: &Arc<str>) {
        self.release_held(name);
        let held = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.take())
            .map(|catch_up| catch_up.held)
            .unwrap_or_default();
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    fn retry_backfill(&mut self, name: &Arc<str>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let slug = chat.slug.clone();
        let Some(backfill) = &mut chat.backfill else {
            return;
        };
        backfill.retry_at = None;
        self.actions.push_back(Action::FetchChatHistory {
            channel: name.clone(),
            slug,
            backfill: backfill.id,
        });
    }

    // --- channels ----------------------------------------------------------------

    /// Adds `channel` to the wanted set; returns its name if it is new.
    fn want(&mut self, channel: &str, chat_slug: Option<&str>) -> Option<Arc<str>> {
        if !valid_channel_name(channel) {
            // A comma would split the name in the token request's list.
            self.push_event(Event::SubscriptionFailed {
                channel: channel.to_owned(),
                code: codes::BAD_REQUEST,
                reason: "invalid channel name".into(),
            });
            return None;
        }
        if self.channels.contains_key(channel) {
            return None;
        }
        let name: Arc<str> = channel.into();
        let mut channel = Channel::new(chat_slug.filter(|slug| !slug.is_empty()).map(Arc::from));
        if let Some(position) = self.config.resume_from.get(&*name) {
            // Taken over from elsewhere: recover from where that left off.
            channel.position = Some(position.clone());
            channel.was_subscribed = true;
        }
        self.channels.insert(name.clone(), channel);
        Some(name)
    }

    fn unsubscribe(&mut self, now: Instant, channel: &str) {
        let Some((name, state)) = self.channels.get_key_value(channel) else {
            return;
        };
        let name = name.clone();
        if matches!(state.status, Status::Subscribed | Status::Subscribing(_)) && self.is_open() {
            self.send_unsubscribe(now, &name);
        }
        self.remove_channel(&name);
        self.push_event(Event::Unsubscribed {
            channel: channel.to_owned(),
            code: 0,
            reason: "unsubscribe called".into(),
        });
    }

    /// Forgets a channel, delivering what it held back first.
    fn remove_channel(&mut self, name: &Arc<str>) {
        self.release_all_held(name);
        self.channels.remove(name);
    }

    /// Gives up on a channel and tells the caller why.
    fn fail_channel(&mut self, name: &str, code: u32, reason: String) {
        let Some((name, _)) = self.channels.get_key_value(name) else {
            return;
        };
        let name = name.clone();
        self.remove_channel(&name);
        self.push_event(Event::SubscriptionFailed {
            channel: name.to_string(),
            code,
            reason,
        });
    }

    fn request_tokens(&mut self, channels: Vec<Arc<str>>, purpose: Purpose) {
        if channels.is_empty() {
            return;
        }
        if purpose != Purpose::Refresh {
            for name in &channels {
                if let Some(channel) = self.channels.get_mut(name) {
                    channel.status = Status::AwaitingToken;
                }
            }
        }
        self.actions.push_back(Action::FetchChannelTokens {
            attempt: self.attempt,
            purpose,
            channels,
        });
    }

    fn subscribe_with_token(&mut self, now: Instant, name: &Arc<str>, token: Option<Secret>) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        if channel.status != Status::AwaitingToken {
            return;
        }
        channel.token = token;
        channel.needs_token = false;
        self.send_subscribe(now, name);
    }

    fn refresh_with_token(&mut self, now: Instant, name: &Arc<str>, token: Option<Secret>) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        if channel.status != Status::Subscribed {
            return;
        }
        let Some(token) = token else {
            // No token any more: the server will end the subscription at expiry.
            tracing::warn!(channel = %name, "no fresh subscription token granted");
            return;
        };
        channel.token = Some(token.clone());
        let command = protocol::Command {
            sub_refresh: Some(protocol::SubRefreshRequest {
                channel: name.to_string(),
                token: Some(token),
            }),
            ..Default::default()
        };
        self.send_command(now, command, Pending::SubRefresh(name.clone()));
    }

    fn send_subscribe(&mut self, now: Instant, name: &Arc<str>) {
        let Some(channel) = self.channels.get(name) else {
            return;
        };
        let mut request = protocol::SubscribeRequest {
            channel: name.to_string(),
            token: channel.token.clone(),
            ..Default::default()
        };
        if let Some(position) = &channel.position {
            request.recover = true;
            request.epoch = position.epoch.clone();
            request.offset = position.offset;
        }
        let command = protocol::Command {
            subscribe: Some(request),
            ..Default::default()
        };
        let id = self.send_command(now, command, Pending::Subscribe(name.clone()));
        if let Some(channel) = self.channels.get_mut(name) {
            channel.status = Status::Subscribing(id);
        }
    }

    fn send_unsubscribe(&mut self, now: Instant, name: &str) {
        let command = protocol::Command {
            unsubscribe: Some(protocol::UnsubscribeRequest {
                channel: name.to_owned(),
            }),
            ..Default::default()
        };
        self.send_command(now, command, Pending::Unsubscribe);
    }

    /// Resubscribes a channel after its own backoff (at least what the server
    /// asked for), with a fresh token if asked.
    fn schedule_resubscribe(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        fresh_token: bool,
        server_asked: Option<Duration>,
    ) {
        let Some(failures) = self.channels.get(name).map(|c| c.failures) else {
            return;
        };
        let delay = self.backoff(failures, server_asked);
        if let Some(channel) = self.channels.get_mut(name) {
            channel.failures = failures.saturating_add(1);
            channel.status = Status::Idle;
            channel.needs_token |= fresh_token;
            channel.refresh_at = None;
            channel.retry_at = Some(now + delay);
        }
        self.arm(name);
    }

    fn fire_channel_timers(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(at) = self.next_channel_timer() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, name))) = self.timers.pop() {
                due.push(name);
            }
        }
        let mut to_subscribe = Vec::new();
        let mut need_tokens = Vec::new();
        let mut to_refresh = Vec::new();
        for name in due {
            let Some(channel) = self.channels.get_mut(&name) else {
                continue;
            };
            if channel.retry_at.is_some_and(|at| at <= now) && self.link.is_some() {
                channel.retry_at = None;
                if channel.needs_token {
                    need_tokens.push(name.clone());
                } else {
                    channel.status = Status::AwaitingToken;
                    to_subscribe.push(name.clone());
                }
            }
            if channel.refresh_at.is_some_and(|at| at <= now) {
                channel.refresh_at = None;
                to_refresh.push(name.clone());
            }
            let (hold_due, retry_due) = channel
                .chat
                .as_ref()
                .and_then(|chat| chat.backfill.as_ref())
                .map_or((false, false), |backfill| {
                    (
                        backfill.hold_until.is_some_and(|at| at <= now),
                        backfill.retry_at.is_some_and(|at| at <= now),
                    )
                });
            if hold_due {
                self.release_held(&name);
            }
            if retry_due {
                self.retry_backfill(&name);
            }
            self.arm(&name);
        }
        for name in to_subscribe {
            self.send_subscribe(now, &name);
        }
        self.request_tokens(need_tokens, Purpose::Resubscribe);
        self.request_tokens(to_refresh, Purpose::Refresh);
    }
}

/// Whether a channel name can be asked for: not empty, and no `,` (it
/// would split the name in the token request's list).
pub(crate) fn valid_channel_name(channel: &str) -> bool {
    !channel.is_empty() && !channel.contains(',')
}

/// When to refresh a token the server said expires in `ttl` seconds.
fn refresh_deadline(now: Instant, expires: bool, ttl: u32) -> Option<Instant> {
    (expires && ttl > 0).then(|| now + policy::refresh_delay(ttl))
}

/// How a publication's offset relates to the channel's position.
#[derive(Debug, PartialEq, Eq)]
enum Offset {
    New,
    /// The offset of the last publication again: delivered already.
    Repeated,
    /// Lower than the last: the stream restarted (a new epoch).
    Reset,
}

/// How `offset` relates to the channel's `position` (every offset is new
/// to a channel that keeps none, and 0 is no offset).
fn classify(position: &Option<Position>, offset: u64) -> Offset {
    let Some(position) = position.as_ref().filter(|_| offset > 0) else {
        return Offset::New;
    };
    match offset.cmp(&position.offset) {
        std::cmp::Ordering::Greater => Offset::New,
        std::cmp::Ordering::Equal => Offset::Repeated,
        std::cmp::Ordering::Less => Offset::Reset,
    }
}

/// Classifies `offset` and advances the position: before the publication
/// is handed over, so a slow caller can never move it backwards.
fn advance(position: &mut Option<Position>, offset: u64) -> Offset {
    let class = classify(position, offset);
    if class != Offset::Repeated
        && offset > 0
        && let Some(position) = position
    {
        position.offset = offset;
    }
    class
}

/// Where `part`, a slice of `frame`'s text, starts in it.
fn position_in(frame: &Utf8Bytes, part: &str) -> usize {
    part.as_ptr() as usize - frame.as_str().as_ptr() as usize
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
