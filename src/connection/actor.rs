//! The actor: the one task that owns the WebSocket. It makes no protocol
//! decision: it feeds the [`Session`] what happens and carries out what the
//! session asks.
//!
//! Its loop is one `select!` over the socket (read only while the caller's
//! queue is within its budget), the caller's orders, background requests
//! (tokens, chat history), a dial in progress, the queue's room, and the
//! session's next deadline. It never awaits the network in line: requests
//! and the dial are futures polled by the same `select!`, and writes go
//! through a writer task with a deadline, so pings are answered and
//! `close()` is served whatever the network does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::backfill;
use super::command::{Command, Order};
use super::config::Config;
use super::session::{Action, Purpose, Resolved, Session};
use crate::auth::VkApi;
use crate::delivery::{self, CloseReason, Event, State};
use crate::error::Error;
use crate::event::ChatMessage;
use crate::secret::Secret;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A dial in progress: its attempt number and the socket, or why not.
type Dialing = BoxFuture<'static, (u64, Result<Box<Socket>, String>)>;

/// Largest incoming message accepted.
const MAX_INCOMING_MESSAGE: usize = 16 * 1024 * 1024;

/// A finished background request.
enum Answer {
    ConnectionToken {
        attempt: u64,
        result: Result<Secret, Error>,
    },
    ChannelTokens {
        attempt: u64,
        purpose: Purpose,
        channels: Vec<Arc<str>>,
        result: Result<HashMap<String, Secret>, Error>,
    },
    ChatHistory {
        channel: Arc<str>,
        backfill: u64,
        result: Result<Vec<ChatMessage>, Error>,
    },
    Resolved {
        slug: Arc<str>,
        result: Result<Resolved, Error>,
    },
}

/// What the writer task is asked to do.
enum Write {
    Frame(String),
    /// Send what tungstenite queued (the answer to a WebSocket ping).
    Flush,
    Close,
}

/// The open socket: its reading half here, its writing half in a task.
struct Io {
    reader: SplitStream<Socket>,
    writer: mpsc::UnboundedSender<Write>,
    /// Answers once if a write failed or timed out.
    write_failed: oneshot::Receiver<String>,
}

/// What woke the loop.
enum Wake {
    Message(Option<Result<Message, tungstenite::Error>>),
    WriteFailed(String),
    Order(Option<Order>),
    Answer(Answer),
    Dialed(u64, Result<Box<Socket>, String>),
    Room,
    CallerGone,
    Timer,
}

/// The actor. Built by [`ClientBuilder`](crate::ClientBuilder), run as a task.
pub(crate) struct Actor {
    session: Session,
    config: Config,
    api: VkApi,
    ws_url: String,
    orders: mpsc::Receiver<Order>,
    orders_open: bool,
    events: delivery::Sender,
    state: watch::Sender<State>,
    io: Option<Io>,
    requests: FuturesUnordered<BoxFuture<'static, Answer>>,
    dial: Option<Dialing>,
    /// `close()` calls waiting for the end.
    closers: Vec<oneshot::Sender<()>>,
    /// Reading is paused because the caller's queue is over its budget.
    paused: bool,
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
        let now = Instant::now();
        let unix_millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let seed = random_seed();
        let mut session = Session::new(config.clone(), Vec::new(), now, unix_millis, seed);
        for command in wanted {
            session.handle_command(now, command);
        }
        Actor {
            session,
            config,
            api,
            ws_url,
            orders,
            orders_open: true,
            events,
            state,
            io: None,
            requests: FuturesUnordered::new(),
            dial: None,
            closers: Vec::new(),
            paused: false,
        }
    }

    /// Runs until the session finishes, then hands over the final event.
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
            if let Order::Close(done) = order {
                self.closers.push(done);
            }
        }
        self.events.send_all(self.session.take_deliveries());
        self.events.finish(Event::Closed { reason });
        for done in self.closers.drain(..) {
            let _ = done.send(());
        }
    }

    /// Does what the session asked; returns the final reason once it finished.
    fn carry_out(&mut self) -> Option<CloseReason> {
        let mut finished = None;
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::FetchConnectionToken { attempt } => {
                    let api = self.api.clone();
                    self.requests.push(
                        async move {
                            let result = api.connection_token().await;
                            Answer::ConnectionToken { attempt, result }
                        }
                        .boxed(),
                    );
                }
                Action::FetchChannelTokens {
                    attempt,
                    purpose,
                    channels,
                } => {
                    let api = self.api.clone();
                    self.requests.push(
                        async move {
                            let names: Vec<String> =
                                channels.iter().map(|name| name.to_string()).collect();
                            let result = api.subscription_tokens(&names).await;
                            Answer::ChannelTokens {
                                attempt,
                                purpose,
                                channels,
                                result,
                            }
                        }
                        .boxed(),
                    );
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
                            Answer::Resolved { slug, result }
                        }
                        .boxed(),
                    );
                }
                Action::Dial { attempt } => self.dial = Some(self.dial_future(attempt)),
                Action::CloseSocket { linger } => self.close_socket(linger),
                Action::Finish(reason) => finished = Some(reason),
            }
        }
        if let Some(io) = &self.io {
            for frame in self.session.take_outgoing() {
                let _ = io.writer.send(Write::Frame(frame));
            }
        } else {
            self.session.take_outgoing();
        }
        self.events.send_all(self.session.take_deliveries());
        self.events.report_drops();
        let state = self.session.state().clone();
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        finished
    }

    /// Waits for the next thing that happens.
    async fn wait(&mut self) -> Wake {
        let deadline = self
            .session
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let over_budget = self.events.over_budget();
        self.set_paused(over_budget);
        let wants_room = over_budget || self.events.has_unreported_drops();
        let watcher = self.events.watcher();
        let reading = self.io.is_some() && !over_budget;
        let (reader, write_failed) = match &mut self.io {
            Some(io) => (Some(&mut io.reader), Some(&mut io.write_failed)),
            None => (None, None),
        };
        let dialing = self.dial.is_some();
        let dial = &mut self.dial;
        let orders = &mut self.orders;
        let requests = &mut self.requests;
        tokio::select! {
            // Cancel-safe: a message is either returned or still in the stream.
            message = or_pending(reader.map(StreamExt::next)), if reading => Wake::Message(message),
            Ok(reason) = or_pending(write_failed) => Wake::WriteFailed(reason),
            // Cancel-safe: mpsc::Receiver::recv.
            order = orders.recv(), if self.orders_open => Wake::Order(order),
            // Cancel-safe: an unfinished request stays in the set.
            Some(answer) = requests.next(), if !requests.is_empty() => Wake::Answer(answer),
            (attempt, result) = or_pending(dial.as_mut()), if dialing => Wake::Dialed(attempt, result),
            () = watcher.room(), if wants_room => Wake::Room,
            () = watcher.closed() => Wake::CallerGone,
            () = tokio::time::sleep_until(deadline) => Wake::Timer,
        }
    }

    /// Hands what happened to the session.
    fn feed(&mut self, wake: Wake) {
        let now = Instant::now();
        match wake {
            Wake::Message(message) => self.on_message(now, message),
            Wake::WriteFailed(reason) => {
                self.session.handle_closed(now, None, reason);
            }
            Wake::Order(order) => self.on_order(now, order),
            Wake::Answer(answer) => self.on_answer(now, answer),
            Wake::Dialed(attempt, result) => {
                self.dial = None;
                match result {
                    Ok(socket) => {
                        self.io = Some(spawn_writer(*socket, self.config.write_timeout));
                        self.session.handle_dialed(now, attempt, Ok(()));
                    }
                    Err(reason) => self.session.handle_dialed(now, attempt, Err(reason)),
                }
                if !self.session.is_open() {
                    // A late dial for an attempt the session gave up on.
                    self.close_socket(false);
                }
            }
            Wake::Room => {}
            Wake::CallerGone => self.session.handle_caller_gone(),
            Wake::Timer => self.session.handle_timeout(now),
        }
    }

    fn on_message(&mut self, now: Instant, message: Option<Result<Message, tungstenite::Error>>) {
        match message {
            Some(Ok(Message::Text(text))) => self.session.handle_frame(now, &text),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = match frame {
                    Some(frame) => (Some(frame.code.into()), frame.reason.to_string()),
                    None => (
                        None,
                        "the server closed the connection without a code".into(),
                    ),
                };
                self.session.handle_closed(now, code, reason);
            }
            Some(Ok(Message::Ping(_))) => {
                // tungstenite queued the pong; make sure it leaves now.
                if let Some(io) = &self.io {
                    let _ = io.writer.send(Write::Flush);
                }
                self.session.handle_activity(now);
            }
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("ignoring a binary frame on a JSON connection");
                self.session.handle_activity(now);
            }
            Some(Ok(_)) => self.session.handle_activity(now),
            Some(Err(error)) => {
                self.session
                    .handle_closed(now, None, format!("connection lost: {error}"));
            }
            None => self
                .session
                .handle_closed(now, None, "connection lost".into()),
        }
    }

    fn on_order(&mut self, now: Instant, order: Option<Order>) {
        let Some(order) = order else {
            self.orders_open = false;
            return;
        };
        // Drain a burst so that its subscribes share token requests.
        let mut burst = Vec::new();
        let mut next = Some(order);
        while let Some(order) = next {
            match order {
                Order::Command(Command::Subscribe { channel, chat_slug }) => {
                    burst.push((channel, chat_slug));
                }
                Order::Command(command) => {
                    self.session
                        .handle_subscribe_burst(std::mem::take(&mut burst));
                    self.session.handle_command(now, command);
                }
                Order::Close(done) => {
                    self.session
                        .handle_subscribe_burst(std::mem::take(&mut burst));
                    self.closers.push(done);
                    self.session.handle_command(now, Command::Close);
                }
            }
            next = self.orders.try_recv().ok();
        }
        self.session.handle_subscribe_burst(burst);
    }

    fn on_answer(&mut self, now: Instant, answer: Answer) {
        match answer {
            Answer::ConnectionToken { attempt, result } => {
                self.session.handle_connection_token(now, attempt, result);
            }
            Answer::ChannelTokens {
                attempt,
                purpose,
                channels,
                result,
            } => self
                .session
                .handle_channel_tokens(now, attempt, purpose, channels, result),
            Answer::ChatHistory {
                channel,
                backfill,
                result,
            } => self
                .session
                .handle_chat_history(now, &channel, backfill, result),
            Answer::Resolved { slug, result } => self.session.handle_resolved(now, &slug, result),
        }
    }

    /// Pauses or resumes reading; the session must not take a paused link
    /// for a dead one.
    fn set_paused(&mut self, paused: bool) {
        if paused != self.paused {
            self.paused = paused;
            tracing::debug!(
                paused,
                queued_bytes = self.events.queued_bytes(),
                "reading the socket {}",
                if paused {
                    "paused: the caller is behind"
                } else {
                    "resumed"
                }
            );
            self.session.set_paused(Instant::now(), paused);
        }
    }

    /// A dial that first waits for room in the caller's queue: reconnecting
    /// while it is full would only fill the socket's buffers again.
    fn dial_future(&self, attempt: u64) -> Dialing {
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
            (attempt, result)
        }
        .boxed()
    }

    fn close_socket(&mut self, linger: bool) {
        if let Some(io) = &self.io {
            let _ = io.writer.send(Write::Close);
        }
        if !linger {
            self.io = None;
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

/// Awaits `future`, or never if there is none.
async fn or_pending<F: std::future::Future>(future: Option<F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// Splits the socket and starts its writer: every write has a deadline, and
/// a failed or late write is reported once through `write_failed`.
fn spawn_writer(socket: Socket, write_timeout: Duration) -> Io {
    let (sink, reader) = socket.split();
    let (writer, writes) = mpsc::unbounded_channel();
    let (failed_tx, write_failed) = oneshot::channel();
    tokio::spawn(write_loop(sink, writes, write_timeout, failed_tx));
    Io {
        reader,
        writer,
        write_failed,
    }
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

/// A seed for the backoff's jitter: the standard library's randomly seeded
/// hasher is enough.
fn random_seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0x9E37_79B9_7F4A_7C15);
    hasher.finish()
}
