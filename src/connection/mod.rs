//! The connection actor: the one task that owns the WebSocket.
//!
//! Outer loop ([`Actor::run`]): fetch a connection token and subscription
//! tokens, dial, serve the connection until it ends, then decide (pure
//! functions in `policy`) whether to reconnect with backoff or stop.
//!
//! Inner loop ([`Actor::serve`]): one `select!` over the socket, the
//! caller's commands, background token requests, the slow-consumer backlog
//! and a single timer (watchdog, refreshes, retries, command timeouts). The
//! loop never awaits the API: token requests run as futures polled by the
//! same `select!`, so pings are answered while a token is being fetched.
//! Everything tied to one connection lives in [`Link`] and is dropped with
//! it, so no stale reply or timer can reach the next connection.

mod backoff;
mod outbox;
mod policy;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use backoff::Backoff;
use outbox::Outbox;
use policy::AfterClose;

use crate::auth::VkApi;
use crate::client::{
    CloseReason, Delivery, Event, Payload, Publication, RawPublication, Recovery, State,
};
use crate::error::{Error, ErrorKind};
use crate::event::VkEvent;
use crate::protocol::{self, Reply, codes};
use crate::secret::Secret;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest outgoing frame: Centrifugo's default inbound limit is 64 KiB.
const MAX_OUTGOING_FRAME: usize = 32 * 1024;
/// Largest incoming message accepted.
const MAX_INCOMING_MESSAGE: usize = 16 * 1024 * 1024;
/// Retry delay for a failed token refresh that may still succeed.
const REFRESH_RETRY: Duration = Duration::from_secs(5);
/// How long `close()` waits for the server's answering close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Tunables of the actor; set through [`ClientBuilder`](crate::ClientBuilder).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) backoff: Backoff,
    pub(crate) ping_margin: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) event_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backoff: Backoff::default(),
            ping_margin: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            event_capacity: 4096,
        }
    }
}

/// What a [`Client`](crate::Client) asks of the actor.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe(String),
    Unsubscribe(String),
    Close(oneshot::Sender<()>),
}

/// A channel the caller wants, and where its subscription stands.
struct Sub {
    status: SubStatus,
    token: Option<Secret>,
    /// Fetch a fresh token before the next subscribe (after 109 or 2501).
    needs_token: bool,
    position: Option<Position>,
    /// Consecutive failed attempts, for the resubscribe backoff.
    failures: u32,
    retry_at: Option<Instant>,
    refresh_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubStatus {
    /// Waiting for the next connection or a retry timer.
    Idle,
    /// A token request is in flight.
    AwaitingToken,
    /// Subscribe sent with this command id.
    Subscribing(u32),
    Subscribed,
}

/// A channel's stream position, for recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    epoch: String,
    offset: u64,
}

/// What a sent command waits for.
#[derive(Debug)]
enum Pending {
    Connect,
    Subscribe(Arc<str>),
    Unsubscribe,
    Refresh,
    SubRefresh(Arc<str>),
}

/// Why a token request was made.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Subscribe,
    Refresh,
}

/// A finished background token request.
enum TokenAnswer {
    Connection(Result<Secret, Error>),
    Channels {
        purpose: Purpose,
        channels: Vec<Arc<str>>,
        result: Result<HashMap<String, Secret>, Error>,
    },
}

/// How one connection attempt ended.
enum SessionEnd {
    /// Stop for good.
    Stop(CloseReason),
    /// Something failed that may work next time.
    Retry {
        code: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server closed the WebSocket with a code.
    ServerClosed { code: u16, reason: String },
}

impl SessionEnd {
    fn retry(reason: impl Into<String>) -> Self {
        SessionEnd::Retry {
            code: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A failed API call: retry if it may help, stop if not.
    fn from_api_error(error: Error) -> Self {
        if error.is_retryable() {
            SessionEnd::Retry {
                code: None,
                reason: error.to_string(),
                retry_after: error.retry_after(),
            }
        } else {
            SessionEnd::Stop(CloseReason::Failed(error))
        }
    }
}

/// What woke the per-connection loop.
enum Wake<'a> {
    Message(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Command(Option<Command>),
    Tokens(TokenAnswer),
    Room(mpsc::Permit<'a, Delivery>),
    EventsDropped,
    Timer,
}

/// Everything that belongs to one live WebSocket.
struct Link {
    socket: Socket,
    next_id: u32,
    pending: HashMap<u32, Pending>,
    /// Command ids in sending order with their reply deadlines.
    deadlines: VecDeque<(u32, Instant)>,
    /// Frames waiting to be written, each at most `MAX_OUTGOING_FRAME` bytes.
    outgoing: Vec<String>,
    token_requests: FuturesUnordered<BoxFuture<'static, TokenAnswer>>,
    ping_interval: Option<Duration>,
    pong: bool,
    last_received: Instant,
    connected_at: Option<Instant>,
    refresh_at: Option<Instant>,
}

impl Link {
    fn new(socket: Socket) -> Self {
        Link {
            socket,
            next_id: 0,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            outgoing: Vec::new(),
            token_requests: FuturesUnordered::new(),
            ping_interval: None,
            pong: false,
            last_received: Instant::now(),
            connected_at: None,
            refresh_at: None,
        }
    }

    /// Queues a command that expects a reply and returns its id.
    fn send_command(
        &mut self,
        mut command: protocol::Command,
        pending: Pending,
        timeout: Duration,
    ) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        command.id = self.next_id;
        tracing::trace!(
            id = command.id,
            request = command.request_name(),
            "command queued"
        );
        self.queue_line(&command);
        self.pending.insert(command.id, pending);
        self.deadlines
            .push_back((command.id, Instant::now() + timeout));
        command.id
    }

    fn send_pong(&mut self) {
        self.queue_line(&protocol::Command::default());
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

    /// Writes every queued frame.
    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.outgoing.is_empty() {
            return Ok(());
        }
        for frame in self.outgoing.drain(..) {
            self.socket
                .feed(Message::Text(frame.into()))
                .await
                .map_err(|error| SessionEnd::retry(format!("sending failed: {error}")))?;
        }
        self.socket
            .flush()
            .await
            .map_err(|error| SessionEnd::retry(format!("sending failed: {error}")))
    }

    /// The earliest reply deadline of a command still waiting.
    fn command_deadline(&mut self) -> Option<Instant> {
        while let Some((id, deadline)) = self.deadlines.front() {
            if self.pending.contains_key(id) {
                return Some(*deadline);
            }
            self.deadlines.pop_front();
        }
        None
    }

    fn watchdog_deadline(&self, margin: Duration) -> Option<Instant> {
        self.ping_interval
            .map(|interval| self.last_received + interval + margin)
    }
}

/// The actor. Built by [`ClientBuilder`](crate::ClientBuilder), run as a task.
pub(crate) struct Actor {
    config: Config,
    api: VkApi,
    ws_url: String,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    outbox: Outbox,
    state: watch::Sender<State>,
    subs: HashMap<Arc<str>, Sub>,
    /// Consecutive failed connection attempts, for the reconnect backoff.
    failures: u32,
    token_retry_left: bool,
    /// Caches the earliest subscription timer; `None` after any change.
    sub_timer: Option<Option<Instant>>,
}

impl Actor {
    pub(crate) fn new(
        config: Config,
        api: VkApi,
        ws_url: String,
        channels: Vec<String>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Delivery>,
        state: watch::Sender<State>,
    ) -> Self {
        let mut actor = Actor {
            config,
            api,
            ws_url,
            commands,
            commands_open: true,
            outbox: Outbox::new(events),
            state,
            subs: HashMap::new(),
            failures: 0,
            token_retry_left: true,
            sub_timer: None,
        };
        for channel in channels {
            actor.want(&channel);
        }
        actor
    }

    /// Runs until the connection ends for good, then hands over the final event.
    pub(crate) async fn run(mut self) {
        let reason = self.run_until_stopped().await;
        // Debug, not warn: the caller receives the error in `Event::Closed`
        // and decides how to report it.
        match &reason {
            CloseReason::Failed(error) => tracing::debug!(%error, "connection ended"),
            CloseReason::Requested => tracing::debug!("connection closed as requested"),
        }
        self.state.send_replace(State::Closed);
        // No command can be served any more: refuse new ones and answer the
        // `close()` calls already waiting, so none of them waits for the
        // caller to drain the stream.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Close(done) = command {
                let _ = done.send(());
            }
        }
        self.outbox.finish(Event::Closed { reason }).await;
    }

    async fn run_until_stopped(&mut self) -> CloseReason {
        let mut retry_after = None;
        loop {
            if self.failures > 0 {
                let delay = self
                    .config
                    .backoff
                    .next_delay(self.failures - 1, retry_after);
                tracing::debug!(
                    attempt = self.failures,
                    delay_ms = delay.as_millis() as u64,
                    "reconnecting after backoff"
                );
                if let Err(reason) = self.interruptible(tokio::time::sleep(delay)).await {
                    return reason;
                }
            }
            let end = self.connect_and_serve().await;
            self.reset_subscriptions();
            self.state.send_replace(State::Connecting);
            self.failures = self.failures.saturating_add(1);
            match self.decide(end) {
                Ok(asked) => retry_after = asked,
                Err(reason) => return reason,
            }
        }
    }

    /// Turns a session's end into "retry after this long" or the final reason.
    fn decide(&mut self, end: SessionEnd) -> Result<Option<Duration>, CloseReason> {
        let (code, reason, retry_after) = match end {
            SessionEnd::Stop(reason) => return Err(reason),
            SessionEnd::Retry {
                code,
                reason,
                retry_after,
            } => (code, reason, retry_after),
            SessionEnd::ServerClosed { code, reason } => {
                match policy::after_close(code, &reason, self.token_retry_left) {
                    AfterClose::Reconnect => {}
                    AfterClose::RetryWithFreshToken => self.token_retry_left = false,
                    AfterClose::Stop => {
                        return Err(CloseReason::Failed(Error::new(
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
        tracing::info!(?code, %reason, "disconnected; will reconnect");
        self.outbox.lifecycle(Event::Disconnected { code, reason });
        Ok(retry_after)
    }

    /// One connection attempt, from the token requests to the socket's end.
    async fn connect_and_serve(&mut self) -> SessionEnd {
        let api = self.api.clone();
        let token = match self
            .interruptible(async move { api.connection_token().await })
            .await
        {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => return SessionEnd::from_api_error(error),
            Err(reason) => return SessionEnd::Stop(reason),
        };
        let channels: Vec<String> = self.subs.keys().map(|name| name.to_string()).collect();
        let api = self.api.clone();
        let requested = channels.clone();
        let tokens = match self
            .interruptible(async move { api.subscription_tokens(&requested).await })
            .await
        {
            Ok(Ok(tokens)) => tokens,
            Ok(Err(error)) => return SessionEnd::from_api_error(error),
            Err(reason) => return SessionEnd::Stop(reason),
        };
        let socket = match self.dial().await {
            Ok(socket) => socket,
            Err(end) => return end,
        };
        let mut link = Link::new(socket);
        let connect = protocol::Command {
            connect: Some(protocol::ConnectRequest {
                token: Some(token),
                name: "vklive-pubsub".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                data: None,
            }),
            ..Default::default()
        };
        link.send_command(connect, Pending::Connect, self.config.command_timeout);
        // Subscribes go in the same frames as connect (the server handles them
        // in order), so a thousand channels cost one round trip.
        let fetched: HashSet<String> = channels.into_iter().collect();
        let mut late = Vec::new();
        let names: Vec<Arc<str>> = self.subs.keys().cloned().collect();
        for name in names {
            if let Some(sub) = self.subs.get_mut(&name) {
                sub.status = SubStatus::AwaitingToken;
            }
            if fetched.contains(name.as_ref()) {
                let token = tokens.get(name.as_ref()).cloned();
                self.subscribe_with_token(&mut link, &name, token);
            } else {
                // Wanted while the tokens were being fetched.
                late.push(name);
            }
        }
        self.request_sub_tokens(&mut link, late, Purpose::Subscribe);
        if let Err(end) = link.flush().await {
            return end;
        }
        let end = self.serve(&mut link).await;
        if link
            .connected_at
            .is_some_and(|at| at.elapsed() >= policy::TOKEN_RETRY_RESET_AFTER)
        {
            self.token_retry_left = true;
        }
        end
    }

    async fn dial(&mut self) -> Result<Socket, SessionEnd> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_MESSAGE))
            .max_frame_size(Some(MAX_INCOMING_MESSAGE));
        let url = self.ws_url.clone();
        let timeout = self.config.connect_timeout;
        let dial = async move {
            tokio::time::timeout(
                timeout,
                tokio_tungstenite::connect_async_with_config(url, Some(config), true),
            )
            .await
        };
        match self.interruptible(dial).await {
            Ok(Ok(Ok((socket, _response)))) => Ok(socket),
            Ok(Ok(Err(error))) => Err(SessionEnd::retry(format!(
                "WebSocket connection failed: {error}"
            ))),
            Ok(Err(_elapsed)) => Err(SessionEnd::retry("WebSocket connection timed out")),
            Err(reason) => Err(SessionEnd::Stop(reason)),
        }
    }

    /// Awaits `work` while still obeying `close()` and noticing a dropped
    /// stream; other commands are applied to the wanted channels.
    async fn interruptible<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, CloseReason> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return Ok(output),
                command = self.commands.recv(), if self.commands_open => {
                    match command {
                        None => self.commands_open = false,
                        Some(Command::Close(done)) => {
                            let _ = done.send(());
                            return Err(CloseReason::Requested);
                        }
                        Some(Command::Subscribe(channel)) => {
                            self.want(&channel);
                        }
                        Some(Command::Unsubscribe(channel)) => self.unwant(channel),
                    }
                }
                () = self.outbox.sender().closed() => return Err(CloseReason::Requested),
            }
        }
    }

    /// The per-connection loop.
    async fn serve(&mut self, link: &mut Link) -> SessionEnd {
        loop {
            let deadline = self.next_deadline(link);
            // A clone, so that the futures below borrow no part of `self`.
            let events = self.outbox.sender().clone();
            let wake = tokio::select! {
                // Cancel-safe: a message is either returned or still in the stream.
                message = link.socket.next() => Wake::Message(message),
                // Cancel-safe: mpsc::Receiver::recv.
                command = self.commands.recv(), if self.commands_open => Wake::Command(command),
                // Cancel-safe: an unfinished token request stays in the set.
                Some(answer) = link.token_requests.next(), if !link.token_requests.is_empty() => {
                    Wake::Tokens(answer)
                }
                // Losing a reservation only loses its place in the queue.
                Ok(permit) = events.reserve(), if self.outbox.has_backlog() => Wake::Room(permit),
                () = events.closed() => Wake::EventsDropped,
                () = tokio::time::sleep_until(deadline) => Wake::Timer,
            };
            let outcome = match wake {
                Wake::Message(message) => {
                    link.last_received = Instant::now();
                    self.on_message(link, message).await
                }
                Wake::Command(command) => self.on_command(link, command).await,
                Wake::Tokens(answer) => self.on_tokens(link, answer),
                Wake::Room(permit) => {
                    self.outbox.flush(permit);
                    None
                }
                Wake::EventsDropped => {
                    close_socket(link, CloseCode::Normal).await;
                    Some(SessionEnd::Stop(CloseReason::Requested))
                }
                Wake::Timer => self.on_timer(link),
            };
            if let Some(end) = outcome {
                return end;
            }
            if let Err(end) = link.flush().await {
                return end;
            }
            if self.outbox.backing_up() {
                // Let the caller's task, if it shares this thread, take
                // publications before more frames are read: otherwise a burst
                // of buffered frames fills the channel, and what does not fit
                // is dropped as `Lagged`.
                tokio::task::yield_now().await;
            }
        }
    }

    // --- inbound -------------------------------------------------------

    async fn on_message(
        &mut self,
        link: &mut Link,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Option<SessionEnd> {
        match message {
            Some(Ok(Message::Text(text))) => self.on_frame(link, &text),
            Some(Ok(Message::Close(frame))) => Some(match frame {
                Some(frame) => SessionEnd::ServerClosed {
                    code: frame.code.into(),
                    reason: frame.reason.to_string(),
                },
                None => SessionEnd::retry("the server closed the connection without a code"),
            }),
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; make sure it leaves now.
                let _ = link.socket.flush().await;
                None
            }
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("ignoring a binary frame on a JSON connection");
                None
            }
            Some(Ok(_)) => None,
            Some(Err(error)) => Some(SessionEnd::retry(format!("connection lost: {error}"))),
            None => Some(SessionEnd::retry("connection lost")),
        }
    }

    fn on_frame(&mut self, link: &mut Link, frame: &Utf8Bytes) -> Option<SessionEnd> {
        tracing::trace!(bytes = frame.len(), "frame received");
        let mut shared = 0;
        let end = self.on_lines(link, frame, &mut shared);
        // Queued publications keep their frame alive: only where they are
        // most of it, so that memory stays proportional to what is queued.
        // (Those offered early, in a frame of more than a hundred, share it
        // with at least that many others.)
        if shared * 2 < frame.len() {
            self.outbox.unshare_held();
        }
        // The frame's publications were held: hand them over together.
        self.outbox.release();
        end
    }

    /// Handles each line; `shared` adds up the payload bytes of the
    /// publications handed over as places in `frame`.
    fn on_lines(
        &mut self,
        link: &mut Link,
        frame: &Utf8Bytes,
        shared: &mut usize,
    ) -> Option<SessionEnd> {
        for (number, line) in protocol::frame_lines(frame.as_str()) {
            // The common line, a publication push, in one pass that leaves
            // its payload in the frame for `Events` to decode; anything else
            // through the general decoder.
            let raw = std::marker::PhantomData::<&RawValue>;
            if let Some(publication) = protocol::decode_publication(line, raw) {
                *shared += self.on_raw_publication(frame, publication);
                continue;
            }
            match protocol::decode_line::<Reply>(number, line) {
                Ok(reply) => {
                    if let Some(end) = self.on_reply(link, reply) {
                        return Some(end);
                    }
                }
                Err(error) => tracing::warn!(%error, "skipping a malformed line"),
            }
        }
        None
    }

    fn on_reply(&mut self, link: &mut Link, reply: Reply) -> Option<SessionEnd> {
        if reply.id == 0 {
            if let Some(push) = reply.push {
                return self.on_push(push);
            }
            if reply.is_ping() && link.pong {
                link.send_pong();
            }
            return None;
        }
        let Some(pending) = link.pending.remove(&reply.id) else {
            tracing::debug!(id = reply.id, "reply to an unknown command ignored");
            return None;
        };
        match pending {
            Pending::Connect => self.on_connect_reply(link, reply),
            Pending::Subscribe(channel) => {
                self.on_subscribe_reply(link, &channel, reply);
                None
            }
            Pending::Unsubscribe => None,
            Pending::Refresh => self.on_refresh_reply(link, reply),
            Pending::SubRefresh(channel) => {
                self.on_sub_refresh_reply(link, &channel, reply);
                None
            }
        }
    }

    fn on_connect_reply(&mut self, link: &mut Link, reply: Reply) -> Option<SessionEnd> {
        if let Some(error) = reply.error {
            return Some(match codes::error_action(error.code, error.temporary) {
                // The next attempt fetches a fresh token anyway.
                codes::ErrorAction::RefreshToken | codes::ErrorAction::Retry => SessionEnd::Retry {
                    code: None,
                    reason: format!("connect refused: {} {}", error.code, error.message),
                    retry_after: None,
                },
                codes::ErrorAction::Fail => SessionEnd::Stop(CloseReason::Failed(Error::new(
                    ErrorKind::Rejected,
                    format!(
                        "connect refused by the pubsub server: {} {}",
                        error.code, error.message
                    ),
                ))),
            });
        }
        let result = reply.connect.unwrap_or_default();
        let now = Instant::now();
        link.ping_interval = (result.ping > 0).then(|| Duration::from_secs(result.ping.into()));
        link.pong = result.pong;
        link.connected_at = Some(now);
        link.refresh_at = refresh_deadline(result.expires, result.ttl);
        self.failures = 0;
        self.state.send_replace(State::Connected);
        tracing::info!(client = %result.client, ping = result.ping, "connected");
        self.outbox.lifecycle(Event::Connected {
            client: result.client,
        });
        None
    }

    fn on_subscribe_reply(&mut self, link: &mut Link, channel: &Arc<str>, reply: Reply) {
        let Some(sub) = self.subs.get_mut(channel) else {
            // Unsubscribed while the subscribe was in flight.
            if reply.subscribe.is_some() {
                send_unsubscribe(link, channel, self.config.command_timeout);
            }
            return;
        };
        if !matches!(sub.status, SubStatus::Subscribing(id) if id == reply.id) {
            return;
        }
        self.sub_timer = None;
        if let Some(error) = reply.error {
            self.on_subscribe_error(channel, error);
            return;
        }
        let result = reply.subscribe.unwrap_or_default();
        sub.status = SubStatus::Subscribed;
        sub.failures = 0;
        sub.refresh_at = refresh_deadline(result.expires, result.ttl);
        let recovery = match (result.was_recovering, result.recovered) {
            (false, _) => Recovery::NotRequested,
            (true, true) => Recovery::Recovered,
            (true, false) => Recovery::Failed,
        };
        // After a successful recovery the reply's offset is the one we asked
        // for and the publications bring us to the top; otherwise adopt the
        // server's current position.
        if recovery != Recovery::Recovered {
            sub.position = (result.recoverable || !result.epoch.is_empty()).then(|| Position {
                epoch: result.epoch.clone(),
                offset: result.offset,
            });
        }
        tracing::debug!(channel = %channel, ?recovery, recovered = result.publications.len(), "subscribed");
        self.outbox.lifecycle(Event::Subscribed {
            channel: channel.to_string(),
            recovery,
        });
        for publication in result.publications {
            self.deliver(channel, publication);
        }
    }

    fn on_subscribe_error(&mut self, channel: &Arc<str>, error: protocol::ErrorReply) {
        let action = codes::error_action(error.code, error.temporary);
        tracing::debug!(channel = %channel, code = error.code, ?action, "subscribe refused");
        match action {
            codes::ErrorAction::RefreshToken => self.schedule_resubscribe(channel, true, None),
            codes::ErrorAction::Retry => self.schedule_resubscribe(channel, false, None),
            codes::ErrorAction::Fail => self.fail_channel(channel, error.code, error.message),
        }
    }

    /// Gives up on `channel` and tells the caller why.
    fn fail_channel(&mut self, channel: &str, code: u32, reason: String) {
        if self.subs.remove(channel).is_some() {
            self.sub_timer = None;
            self.outbox.lifecycle(Event::SubscriptionFailed {
                channel: channel.to_owned(),
                code,
                reason,
            });
        }
    }

    fn on_refresh_reply(&mut self, link: &mut Link, reply: Reply) -> Option<SessionEnd> {
        if let Some(error) = reply.error {
            if error.temporary {
                link.refresh_at = Some(Instant::now() + REFRESH_RETRY);
                return None;
            }
            return Some(SessionEnd::retry(format!(
                "token refresh refused: {} {}",
                error.code, error.message
            )));
        }
        let result = reply.refresh.unwrap_or_default();
        link.refresh_at = refresh_deadline(result.expires, result.ttl);
        tracing::debug!(ttl = result.ttl, "connection token refreshed");
        None
    }

    fn on_sub_refresh_reply(&mut self, link: &mut Link, channel: &Arc<str>, reply: Reply) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        self.sub_timer = None;
        match (reply.error, reply.sub_refresh) {
            (Some(error), _) if error.temporary => {
                sub.refresh_at = Some(Instant::now() + REFRESH_RETRY);
            }
            (Some(error), _) => {
                tracing::debug!(channel = %channel, code = error.code, "sub_refresh refused; resubscribing");
                send_unsubscribe(link, channel, self.config.command_timeout);
                self.schedule_resubscribe(channel, true, None);
            }
            (None, result) => {
                let result = result.unwrap_or_default();
                sub.refresh_at = refresh_deadline(result.expires, result.ttl);
            }
        }
    }

    /// The name of `channel` if it is subscribed, else `None` (logged).
    fn subscribed(&self, channel: &str) -> Option<Arc<str>> {
        let name = self
            .subs
            .get_key_value(channel)
            .and_then(|(name, sub)| (sub.status == SubStatus::Subscribed).then(|| name.clone()));
        if name.is_none() {
            tracing::debug!(channel, "publication for a channel not subscribed dropped");
        }
        name
    }

    /// Hands a publication over with its payload left in the frame; returns
    /// the payload's length (0 if it was not handed over).
    fn on_raw_publication(
        &mut self,
        frame: &Utf8Bytes,
        publication: protocol::PublicationLine<'_, &RawValue>,
    ) -> usize {
        let Some(channel) = self.subscribed(&publication.channel) else {
            return 0;
        };
        if !self.accept(&channel, publication.offset) {
            return 0;
        }
        // The payload is a slice of the frame: its place, not a copy.
        let data = publication.data.get();
        let start = data.as_ptr() as usize - frame.as_str().as_ptr() as usize;
        self.outbox.hold(Delivery::Publication(RawPublication {
            channel,
            offset: publication.offset,
            data: Payload::Shared {
                frame: frame.clone(),
                range: start..start + data.len(),
            },
        }));
        data.len()
    }

    fn on_push(&mut self, push: protocol::Push) -> Option<SessionEnd> {
        if let Some(publication) = push.publication {
            if let Some(channel) = self.subscribed(&push.channel) {
                self.deliver(&channel, publication);
            }
        } else if let Some(unsubscribe) = push.unsubscribe {
            self.on_unsubscribe_push(&push.channel, unsubscribe);
        } else if let Some(disconnect) = push.disconnect {
            let code = u16::try_from(disconnect.code).unwrap_or(u16::MAX);
            return Some(SessionEnd::ServerClosed {
                code,
                reason: disconnect.reason,
            });
        }
        None
    }

    fn on_unsubscribe_push(&mut self, channel: &str, push: protocol::UnsubscribePush) {
        let Some((name, _)) = self.subs.get_key_value(channel) else {
            return;
        };
        let name = name.clone();
        if codes::unsubscribe_resubscribes(push.code) {
            tracing::debug!(
                channel,
                code = push.code,
                "server unsubscribed; resubscribing"
            );
            let fresh_token = push.code == codes::UNSUBSCRIBE_EXPIRED;
            self.schedule_resubscribe(&name, fresh_token, None);
        } else {
            self.subs.remove(channel);
            self.sub_timer = None;
            self.outbox.lifecycle(Event::Unsubscribed {
                channel: channel.to_owned(),
                code: push.code,
                reason: push.reason,
            });
        }
    }

    /// Hands a publication over, exactly once: offsets at or below the stored
    /// position were delivered already (a recovery overlapping live traffic).
    fn deliver(&mut self, channel: &Arc<str>, publication: protocol::Publication) {
        if self.accept(channel, publication.offset) {
            let event = VkEvent::decode(&publication.data);
            self.hand_over(channel.clone(), publication.offset, event);
        }
    }

    /// Whether a publication at `offset` is new, advancing the channel's
    /// position if so.
    fn accept(&mut self, channel: &str, offset: u64) -> bool {
        if let Some(sub) = self.subs.get_mut(channel)
            && let Some(position) = &mut sub.position
            && offset > 0
        {
            if offset <= position.offset {
                tracing::debug!(channel = %channel, offset, "duplicate publication dropped");
                return false;
            }
            // Advance before handing over, so a lagging caller cannot make
            // the position go backwards.
            position.offset = offset;
        }
        true
    }

    fn hand_over(&mut self, channel: Arc<str>, offset: u64, event: VkEvent) {
        self.outbox
            .hold(Delivery::from(Event::Publication(Publication {
                channel,
                offset,
                event,
            })));
    }

    // --- commands from the caller ---------------------------------------

    async fn on_command(
        &mut self,
        link: &mut Link,
        command: Option<Command>,
    ) -> Option<SessionEnd> {
        let mut batch = Vec::new();
        let mut next = command;
        // Drain a burst so that its subscribes share token requests.
        loop {
            match next {
                None => {
                    self.commands_open = false;
                    break;
                }
                Some(Command::Close(done)) => {
                    self.request_sub_tokens(link, batch, Purpose::Subscribe);
                    close_socket(link, CloseCode::Normal).await;
                    self.drain_after_close(link).await;
                    let _ = done.send(());
                    return Some(SessionEnd::Stop(CloseReason::Requested));
                }
                Some(Command::Subscribe(channel)) => {
                    if let Some(name) = self.want(&channel) {
                        if let Some(sub) = self.subs.get_mut(&name) {
                            sub.status = SubStatus::AwaitingToken;
                        }
                        batch.push(name);
                    }
                }
                Some(Command::Unsubscribe(channel)) => {
                    if let Some(sub) = self.subs.get(channel.as_str())
                        && matches!(
                            sub.status,
                            SubStatus::Subscribed | SubStatus::Subscribing(_)
                        )
                    {
                        send_unsubscribe(link, &channel, self.config.command_timeout);
                    }
                    batch.retain(|name| name.as_ref() != channel);
                    self.unwant(channel);
                }
            }
            next = match self.commands.try_recv() {
                Ok(command) => Some(command),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        self.request_sub_tokens(link, batch, Purpose::Subscribe);
        None
    }

    /// After our close frame: hand over what the server still sends until it
    /// answers with its own close frame.
    async fn drain_after_close(&mut self, link: &mut Link) {
        let linger = tokio::time::sleep(CLOSE_LINGER);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                message = link.socket.next() => match message {
                    Some(Ok(Message::Text(text))) => { self.on_frame(link, &text); }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                },
                () = &mut linger => return,
            }
        }
    }

    // --- tokens ----------------------------------------------------------

    /// Starts one background token request for `channels` (the API client
    /// splits it into batches).
    fn request_sub_tokens(&mut self, link: &mut Link, channels: Vec<Arc<str>>, purpose: Purpose) {
        if channels.is_empty() {
            return;
        }
        let api = self.api.clone();
        link.token_requests.push(
            async move {
                let names: Vec<String> = channels.iter().map(|name| name.to_string()).collect();
                let result = api.subscription_tokens(&names).await;
                TokenAnswer::Channels {
                    purpose,
                    channels,
                    result,
                }
            }
            .boxed(),
        );
    }

    fn on_tokens(&mut self, link: &mut Link, answer: TokenAnswer) -> Option<SessionEnd> {
        match answer {
            TokenAnswer::Connection(Ok(token)) => {
                let command = protocol::Command {
                    refresh: Some(protocol::RefreshRequest { token: Some(token) }),
                    ..Default::default()
                };
                link.send_command(command, Pending::Refresh, self.config.command_timeout);
                None
            }
            TokenAnswer::Connection(Err(error)) if error.is_retryable() => {
                tracing::warn!(%error, "connection token refresh failed; retrying");
                link.refresh_at = Some(Instant::now() + REFRESH_RETRY);
                None
            }
            TokenAnswer::Connection(Err(error)) => {
                Some(SessionEnd::Stop(CloseReason::Failed(error)))
            }
            TokenAnswer::Channels {
                purpose,
                channels,
                result: Ok(tokens),
            } => {
                self.sub_timer = None;
                for channel in channels {
                    let token = tokens.get(channel.as_ref()).cloned();
                    match purpose {
                        Purpose::Subscribe => self.subscribe_with_token(link, &channel, token),
                        Purpose::Refresh => self.refresh_with_token(link, &channel, token),
                    }
                }
                None
            }
            TokenAnswer::Channels {
                result: Err(error), ..
            } if error.kind() == ErrorKind::Unauthorized => {
                Some(SessionEnd::Stop(CloseReason::Failed(error)))
            }
            TokenAnswer::Channels {
                channels,
                result: Err(error),
                ..
            } if !error.is_retryable() => {
                // The API refused this batch for good: those channels fail,
                // the connection and its other channels go on.
                for channel in channels {
                    self.fail_channel(&channel, 0, error.to_string());
                }
                None
            }
            TokenAnswer::Channels {
                purpose,
                channels,
                result: Err(error),
            } => {
                tracing::warn!(%error, "subscription token request failed; retrying");
                for channel in channels {
                    match purpose {
                        Purpose::Subscribe => {
                            self.schedule_resubscribe(&channel, true, error.retry_after())
                        }
                        Purpose::Refresh => {
                            if let Some(sub) = self.subs.get_mut(&channel) {
                                sub.refresh_at = Some(Instant::now() + REFRESH_RETRY);
                            }
                        }
                    }
                }
                self.sub_timer = None;
                None
            }
        }
    }

    fn subscribe_with_token(&mut self, link: &mut Link, channel: &Arc<str>, token: Option<Secret>) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.status != SubStatus::AwaitingToken {
            return;
        }
        sub.token = token;
        sub.needs_token = false;
        self.send_subscribe(link, channel);
    }

    fn refresh_with_token(&mut self, link: &mut Link, channel: &Arc<str>, token: Option<Secret>) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        if sub.status != SubStatus::Subscribed {
            return;
        }
        let Some(token) = token else {
            // No token any more: the server will end the subscription at expiry.
            tracing::warn!(channel = %channel, "no fresh subscription token granted");
            return;
        };
        sub.token = Some(token.clone());
        let command = protocol::Command {
            sub_refresh: Some(protocol::SubRefreshRequest {
                channel: channel.to_string(),
                token: Some(token),
            }),
            ..Default::default()
        };
        link.send_command(
            command,
            Pending::SubRefresh(channel.clone()),
            self.config.command_timeout,
        );
    }

    // --- timers ------------------------------------------------------------

    fn next_deadline(&mut self, link: &mut Link) -> Instant {
        let sub_timer = match self.sub_timer {
            Some(cached) => cached,
            None => {
                let earliest = self
                    .subs
                    .values()
                    .flat_map(|sub| [sub.retry_at, sub.refresh_at])
                    .flatten()
                    .min();
                self.sub_timer = Some(earliest);
                earliest
            }
        };
        [
            link.watchdog_deadline(self.config.ping_margin),
            link.command_deadline(),
            link.refresh_at,
            sub_timer,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    fn on_timer(&mut self, link: &mut Link) -> Option<SessionEnd> {
        let now = Instant::now();
        if link
            .watchdog_deadline(self.config.ping_margin)
            .is_some_and(|at| at <= now)
        {
            return Some(SessionEnd::retry(
                "no ping from the server in time; the link is dead",
            ));
        }
        if link.command_deadline().is_some_and(|at| at <= now) {
            return Some(SessionEnd::retry("a command got no reply in time"));
        }
        if link.refresh_at.is_some_and(|at| at <= now) {
            link.refresh_at = None;
            let api = self.api.clone();
            link.token_requests
                .push(async move { TokenAnswer::Connection(api.connection_token().await) }.boxed());
        }
        self.fire_sub_timers(link, now);
        None
    }

    fn fire_sub_timers(&mut self, link: &mut Link, now: Instant) {
        let mut to_subscribe = Vec::new();
        let mut need_tokens = Vec::new();
        let mut to_refresh = Vec::new();
        for (name, sub) in &mut self.subs {
            if sub.retry_at.is_some_and(|at| at <= now) {
                sub.retry_at = None;
                if sub.needs_token {
                    sub.status = SubStatus::AwaitingToken;
                    need_tokens.push(name.clone());
                } else {
                    to_subscribe.push(name.clone());
                }
            }
            if sub.refresh_at.is_some_and(|at| at <= now) {
                sub.refresh_at = None;
                to_refresh.push(name.clone());
            }
        }
        self.sub_timer = None;
        for name in to_subscribe {
            self.send_subscribe(link, &name);
        }
        self.request_sub_tokens(link, need_tokens, Purpose::Subscribe);
        self.request_sub_tokens(link, to_refresh, Purpose::Refresh);
    }

    // --- subscriptions -----------------------------------------------------

    /// Adds `channel` to the wanted set; returns its name if it is new.
    fn want(&mut self, channel: &str) -> Option<Arc<str>> {
        if channel.is_empty() || channel.contains(',') {
            // A comma would split the name in the token request's list.
            self.outbox.lifecycle(Event::SubscriptionFailed {
                channel: channel.to_owned(),
                code: codes::BAD_REQUEST,
                reason: "invalid channel name".into(),
            });
            return None;
        }
        if self.subs.contains_key(channel) {
            return None;
        }
        let name: Arc<str> = channel.into();
        self.subs.insert(
            name.clone(),
            Sub {
                status: SubStatus::Idle,
                token: None,
                needs_token: false,
                position: None,
                failures: 0,
                retry_at: None,
                refresh_at: None,
            },
        );
        self.sub_timer = None;
        Some(name)
    }

    /// Removes `channel` from the wanted set and tells the caller.
    fn unwant(&mut self, channel: String) {
        if self.subs.remove(channel.as_str()).is_some() {
            self.sub_timer = None;
            self.outbox.lifecycle(Event::Unsubscribed {
                channel,
                code: 0,
                reason: "unsubscribe called".into(),
            });
        }
    }

    fn send_subscribe(&mut self, link: &mut Link, channel: &Arc<str>) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let mut request = protocol::SubscribeRequest {
            channel: channel.to_string(),
            token: sub.token.clone(),
            ..Default::default()
        };
        if let Some(position) = &sub.position {
            request.recover = true;
            request.epoch = position.epoch.clone();
            request.offset = position.offset;
        }
        let command = protocol::Command {
            subscribe: Some(request),
            ..Default::default()
        };
        let id = link.send_command(
            command,
            Pending::Subscribe(channel.clone()),
            self.config.command_timeout,
        );
        sub.status = SubStatus::Subscribing(id);
    }

    /// Resubscribes `channel` after its own backoff (at least what the server
    /// asked for), with a fresh token if asked.
    fn schedule_resubscribe(
        &mut self,
        channel: &Arc<str>,
        fresh_token: bool,
        server_asked: Option<Duration>,
    ) {
        let Some(sub) = self.subs.get_mut(channel) else {
            return;
        };
        let delay = self.config.backoff.next_delay(sub.failures, server_asked);
        sub.failures = sub.failures.saturating_add(1);
        sub.status = SubStatus::Idle;
        sub.needs_token |= fresh_token;
        sub.refresh_at = None;
        sub.retry_at = Some(Instant::now() + delay);
        self.sub_timer = None;
    }

    /// After a connection ended: every wanted channel waits for the next one,
    /// keeping its position for recovery.
    fn reset_subscriptions(&mut self) {
        for sub in self.subs.values_mut() {
            sub.status = SubStatus::Idle;
            sub.retry_at = None;
            sub.refresh_at = None;
        }
        self.sub_timer = None;
    }
}

/// When to refresh a token the server said expires in `ttl` seconds.
fn refresh_deadline(expires: bool, ttl: u32) -> Option<Instant> {
    (expires && ttl > 0).then(|| Instant::now() + policy::refresh_delay(ttl))
}

fn send_unsubscribe(link: &mut Link, channel: &str, timeout: Duration) {
    let command = protocol::Command {
        unsubscribe: Some(protocol::UnsubscribeRequest {
            channel: channel.to_owned(),
        }),
        ..Default::default()
    };
    link.send_command(command, Pending::Unsubscribe, timeout);
}

async fn close_socket(link: &mut Link, code: CloseCode) {
    let _ = link.flush().await;
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let _ = link.socket.close(Some(frame)).await;
}
