//! The caller's side: [`ClientBuilder`], the cloneable [`Client`] handle and
//! the [`Events`] stream.

use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::auth::{Authorization, Credentials, DEFAULT_API_URL, VkApi};
use crate::connection::{self, Backoff, Config};
use crate::error::{Error, ErrorKind};
use crate::event::VkEvent;

/// VK's pubsub WebSocket URL, with the query string VK documents.
pub const DEFAULT_WS_URL: &str =
    "wss://pubsub-dev.live.vkvideo.ru/connection/websocket?format=json&cf_protocol_version=v2";

/// Something that happened on the connection: a publication, or a lifecycle
/// change. The stream ends after [`Event::Closed`].
#[derive(Debug)]
#[non_exhaustive]
// Publications are nearly every event: boxing them to shrink the rare
// lifecycle variants would add an allocation per publication.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A publication in a subscribed channel, in order.
    Publication(Publication),
    /// The connection is up (after the first connect and after every reconnect).
    Connected {
        /// Client id the server assigned.
        client: String,
    },
    /// The connection was lost; the connector reconnects with backoff.
    Disconnected {
        /// WebSocket close code, when the server sent one.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// A channel is subscribed (again).
    Subscribed {
        /// The channel.
        channel: String,
        /// Whether publications missed while away were recovered.
        recovery: Recovery,
    },
    /// The server refused to subscribe a channel; it will not be retried.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// Centrifugo error code (103 permission denied, 106 limit exceeded,
        /// 107 for an invalid name), or 0 when the API refused its token request.
        code: u32,
        /// The server's message.
        reason: String,
    },
    /// A subscription ended: the server unsubscribed us with a terminal code,
    /// or [`Client::unsubscribe`] was called (code 0).
    Unsubscribed {
        /// The channel.
        channel: String,
        /// Unsubscribe code (0 when asked for by this client).
        code: u32,
        /// The reason.
        reason: String,
    },
    /// The caller read too slowly: this many publications were dropped to keep
    /// memory bounded. See `docs/reliability.md`.
    Lagged {
        /// Publications dropped since the last delivered event.
        dropped: u64,
    },
    /// The connection ended for good; nothing follows.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// A publication: where it came from and the decoded VK event.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The channel it was published in.
    pub channel: Arc<str>,
    /// Its position in the channel's stream (0 when the channel keeps none).
    pub offset: u64,
    /// The decoded event.
    pub event: VkEvent,
}

/// What travels from the connection actor to [`Events`]: a ready event, or
/// a publication whose payload is decoded by [`Events`], in the caller's
/// task.
///
/// Why the caller's task: a typed event is a tree of `String`s and `Vec`s
/// (about nine allocations for a chat message). Built in the actor's task
/// and dropped in the caller's, on another thread of a multi-threaded
/// runtime, every one of them is freed on a thread that did not allocate
/// it, which the system allocator serializes on a lock shared with the
/// allocating thread. Decoded where it is dropped, nothing crosses threads
/// but a reference to the received frame.
///
/// Publications are nearly every delivery; the rare events are boxed so that
/// a channel slot is the size of a publication, not of the largest event.
#[derive(Debug)]
pub(crate) enum Delivery {
    Event(Box<Event>),
    Publication(RawPublication),
}

impl From<Event> for Delivery {
    fn from(event: Event) -> Self {
        Delivery::Event(Box::new(event))
    }
}

impl Delivery {
    fn into_event(self) -> Event {
        match self {
            Delivery::Event(event) => *event,
            Delivery::Publication(raw) => Event::Publication(raw.decode()),
        }
    }
}

/// A publication the actor accepted (subscribed channel, new offset, a
/// line that decodes), with its payload still in the received frame.
#[derive(Debug)]
pub(crate) struct RawPublication {
    pub(crate) channel: Arc<str>,
    pub(crate) offset: u64,
    pub(crate) data: Payload,
}

/// A publication's payload (`pub.data`), one JSON value as received.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A place in the received frame, shared (a reference count, not a copy).
    Shared {
        frame: Utf8Bytes,
        range: Range<usize>,
    },
    /// A copy, for a frame mostly made of something else: a queued publication
    /// must not keep a large frame alive.
    Owned(Box<str>),
}

impl Payload {
    fn text(&self) -> &str {
        match self {
            Payload::Shared { frame, range } => frame.as_str().get(range.clone()).unwrap_or("null"),
            Payload::Owned(text) => text,
        }
    }

    /// Turns a shared payload into a copy.
    pub(crate) fn unshare(&mut self) {
        if let Payload::Shared { .. } = self {
            *self = Payload::Owned(self.text().into());
        }
    }
}

impl RawPublication {
    fn decode(self) -> Publication {
        Publication {
            channel: self.channel,
            offset: self.offset,
            event: VkEvent::decode_json(self.data.text()),
        }
    }
}

/// The recovery outcome of a (re)subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A first subscription: nothing to recover.
    NotRequested,
    /// Every publication missed while away was delivered (right after this event).
    Recovered,
    /// The server could not recover the gap: publications may have been missed,
    /// so reload state from the REST API.
    Failed,
}

/// Why the connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Client::close`] was called.
    Requested,
    /// A permanent failure: a rejected token, a terminal close code, a
    /// non-temporary connect error.
    Failed(Error),
}

/// The connection's state, as seen from a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Fetching tokens, dialing, or waiting to retry.
    Connecting,
    /// Connected.
    Connected,
    /// Ended; see the final [`Event::Closed`].
    Closed,
}

/// Builds a connection. Start with [`Client::builder`].
pub struct ClientBuilder {
    credentials: Arc<dyn Credentials>,
    api_url: String,
    ws_url: String,
    channels: Vec<String>,
    request_timeout: Option<Duration>,
    config: Config,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_url", &self.api_url)
            .field("ws_url", &self.ws_url)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The DevAPI base URL (default [`DEFAULT_API_URL`]).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = url.into();
        self
    }

    /// The pubsub WebSocket URL (default [`DEFAULT_WS_URL`]).
    pub fn ws_url(mut self, url: impl Into<String>) -> Self {
        self.ws_url = url.into();
        self
    }

    /// Subscribes `channel` (a name from `web_socket_channels`) on connect.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channels.push(channel.into());
        self
    }

    /// Subscribes every channel in `channels` on connect.
    pub fn channels<I: IntoIterator<Item = S>, S: Into<String>>(mut self, channels: I) -> Self {
        self.channels.extend(channels.into_iter().map(Into::into));
        self
    }

    /// Reconnect backoff bounds (default 0.5 s to 20 s, full jitter).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.backoff = Backoff { min, max };
        self
    }

    /// How long past the server's ping interval silence is tolerated before
    /// the link is declared dead (default 10 s, as the official SDKs).
    pub fn ping_margin(mut self, margin: Duration) -> Self {
        self.config.ping_margin = margin;
        self
    }

    /// How long a command (connect, subscribe, ...) may wait for its reply (default 10 s).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.config.command_timeout = timeout;
        self
    }

    /// How long one API request may take (default 10 s); slower ones are
    /// retried with backoff.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// How many events wait for the caller before publications are dropped
    /// and counted in [`Event::Lagged`] (default 4096).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity.max(1);
        self
    }

    /// Starts the connection actor and waits until the first connect
    /// succeeded. Fails with the permanent error that stopped it (a 401 from
    /// the API, a terminal close); transient failures are retried with backoff
    /// meanwhile, so bound this call with a timeout if you need one.
    ///
    /// Must be called inside a tokio runtime.
    pub async fn connect(self) -> Result<(Client, Events), Error> {
        let (client, mut events) = self.spawn()?;
        let mut state = client.state.clone();
        loop {
            let current = state.borrow_and_update().clone();
            match current {
                State::Connected => return Ok((client, events)),
                State::Closed => return Err(events.take_failure().await),
                State::Connecting => {}
            }
            if state.changed().await.is_err() {
                return Err(events.take_failure().await);
            }
        }
    }

    /// Starts the connection actor without waiting: everything, the first
    /// connect included, is reported on the [`Events`] stream.
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn(self) -> Result<(Client, Events), Error> {
        let mut api = VkApi::new(&self.api_url, self.credentials)?;
        if let Some(timeout) = self.request_timeout {
            api = api.with_request_timeout(timeout)?;
        }
        url::Url::parse(&self.ws_url).map_err(|error| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid WebSocket URL {:?}: {error}", self.ws_url),
            )
        })?;
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (events_tx, events_rx) = mpsc::channel(self.config.event_capacity);
        let (state_tx, state_rx) = watch::channel(State::Connecting);
        let actor = connection::Actor::new(
            self.config,
            api.clone(),
            self.ws_url,
            self.channels,
            commands_rx,
            events_tx,
            state_tx,
        );
        tokio::spawn(actor.run());
        Ok((
            Client {
                commands: commands_tx,
                state: state_rx,
                api,
            },
            Events {
                receiver: events_rx,
            },
        ))
    }
}

/// A cloneable handle to the connection. Dropping every handle does not stop
/// the connection; dropping the [`Events`] stream (or [`Client::close`]) does.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<connection::Command>,
    state: watch::Receiver<State>,
    api: VkApi,
}

impl Client {
    /// Starts building a connection that authenticates with `credentials`: an
    /// [`Authorization`], an [`OAuthRefresher`](crate::auth::OAuthRefresher),
    /// or your own [`Credentials`].
    pub fn builder(credentials: impl Credentials) -> ClientBuilder {
        Self::builder_with(Arc::new(credentials))
    }

    /// Like [`Client::builder`], with shared credentials.
    pub fn builder_with(credentials: Arc<dyn Credentials>) -> ClientBuilder {
        ClientBuilder {
            credentials,
            api_url: DEFAULT_API_URL.to_owned(),
            ws_url: DEFAULT_WS_URL.to_owned(),
            channels: Vec::new(),
            request_timeout: None,
            config: Config::default(),
        }
    }

    /// Shorthand for a user's access token.
    pub fn with_user_token(access_token: impl Into<crate::Secret>) -> ClientBuilder {
        Self::builder(Authorization::user(access_token))
    }

    /// The REST client this connection uses, with the same credentials and
    /// API URL: send chat, answer reward demands, look channels up.
    ///
    /// ```no_run
    /// # async fn run(client: vklive_pubsub::Client, message: vklive_pubsub::event::ChatMessage) -> Result<(), vklive_pubsub::Error> {
    /// client.api().reply("somechannel", &message, "pong").await?;
    /// # Ok(()) }
    /// ```
    pub fn api(&self) -> &VkApi {
        &self.api
    }

    /// The connection's current state.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Subscribes `channel` on the running connection (and after every
    /// reconnect). Subscribes sent in a burst share their token requests.
    pub async fn subscribe(&self, channel: impl Into<String>) -> Result<(), Error> {
        self.send(connection::Command::Subscribe(channel.into()))
            .await
    }

    /// Unsubscribes `channel`.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), Error> {
        self.send(connection::Command::Unsubscribe(channel.into()))
            .await
    }

    /// Closes the connection with a normal close frame, after handing over
    /// what was already received. The stream then ends with
    /// [`Event::Closed`] ([`CloseReason::Requested`]).
    pub async fn close(&self) -> Result<(), Error> {
        let (done_tx, done_rx) = oneshot::channel();
        self.send(connection::Command::Close(done_tx)).await?;
        done_rx.await.map_err(|_| closed_error())
    }

    async fn send(&self, command: connection::Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| closed_error())
    }
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the connection is closed")
}

/// The stream of [`Event`]s. Ends after [`Event::Closed`].
#[derive(Debug)]
pub struct Events {
    receiver: mpsc::Receiver<Delivery>,
}

impl Events {
    #[cfg(test)]
    pub(crate) fn from_receiver(receiver: mpsc::Receiver<Delivery>) -> Events {
        Events { receiver }
    }

    /// Drains the stream up to its final event and returns the failure it
    /// carries (used by [`ClientBuilder::connect`]).
    async fn take_failure(&mut self) -> Error {
        while let Some(delivery) = self.receiver.recv().await {
            if let Delivery::Event(event) = delivery
                && let Event::Closed { reason } = *event
            {
                return match reason {
                    CloseReason::Failed(error) => error,
                    CloseReason::Requested => closed_error(),
                };
            }
        }
        closed_error()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.receiver
            .poll_recv(cx)
            .map(|delivery| delivery.map(Delivery::into_event))
    }
}
