//! The Centrifugo side: one reader task (the protocol session, timers) and
//! one writer task (the socket sink, batching) per WebSocket.
//!
//! The reader never writes to the socket: everything goes through the
//! connection's bounded queue (via [`State::deliver`]), so replies and pushes
//! keep one order. Out-of-band orders (abort, close-now on overflow) travel on
//! a `watch` channel both tasks listen to.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State as AxumState;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, sleep_until};

use super::state::{ConnFaults, Kill, Out, Outcome, Shared, State};
use crate::protocol::{Command, codes};

/// Inbound message size limit (Centrifugo's `websocket.message_size_limit`):
/// bigger messages close the connection with 1009.
const MAX_MESSAGE_SIZE: usize = 65_536;
/// What the transport itself accepts. Larger than [`MAX_MESSAGE_SIZE`] so the
/// session can read an oversize message whole and close cleanly with 1009;
/// when the transport refuses a message, unread bytes would turn the close
/// into a TCP reset.
const TRANSPORT_MESSAGE_LIMIT: usize = 1 << 20;
/// Most lines merged into one outgoing frame.
const MAX_BATCH_LINES: usize = 512;
/// Stop merging lines once a frame is this big.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// How long a closing connection waits for the peer's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// `GET /connection/websocket`.
pub(crate) async fn upgrade(
    AxumState(shared): AxumState<Arc<Shared>>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(failure) = shared.lock().take_upgrade_failure() {
        let status =
            StatusCode::from_u16(failure.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, "upgrade refused by the emulator").into_response();
    }
    ws.max_message_size(TRANSPORT_MESSAGE_LIMIT)
        .max_frame_size(TRANSPORT_MESSAGE_LIMIT)
        .on_upgrade(move |socket| run_connection(shared, socket))
}

async fn run_connection(shared: Arc<Shared>, socket: WebSocket) {
    let (id, rx, kill, faults, settings) = {
        let mut state = shared.lock();
        let (id, rx, kill, faults) = state.register_connection();
        let settings = Settings {
            ping_interval: state.config.ping_interval,
            pong_timeout: state.config.pong_timeout,
            stale_timeout: state.config.stale_timeout,
            batch: state.config.batch_frames,
        };
        (id, rx, kill, faults, settings)
    };
    let (sink, stream) = socket.split();
    let mut writer = tokio::spawn(write_loop(
        Arc::clone(&shared),
        sink,
        rx,
        kill.clone(),
        faults,
        settings.batch,
    ));
    let session = Session::new(id, Arc::clone(&shared), settings);
    session.run(stream, kill).await;
    shared.lock().remove_connection(id);
    // The writer ends on its own once its queue is closed or it sent the
    // close frame; do not let a stuck peer keep it around.
    if tokio::time::timeout(CLOSE_LINGER, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    ping_interval: Duration,
    pong_timeout: Duration,
    stale_timeout: Duration,
    batch: bool,
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

enum Flow {
    Continue,
    Stop,
}

fn close_message(code: u16, reason: &str) -> Message {
    // A close reason is at most 123 bytes; cut at a char boundary.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// Sends one message, giving up if an abort or close-now order arrives.
async fn send_watching(
    sink: &mut SplitSink<WebSocket, Message>,
    message: Message,
    kill: &mut watch::Receiver<Kill>,
) -> Flow {
    let send = sink.send(message);
    tokio::pin!(send);
    loop {
        tokio::select! {
            biased;
            changed = kill.changed() => {
                if changed.is_err() {
                    return Flow::Stop;
                }
                let order = kill.borrow_and_update().clone();
                if matches!(order, Kill::Abort | Kill::CloseNow(..)) {
                    return Flow::Stop;
                }
            }
            result = &mut send => {
                return if result.is_ok() { Flow::Continue } else { Flow::Stop };
            }
        }
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Out>,
    mut kill: watch::Receiver<Kill>,
    faults: Arc<ConnFaults>,
    batch: bool,
) {
    let mut pending: Option<Out> = None;
    loop {
        let item = match pending.take() {
            Some(item) => item,
            None => tokio::select! {
                biased;
                changed = kill.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let order = kill.borrow_and_update().clone();
                    match order {
                        Kill::Abort => return,
                        Kill::CloseNow(code, reason) => {
                            let _ = sink.send(close_message(code, &reason)).await;
                            return;
                        }
                        Kill::Alive | Kill::Closing => continue,
                    }
                }
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => return,
                },
            },
        };
        let message = match item {
            Out::Close(code, reason) => {
                let _ = send_watching(&mut sink, close_message(code, &reason), &mut kill).await;
                return;
            }
            Out::Raw(frame) => Message::text(&*frame),
            Out::Line(first) => {
                let mut frame = String::from(&*first);
                if batch {
                    let mut lines = 1;
                    while lines < MAX_BATCH_LINES && frame.len() < MAX_BATCH_BYTES {
                        match rx.try_recv() {
                            Ok(Out::Line(next)) => {
                                frame.push('\n');
                                frame.push_str(&next);
                                lines += 1;
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                Message::text(frame)
            }
        };
        if shared.silent.load(Ordering::SeqCst) || faults.swallow() {
            continue;
        }
        if let Flow::Stop = send_watching(&mut sink, message, &mut kill).await {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// Reader: the protocol session
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `connect`.
    Fresh,
    /// `connect` failed (109): any later command closes with 3501.
    ConnectFailed,
    Connected,
    /// A close frame is on its way: inbound commands are ignored.
    Closing,
}

struct Session {
    id: u64,
    shared: Arc<Shared>,
    settings: Settings,
    phase: Phase,
    /// Set by a failed connect: skip the rest of the current frame.
    ignore_rest_of_frame: bool,
    stale_at: Option<Instant>,
    next_ping: Option<Instant>,
    pong_due: Option<Instant>,
    connection_expires: Option<Instant>,
    subscription_expires: HashMap<String, Instant>,
    linger_until: Option<Instant>,
}

impl Session {
    fn new(id: u64, shared: Arc<Shared>, settings: Settings) -> Session {
        Session {
            id,
            shared,
            settings,
            phase: Phase::Fresh,
            ignore_rest_of_frame: false,
            stale_at: Some(Instant::now() + settings.stale_timeout),
            next_ping: None,
            pong_due: None,
            connection_expires: None,
            subscription_expires: HashMap::new(),
            linger_until: None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    async fn run(mut self, mut stream: SplitStream<WebSocket>, mut kill: watch::Receiver<Kill>) {
        loop {
            let deadline = self.next_deadline();
            let timer = async move {
                match deadline {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = kill.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let order = kill.borrow_and_update().clone();
                    match order {
                        Kill::Abort => return,
                        Kill::Alive => {}
                        Kill::Closing | Kill::CloseNow(..) => self.linger(),
                    }
                }
                message = stream.next() => {
                    match message {
                        None => return,
                        Some(Ok(Message::Close(_))) => {
                            // The peer closes: keep polling so the close reply
                            // goes out, then the stream ends.
                            if self.phase != Phase::Closing {
                                self.state().mark_closing(self.id);
                                self.linger();
                            }
                        }
                        Some(Err(error)) => {
                            // A dropped TCP connection is not protocol misuse.
                            tracing::debug!(connection = self.id, %error, "emulator: read error");
                            return;
                        }
                        Some(Ok(Message::Text(text) )) if text.len() > MAX_MESSAGE_SIZE => {
                            self.oversize(text.len());
                        }
                        Some(Ok(Message::Binary(bytes))) if bytes.len() > MAX_MESSAGE_SIZE => {
                            self.oversize(bytes.len());
                        }
                        Some(Ok(Message::Text(text))) => self.on_frame(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                            Ok(text) => self.on_frame(text),
                            Err(_) => self.close(
                                codes::CLOSE_BAD_REQUEST,
                                "bad request",
                                Some(String::from("binary frame that is not UTF-8 on a JSON connection")),
                            ),
                        },
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                () = timer => {
                    if self.on_timer() {
                        return;
                    }
                }
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if self.phase == Phase::Closing {
            return self.linger_until;
        }
        [
            self.stale_at,
            self.next_ping,
            self.pong_due,
            self.connection_expires,
            self.subscription_expires.values().min().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Stop processing and wait a little for the peer's close frame.
    fn linger(&mut self) {
        self.phase = Phase::Closing;
        self.linger_until = Some(Instant::now() + CLOSE_LINGER);
    }

    fn close(&mut self, code: u16, reason: &str, violation: Option<String>) {
        if self.phase == Phase::Closing {
            return;
        }
        {
            let mut state = self.state();
            if let Some(violation) = violation {
                state.record_violation(self.id, &violation);
            }
            state.close_connection(self.id, code, reason);
        }
        self.linger();
    }

    fn oversize(&mut self, len: usize) {
        self.close(
            1009,
            "message too big",
            Some(format!(
                "oversize message: {len} bytes > {MAX_MESSAGE_SIZE}"
            )),
        );
    }

    fn bad_request(&mut self, violation: impl Into<String>) {
        self.close(
            codes::CLOSE_BAD_REQUEST,
            "bad request",
            Some(violation.into()),
        );
    }

    /// Returns true when the session is over.
    fn on_timer(&mut self) -> bool {
        let now = Instant::now();
        if self.phase == Phase::Closing {
            return self.linger_until.is_none_or(|at| at <= now);
        }
        if self.stale_at.is_some_and(|at| at <= now) {
            self.close(
                codes::CLOSE_STALE,
                "stale",
                Some(String::from("no connect within the stale timeout")),
            );
            return false;
        }
        if self.pong_due.is_some_and(|at| at <= now) {
            self.close(
                codes::CLOSE_NO_PONG,
                "no pong",
                Some(String::from("no pong within the pong timeout")),
            );
            return false;
        }
        if self.connection_expires.is_some_and(|at| at <= now) {
            self.close(codes::CLOSE_CONNECTION_EXPIRED, "connection expired", None);
            return false;
        }
        let expired: Vec<String> = self
            .subscription_expires
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(channel, _)| channel.clone())
            .collect();
        for channel in expired {
            self.subscription_expires.remove(&channel);
            self.state().server_unsubscribe(
                self.id,
                &channel,
                codes::UNSUBSCRIBE_EXPIRED,
                "subscription expired",
            );
        }
        if self.next_ping.is_some_and(|at| at <= now) {
            self.next_ping = Some(now + self.settings.ping_interval);
            if !self.shared.silent.load(Ordering::SeqCst) && self.pong_due.is_none() {
                let sent = self.state().deliver(self.id, Out::Line(Arc::from("{}")));
                if sent {
                    self.shared.pings_sent.fetch_add(1, Ordering::SeqCst);
                    self.pong_due = Some(now + self.settings.pong_timeout);
                }
            }
        }
        false
    }

    /// Handles one inbound text frame: lines split on `\n`, at most one
    /// trailing `\n`; an empty frame or any bad line closes with 3501.
    fn on_frame(&mut self, frame: &str) {
        if self.phase == Phase::Closing {
            return;
        }
        let body = frame.strip_suffix('\n').unwrap_or(frame);
        if body.is_empty() {
            self.bad_request("empty frame");
            return;
        }
        for (index, text) in body.split('\n').enumerate() {
            if self.phase == Phase::Closing {
                break;
            }
            let command = match serde_json::from_str::<Command>(text) {
                Ok(command) => command,
                Err(error) => {
                    let mut shown: String = text.chars().take(80).collect();
                    if shown.len() < text.len() {
                        shown.push('…');
                    }
                    self.bad_request(format!(
                        "undecodable line {} ({error}): {shown:?}",
                        index + 1
                    ));
                    break;
                }
            };
            self.state().record_command(self.id, &command);
            if self.ignore_rest_of_frame {
                continue;
            }
            self.on_command(command);
        }
        self.ignore_rest_of_frame = false;
    }

    fn on_command(&mut self, command: Command) {
        if self.phase == Phase::ConnectFailed {
            self.bad_request("command after a failed connect");
            return;
        }
        if command.is_pong() {
            self.on_pong();
            return;
        }
        let Some(request) = command.request_name() else {
            self.bad_request(format!("command {} without a known request", command.id));
            return;
        };
        if request == "send" {
            if self.phase == Phase::Connected {
                self.close(codes::CLOSE_NOT_AVAILABLE, "not available", None);
            } else {
                self.bad_request("send before connect");
            }
            return;
        }
        if command.id == 0 {
            self.bad_request(format!("{request} command without an id"));
            return;
        }
        match (self.phase, request) {
            (Phase::Fresh, "connect") => self.on_connect(&command),
            (Phase::Fresh, other) => self.bad_request(format!("{other} before connect")),
            (_, "connect") => self.bad_request("second connect"),
            _ => self.on_request(&command, request),
        }
    }

    fn on_pong(&mut self) {
        match self.phase {
            Phase::Connected if self.pong_due.is_some() => {
                self.pong_due = None;
                self.shared.pongs_received.fetch_add(1, Ordering::SeqCst);
            }
            Phase::Connected => self.bad_request("unsolicited pong (no ping outstanding)"),
            _ => self.bad_request("pong before connect"),
        }
    }

    fn on_connect(&mut self, command: &Command) {
        let token = command
            .connect
            .as_ref()
            .and_then(|c| c.token.as_ref())
            .map(|t| t.expose_secret().to_owned());
        let interval = self.settings.ping_interval;
        let ping_secs = if interval.is_zero() {
            0
        } else {
            u32::try_from(interval.as_secs() + u64::from(interval.subsec_nanos() > 0))
                .unwrap_or(u32::MAX)
        };
        let outcome = self
            .state()
            .connect(self.id, command.id, token.as_deref(), ping_secs);
        match outcome {
            Outcome::Deadline(expires) => {
                self.phase = Phase::Connected;
                self.stale_at = None;
                self.connection_expires = expires;
                if !interval.is_zero() {
                    // The first ping goes out at a random moment in [N/2, N).
                    let half = interval / 2;
                    let jitter = half.mul_f64(fastrand::f64());
                    self.next_ping = Some(Instant::now() + half + jitter);
                }
            }
            Outcome::ConnectFailed => {
                self.phase = Phase::ConnectFailed;
                self.ignore_rest_of_frame = true;
            }
            other => self.apply(other, None),
        }
    }

    fn on_request(&mut self, command: &Command, request: &str) {
        let id = command.id;
        match request {
            "subscribe" => {
                let Some(subscribe) = command.subscribe.as_ref() else {
                    return;
                };
                let outcome = self.state().subscribe(self.id, id, subscribe);
                self.apply(outcome, Some(&subscribe.channel));
            }
            "unsubscribe" => {
                let channel = command
                    .unsubscribe
                    .as_ref()
                    .map(|u| u.channel.clone())
                    .unwrap_or_default();
                self.subscription_expires.remove(&channel);
                let outcome = self.state().unsubscribe(self.id, id, &channel);
                self.apply(outcome, None);
            }
            "refresh" => {
                let token = command
                    .refresh
                    .as_ref()
                    .and_then(|r| r.token.as_ref())
                    .map(|t| t.expose_secret().to_owned());
                let outcome = self.state().refresh(self.id, id, token.as_deref());
                if let Outcome::Deadline(expires) = outcome {
                    self.connection_expires = expires;
                } else {
                    self.apply(outcome, None);
                }
            }
            "sub_refresh" => {
                let (channel, token) = command
                    .sub_refresh
                    .as_ref()
                    .map(|r| {
                        (
                            r.channel.clone(),
                            r.token.as_ref().map(|t| t.expose_secret().to_owned()),
                        )
                    })
                    .unwrap_or_default();
                let outcome = self
                    .state()
                    .sub_refresh(self.id, id, &channel, token.as_deref());
                self.apply(outcome, Some(&channel));
            }
            "publish" => {
                let _ = self
                    .state()
                    .reply_error(self.id, id, codes::PERMISSION_DENIED);
            }
            "history" => {
                let outcome = self
                    .state()
                    .history(self.id, id, command.history.as_deref());
                self.apply(outcome, None);
            }
            "presence" | "presence_stats" | "ping" => {
                let _ = self.state().reply_error(self.id, id, codes::NOT_AVAILABLE);
            }
            "rpc" => {
                let _ = self
                    .state()
                    .reply_error(self.id, id, codes::METHOD_NOT_FOUND);
            }
            other => self.bad_request(format!("unexpected {other} command")),
        }
    }

    /// Applies a protocol step's outcome; `channel` names the subscription a
    /// deadline belongs to.
    fn apply(&mut self, outcome: Outcome, channel: Option<&String>) {
        match outcome {
            Outcome::Done | Outcome::ConnectFailed => {}
            Outcome::Deadline(deadline) => {
                if let Some(channel) = channel {
                    match deadline {
                        Some(at) => {
                            self.subscription_expires.insert(channel.clone(), at);
                        }
                        None => {
                            self.subscription_expires.remove(channel);
                        }
                    }
                }
            }
            Outcome::Close {
                code,
                reason,
                violation,
            } => self.close(code, reason, violation),
        }
    }
}
