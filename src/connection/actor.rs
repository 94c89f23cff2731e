//! The actor: the one task that owns the WebSockets of a client's pool of
//! connections. It makes no protocol decision: each connection has its
//! [`Session`], channels are placed by the [`Pool`], channel tokens are
//! shared through the [`Broker`]; the actor feeds them what happens and
//! carries out what they ask.
//!
//! Its loop is one `select!` over the sockets (read only while the caller's
//! queue is within its budget), the caller's orders, background requests
//! (tokens, chat history, channel lookups), dials in progress, failed writes,
//! the queue's room, and the earliest deadline of any session. It never
//! awaits the network in line: requests and dials are futures polled by the
//! same `select!`, and writes go through one writer task per socket with a
//! deadline, so pings are answered and `close()` is served whatever the
//! network does.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SplitSink};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::backfill;
use super::backoff::Jitter;
use super::command::{Command, Order};
use super::config::Config;
use super::pool::{MemberId, Placement, Pool};
use super::session::{Action, Resolved, Session, valid_channel_name};
use super::tokens::{self, Broker};
use crate::auth::VkApi;
use crate::delivery::{self, CloseReason, ConnectionState, Event, PoolState, State};
use crate::error::Error;
use crate::event::ChatMessage;
use crate::protocol::Frame;
use crate::secret::Secret;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A dial in progress: its connection, attempt and the socket, or why not.
type Dialing = BoxFuture<'static, (MemberId, u64, Result<Box<Socket>, String>)>;

/// A socket's messages, then `None` once when it ends.
type Reader = Pin<Box<dyn Stream<Item = Option<Result<Message, tungstenite::Error>>> + Send>>;

/// Largest incoming message accepted.
const MAX_INCOMING_MESSAGE: usize = 16 * 1024 * 1024;

/// A finished background request.
enum Answer {
    ConnectionToken {
        member: MemberId,
        attempt: u64,
        result: Result<Secret, Error>,
    },
    ChannelTokens {
        fetch: u64,
        channels: Vec<Arc<str>>,
        result: Result<HashMap<String, Secret>, Error>,
    },
    ChatHistory {
        member: MemberId,
        channel: Arc<str>,
        backfill: u64,
        result: Result<Vec<ChatMessage>, Error>,
    },
    Resolved {
        member: MemberId,
        slug: Arc<str>,
        result: Result<Resolved, Error>,
    },
}

/// What a writer task is asked to do.
enum Write {
    Frame(String),
    /// Send what tungstenite queued (the answer to a WebSocket ping).
    Flush,
    Close,
}

/// One connection of the pool.
struct Member {
    session: Session,
    /// The writing half of its socket, when one is open.
    writer: Option<mpsc::UnboundedSender<Write>>,
    /// Numbers its sockets, so that a failed write of an old one is ignored.
    socket: u64,
    /// Being closed because it has no channel left: its end is not the client's.
    retiring: bool,
    span: tracing::Span,
}

/// What woke the loop.
enum Wake {
    Message(MemberId, Option<Result<Message, tungstenite::Error>>),
    WriteFailed(MemberId, u64, String),
    Order(Option<Order>),
    Answer(Answer),
    Dialed(MemberId, u64, Result<Box<Socket>, String>),
    Room,
    CallerGone,
    Timer,
}

/// The actor. Built by [`ClientBuilder`](crate::ClientBuilder), run as a task.
pub(crate) struct Actor {
    config: Config,
    api: VkApi,
    ws_url: String,
    orders: mpsc::Receiver<Order>,
    orders_open: bool,
    events: delivery::Sender,
    state: watch::Sender<State>,
    pool: Pool,
    members: BTreeMap<MemberId, Member>,
    readers: StreamMap<MemberId, Reader>,
    write_failures: FuturesUnordered<BoxFuture<'static, Option<(MemberId, u64, String)>>>,
    requests: FuturesUnordered<BoxFuture<'static, Answer>>,
    dials: FuturesUnordered<Dialing>,
    broker: Broker,
    /// `close()` calls waiting for the end.
    closers: Vec<oneshot::Sender<()>>,
    /// The client is closing (`close()` or the stream dropped).
    closing: bool,
    /// Why the client ends, once it does.
    ending: Option<CloseReason>,
    /// Reading is paused because the caller's queue is over its budget.
    paused: bool,
    unix_at_start: (Instant, i64),
    seed: u64,
}

impl Actor {
    pub(crate) fn new(
        config: Config,
        api: VkApi,
        ws_url: String,
        wanted: Vec<Command>,
        orders: mpsc::Receiver<Order>,
        events: delivery::Sender,
        state: watch::Sender<State>,
    ) -> Self {
        let now = now();
        let unix_millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let pool = Pool::new(config.channels_per_connection, config.connection_pace);
        let mut actor = Actor {
            config,
            api,
            ws_url,
            orders,
            orders_open: true,
            events,
            state,
            pool,
            members: BTreeMap::new(),
            readers: StreamMap::new(),
            write_failures: FuturesUnordered::new(),
            requests: FuturesUnordered::new(),
            dials: FuturesUnordered::new(),
            broker: Broker::default(),
            closers: Vec::new(),
            closing: false,
            ending: None,
            paused: false,
            unix_at_start: (now, unix_millis),
            seed: Jitter::random_seed(),
        };
        let first = actor.pool.first(now);
        actor.add_member(first, now);
        actor.apply(now, wanted.into_iter().map(Order::Command).collect());
        actor
    }

    /// Runs until the client ends, then hands over the final event.
    pub(crate) async fn run(mut self) {
        let reason = loop {
            if let Some(reason) = self.carry_out() {
                break reason;
            }
            let wake = self.wait().await;
            self.feed(wake);
        };
        self.state.send_replace(State::Closed);
        // No order can be served any more: refuse new ones and answer the
        // `close()` calls already waiting, so none of them waits for the
        // caller to drain the stream.
        self.orders.close();
        while let Ok(order) = self.orders.try_recv() {
            match order {
                Order::Close(done) => self.closers.push(done),
                Order::Snapshot(answer) => drop(answer),
                Order::Command(_) => {}
            }
        }
        for member in self.members.values_mut() {
            self.events.send_all(member.session.take_deliveries());
            if let Some(writer) = &member.writer {
                let _ = writer.send(Write::Close);
            }
        }
        self.events.finish(Event::Closed { reason });
        for done in self.closers.drain(..) {
            let _ = done.send(());
        }
        // The writers send their close frames on their own. An actor on a
        // thread of its own takes its runtime, and them, along when it ends:
        // give them the time a write may take.
        let writers_done = self.write_failures.collect::<Vec<_>>();
        let _ = tokio::time::timeout(self.config.write_timeout, writers_done).await;
    }

    // --- the connections ------------------------------------------------------

    /// A new connection of the pool, connecting no earlier than `at`.
    fn add_member(&mut self, id: MemberId, at: Instant) {
        let (start, unix_millis) = self.unix_at_start;
        let now = now();
        let unix_now = unix_millis.saturating_add(
            i64::try_from(now.saturating_duration_since(start).as_millis()).unwrap_or(0),
        );
        let mut session = Session::new(
            self.config.clone(),
            Vec::new(),
            now,
            unix_now,
            self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        session.start_at(at);
        let span = tracing::info_span!("connection", id);
        span.in_scope(|| tracing::debug!("connection added to the pool"));
        self.members.insert(
            id,
            Member {
                session,
                writer: None,
                socket: 0,
                retiring: false,
                span,
            },
        );
    }

    /// Places channels on the pool's connections: each connection gets its
    /// share as one burst (one token request), and the tokens of them all
    /// are fetched together.
    fn subscribe(&mut self, now: Instant, wanted: Vec<(String, Option<String>)>) {
        let mut bursts: BTreeMap<MemberId, Vec<(String, Option<String>)>> = BTreeMap::new();
        let mut names = Vec::new();
        for (channel, chat_slug) in wanted {
            let name: Arc<str> = channel.as_str().into();
            let id = if valid_channel_name(&channel) {
                match self.pool.place(&name, now) {
                    Some(Placement::Existing(id)) => id,
                    Some(Placement::New { id, at }) => {
                        self.add_member(id, at);
                        id
                    }
                    None => continue,
                }
            } else {
                // The first connection's session reports it.
                self.pool.first(now)
            };
            names.push(name);
            bursts.entry(id).or_default().push((channel, chat_slug));
        }
        self.broker.expect(names);
        for (id, burst) in bursts {
            if let Some(member) = self.members.get_mut(&id) {
                let _span = member.span.enter();
                member.session.handle_subscribe_burst(burst);
            }
        }
    }

    fn unsubscribe(&mut self, now: Instant, channel: String) {
        let Some(id) = self.pool.home(&channel) else {
            return;
        };
        self.broker.forget(&channel);
        if let Some(member) = self.members.get_mut(&id) {
            let _span = member.span.enter();
            member
                .session
                .handle_command(now, Command::Unsubscribe(channel.clone()));
        }
        if let Some(empty) = self.pool.remove(&channel)
            && let Some(member) = self.members.get_mut(&empty)
        {
            let _span = member.span.enter();
            tracing::debug!("no channel left: closing the connection");
            member.retiring = true;
            member.session.handle_command(now, Command::Close);
        }
    }

    /// Applies the caller's orders; subscribes in them go together.
    fn apply(&mut self, now: Instant, orders: Vec<Order>) {
        let mut burst = Vec::new();
        for order in orders {
            match order {
                Order::Command(Command::Subscribe { channel, chat_slug }) => {
                    burst.push((channel, chat_slug));
                }
                Order::Command(Command::Unsubscribe(channel)) => {
                    self.subscribe(now, std::mem::take(&mut burst));
                    self.unsubscribe(now, channel);
                }
                Order::Command(Command::Follow { slug, skip }) => {
                    let first = self.pool.first(now);
                    if let Some(member) = self.members.get_mut(&first) {
                        member
                            .session
                            .handle_command(now, Command::Follow { slug, skip });
                    }
                }
                Order::Command(Command::Close) => self.close_all(now),
                Order::Close(done) => {
                    self.closers.push(done);
                    self.close_all(now);
                }
                Order::Snapshot(answer) => {
                    let _ = answer.send(self.snapshot());
                }
            }
        }
        self.subscribe(now, burst);
    }

    fn close_all(&mut self, now: Instant) {
        self.closing = true;
        for member in self.members.values_mut() {
            let _span = member.span.enter();
            member.session.handle_command(now, Command::Close);
        }
    }

    fn snapshot(&self) -> PoolState {
        let connections = self
            .pool
            .members()
            .iter()
            .filter_map(|placed| {
                let member = self.members.get(&placed.id)?;
                let (wanted, subscribed) = member.session.channel_counts();
                Some(ConnectionState {
                    id: placed.id,
                    state: member.session.state().clone(),
                    channels_wanted: wanted,
                    channels_subscribed: subscribed,
                    limit: placed.limit,
                })
            })
            .collect();
        PoolState { connections }
    }

    // --- carrying out ------------------------------------------------------------

    /// Does what the sessions asked; returns the final reason once the client ends.
    fn carry_out(&mut self) -> Option<CloseReason> {
        let now = now();
        // Carrying out one connection's action may give others work (a
        // channel moved, tokens shared): go round until nobody has any.
        loop {
            let mut acted = false;
            let mut next = self.member_after(None);
            while let Some(id) = next {
                while let Some(action) = self
                    .members
                    .get_mut(&id)
                    .and_then(|member| member.session.poll_action())
                {
                    acted = true;
                    self.carry_out_one(now, id, action);
                }
                next = self.member_after(Some(id));
            }
            if !acted {
                break;
            }
        }
        for member in self.members.values_mut() {
            let frames = member.session.take_outgoing();
            if let Some(writer) = &member.writer {
                for frame in frames {
                    let _ = writer.send(Write::Frame(frame));
                }
            }
            self.events.send_all(member.session.take_deliveries());
        }
        self.events.report_drops();
        let state = self.pool_state();
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if self.ending.is_none() && self.closing && self.members.is_empty() {
            self.ending = Some(CloseReason::Requested);
        }
        self.ending.take()
    }

    /// The connection after `after` in id order (the first with `None`),
    /// found anew each time since carrying out actions adds and removes some.
    fn member_after(&self, after: Option<MemberId>) -> Option<MemberId> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.members
            .range((from, Unbounded))
            .next()
            .map(|(id, _)| *id)
    }

    /// Connected while any connection is; closed once the client ends.
    fn pool_state(&self) -> State {
        let connected = self
            .members
            .values()
            .any(|member| *member.session.state() == State::Connected);
        if connected {
            State::Connected
        } else {
            State::Connecting
        }
    }

    fn carry_out_one(&mut self, now: Instant, id: MemberId, action: Action) {
        match action {
            Action::FetchConnectionToken { attempt } => {
                let api = self.api.clone();
                self.requests.push(
                    async move {
                        let result = api.connection_token().await;
                        Answer::ConnectionToken {
                            member: id,
                            attempt,
                            result,
                        }
                    }
                    .boxed(),
                );
            }
            Action::FetchChannelTokens {
                attempt,
                purpose,
                channels,
            } => {
                let request = tokens::Request {
                    member: id,
                    attempt,
                    purpose,
                    channels,
                };
                let (fetch, answered) = self.broker.request(request, now);
                if let Some((fetch, channels)) = fetch {
                    self.fetch_tokens(fetch, channels);
                }
                self.answer_tokens(now, answered);
            }
            Action::FetchChatHistory {
                channel,
                slug,
                backfill,
            } => {
                let api = self.api.clone();
                self.requests.push(
                    async move {
                        let result = api.chat_messages(&slug, backfill::LIMIT).await;
                        Answer::ChatHistory {
                            member: id,
                            channel,
                            backfill,
                            result,
                        }
                    }
                    .boxed(),
                );
            }
            Action::ResolveChannel { slug } => {
                let api = self.api.clone();
                self.requests.push(
                    async move {
                        let result = resolve(&api, &slug).await;
                        Answer::Resolved {
                            member: id,
                            slug,
                            result,
                        }
                    }
                    .boxed(),
                );
            }
            Action::Refused { channel, chat_slug } => {
                let name: Arc<str> = channel.as_str().into();
                tracing::debug!(connection = id, %channel, "connection full (106): placing the channel on another");
                self.pool.refused(&name);
                self.subscribe(now, vec![(channel, chat_slug)]);
            }
            Action::Discovered(channels) => self.subscribe(now, channels),
            Action::Dial { attempt } => self.dials.push(self.dial_future(id, attempt)),
            Action::CloseSocket { linger } => self.close_socket(id, linger),
            Action::Finish(reason) => self.member_finished(id, reason),
        }
    }

    /// A connection's session ended.
    fn member_finished(&mut self, id: MemberId, reason: CloseReason) {
        self.close_socket(id, false);
        let Some(member) = self.members.remove(&id) else {
            return;
        };
        self.events.send_all({
            let mut session = member.session;
            session.take_deliveries().collect::<Vec<_>>()
        });
        if member.retiring || self.closing {
            return;
        }
        match reason {
            CloseReason::Requested => {
                // The caller dropped the stream: every connection goes.
                self.closing = true;
                self.ending = Some(CloseReason::Requested);
            }
            CloseReason::Failed(error) => {
                // A permanent failure (a rejected token, a terminal close)
                // ends the client, whichever connection met it first.
                self.closing = true;
                for member in self.members.values_mut() {
                    member.session.handle_caller_gone();
                }
                self.ending = Some(CloseReason::Failed(error));
            }
        }
    }

    fn fetch_tokens(&mut self, fetch: u64, channels: Vec<Arc<str>>) {
        let api = self.api.clone();
        self.requests.push(
            async move {
                let names: Vec<String> = channels.iter().map(|name| name.to_string()).collect();
                let result = api.subscription_tokens(&names).await;
                Answer::ChannelTokens {
                    fetch,
                    channels,
                    result,
                }
            }
            .boxed(),
        );
    }

    fn answer_tokens(&mut self, now: Instant, answered: Vec<tokens::Answered>) {
        for (request, result) in answered {
            if let Some(member) = self.members.get_mut(&request.member) {
                let _span = member.span.enter();
                member.session.handle_channel_tokens(
                    now,
                    request.attempt,
                    request.purpose,
                    request.channels,
                    result,
                );
            }
        }
    }

    // --- waiting and feeding -------------------------------------------------------

    /// Waits for the next thing that happens.
    async fn wait(&mut self) -> Wake {
        let deadline = self
            .members
            .values_mut()
            .filter_map(|member| member.session.poll_timeout())
            .min()
            .unwrap_or_else(|| now() + Duration::from_secs(3600));
        let over_budget = self.events.over_budget();
        self.set_paused(over_budget);
        let wants_room = over_budget || self.events.has_unreported_drops();
        let watcher = self.events.watcher();
        let reading = !over_budget && !self.readers.is_empty();
        let readers = &mut self.readers;
        let write_failures = &mut self.write_failures;
        let orders = &mut self.orders;
        let requests = &mut self.requests;
        let dials = &mut self.dials;
        tokio::select! {
            // Cancel-safe: a message is either returned or still in its stream.
            Some((id, message)) = readers.next(), if reading => Wake::Message(id, message),
            Some(Some((id, socket, reason))) = write_failures.next(), if !write_failures.is_empty() => {
                Wake::WriteFailed(id, socket, reason)
            }
            // Cancel-safe: mpsc::Receiver::recv.
            order = orders.recv(), if self.orders_open => Wake::Order(order),
            // Cancel-safe: an unfinished request stays in the set.
            Some(answer) = requests.next(), if !requests.is_empty() => Wake::Answer(answer),
            Some((id, attempt, result)) = dials.next(), if !dials.is_empty() => {
                Wake::Dialed(id, attempt, result)
            }
            () = watcher.room(), if wants_room => Wake::Room,
            () = watcher.closed() => Wake::CallerGone,
            () = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
        }
    }

    /// Hands what happened to the session it concerns.
    fn feed(&mut self, wake: Wake) {
        let now = now();
        match wake {
            Wake::Message(id, message) => self.on_message(now, id, message),
            Wake::WriteFailed(id, socket, reason) => {
                if let Some(member) = self.members.get_mut(&id)
                    && member.socket == socket
                {
                    let _span = member.span.enter();
                    member.session.handle_closed(now, None, reason);
                }
            }
            Wake::Order(None) => self.orders_open = false,
            Wake::Order(Some(order)) => {
                // Drain a burst so that its subscribes share token requests.
                let mut orders = vec![order];
                while let Ok(order) = self.orders.try_recv() {
                    orders.push(order);
                }
                self.apply(now, orders);
            }
            Wake::Answer(answer) => self.on_answer(now, answer),
            Wake::Dialed(id, attempt, result) => self.on_dialed(now, id, attempt, result),
            Wake::Room => {}
            Wake::CallerGone => {
                self.closing = true;
                self.ending.get_or_insert(CloseReason::Requested);
                for member in self.members.values_mut() {
                    member.session.handle_caller_gone();
                }
            }
            Wake::Timer => {
                for member in self.members.values_mut() {
                    if member.session.poll_timeout().is_some_and(|at| at <= now) {
                        let _span = member.span.enter();
                        member.session.handle_timeout(now);
                    }
                }
            }
        }
    }

    fn on_message(
        &mut self,
        now: Instant,
        id: MemberId,
        message: Option<Result<Message, tungstenite::Error>>,
    ) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let _span = member.span.enter();
        let session = &mut member.session;
        match message {
            Some(Ok(Message::Text(text))) => session.handle_frame(now, &Frame::from(text)),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = match frame {
                    Some(frame) => (Some(frame.code.into()), frame.reason.to_string()),
                    None => (
                        None,
                        "the server closed the connection without a code".into(),
                    ),
                };
                session.handle_closed(now, code, reason);
            }
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; make sure it leaves now.
                if let Some(writer) = &member.writer {
                    let _ = writer.send(Write::Flush);
                }
                session.handle_activity(now);
            }
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("ignoring a binary frame on a JSON connection");
                session.handle_activity(now);
            }
            Some(Ok(_)) => session.handle_activity(now),
            Some(Err(error)) => {
                session.handle_closed(now, None, format!("connection lost: {error}"))
            }
            None => session.handle_closed(now, None, "connection lost".into()),
        }
    }

    fn on_answer(&mut self, now: Instant, answer: Answer) {
        match answer {
            Answer::ConnectionToken {
                member,
                attempt,
                result,
            } => {
                if let Some(member) = self.members.get_mut(&member) {
                    let _span = member.span.enter();
                    member.session.handle_connection_token(now, attempt, result);
                }
            }
            Answer::ChannelTokens {
                fetch,
                channels,
                result,
            } => {
                let answered = self.broker.fetched(fetch, channels, result, now);
                self.answer_tokens(now, answered);
            }
            Answer::ChatHistory {
                member,
                channel,
                backfill,
                result,
            } => {
                // The channel may have moved; its session is the one to tell.
                let home = self.pool.home(&channel).unwrap_or(member);
                if let Some(member) = self.members.get_mut(&home) {
                    let _span = member.span.enter();
                    member
                        .session
                        .handle_chat_history(now, &channel, backfill, result);
                }
            }
            Answer::Resolved {
                member,
                slug,
                result,
            } => {
                if let Some(member) = self.members.get_mut(&member) {
                    let _span = member.span.enter();
                    member.session.handle_resolved(now, &slug, result);
                }
            }
        }
    }

    fn on_dialed(
        &mut self,
        now: Instant,
        id: MemberId,
        attempt: u64,
        result: Result<Box<Socket>, String>,
    ) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let _span = member.span.enter();
        match result {
            Ok(socket) => {
                member.socket += 1;
                let (writer, reader, failed) = spawn_writer(*socket, self.config.write_timeout);
                member.writer = Some(writer);
                let socket = member.socket;
                self.write_failures.push(
                    async move { failed.await.ok().map(|reason| (id, socket, reason)) }.boxed(),
                );
                self.readers.insert(id, reader);
                member.session.handle_dialed(now, attempt, Ok(()));
                if !member.session.is_open() {
                    // A late dial for an attempt the session gave up on.
                    drop(_span);
                    self.close_socket(id, false);
                }
            }
            Err(reason) => member.session.handle_dialed(now, attempt, Err(reason)),
        }
    }

    /// Pauses or resumes reading; no session may take a paused link for a
    /// dead one.
    fn set_paused(&mut self, paused: bool) {
        if paused != self.paused {
            self.paused = paused;
            tracing::debug!(
                paused,
                queued_bytes = self.events.queued_bytes(),
                "reading the sockets {}",
                if paused {
                    "paused: the caller is behind"
                } else {
                    "resumed"
                }
            );
            let now = now();
            for member in self.members.values_mut() {
                member.session.set_paused(now, paused);
            }
        }
    }

    /// A dial that first waits for room in the caller's queue: reconnecting
    /// while it is full would only fill the socket's buffers again.
    fn dial_future(&self, id: MemberId, attempt: u64) -> Dialing {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_MESSAGE))
            .max_frame_size(Some(MAX_INCOMING_MESSAGE));
        let url = self.ws_url.clone();
        let timeout = self.config.connect_timeout;
        let watcher = self.events.watcher();
        async move {
            watcher.room().await;
            let dial = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
            let result = match tokio::time::timeout(timeout, dial).await {
                Ok(Ok((socket, _response))) => Ok(Box::new(socket)),
                Ok(Err(error)) => Err(format!("WebSocket connection failed: {error}")),
                Err(_elapsed) => Err("WebSocket connection timed out".to_owned()),
            };
            (id, attempt, result)
        }
        .boxed()
    }

    fn close_socket(&mut self, id: MemberId, linger: bool) {
        let Some(member) = self.members.get_mut(&id) else {
            self.readers.remove(&id);
            return;
        };
        if let Some(writer) = &member.writer {
            let _ = writer.send(Write::Close);
        }
        if !linger {
            member.writer = None;
            self.readers.remove(&id);
        }
    }
}

/// Looks a VK channel up: its pubsub channels, and which private ones this
/// user is granted a subscription token for (VK's rule: no token in the
/// answer, no access).
async fn resolve(api: &VkApi, slug: &str) -> Result<Resolved, Error> {
    let info = api.channel(slug).await?;
    let private = info.web_socket_channels.private();
    let granted = if private.is_empty() {
        Default::default()
    } else {
        api.subscription_tokens(&private)
            .await?
            .into_keys()
            .collect()
    };
    Ok(Resolved {
        channels: info.web_socket_channels,
        granted,
    })
}

/// Splits the socket and starts its writer: every write has a deadline, and
/// a failed or late write is reported once through the returned receiver.
fn spawn_writer(
    socket: Socket,
    write_timeout: Duration,
) -> (
    mpsc::UnboundedSender<Write>,
    Reader,
    oneshot::Receiver<String>,
) {
    let (sink, stream) = socket.split();
    let (writer, writes) = mpsc::unbounded_channel();
    let (failed_tx, failed) = oneshot::channel();
    tokio::spawn(write_loop(sink, writes, write_timeout, failed_tx));
    let reader: Reader = Box::pin(
        stream
            .map(Some)
            .chain(futures::stream::once(async { None })),
    );
    (writer, reader, failed)
}

async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    write_timeout: Duration,
    failed: oneshot::Sender<String>,
) {
    while let Some(write) = writes.recv().await {
        let result = match write {
            Write::Frame(frame) => {
                tokio::time::timeout(write_timeout, sink.send(Message::Text(frame.into()))).await
            }
            Write::Flush => tokio::time::timeout(write_timeout, sink.flush()).await,
            Write::Close => {
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                };
                let _ = tokio::time::timeout(write_timeout, sink.send(Message::Close(Some(frame))))
                    .await;
                return;
            }
        };
        let reason = match result {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => format!("sending failed: {error}"),
            Err(_elapsed) => "sending timed out: the server stopped reading".to_owned(),
        };
        let _ = failed.send(reason);
        return;
    }
}

/// The time now, as the sessions take it: from the runtime's clock, which
/// a test may pause.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
