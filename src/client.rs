//! The caller's side: [`ClientBuilder`], the cloneable [`Client`] handle and
//! the [`Events`] stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::auth::{Authorization, Credentials, DEFAULT_API_URL, VkApi};
use crate::connection::{self, Backoff, Command, Config, Order};
use crate::delivery::{self, CloseReason, Delivery, Event, LazyEvent, Overflow, PoolState, State};
use crate::error::{Error, ErrorKind};
use crate::event::ChannelKey;

/// VK's pubsub WebSocket URL, with the query string VK documents.
pub const DEFAULT_WS_URL: &str =
    "wss://pubsub-dev.live.vkvideo.ru/connection/websocket?format=json&cf_protocol_version=v2";

/// Builds a connection. Start with [`Client::builder`].
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use vklive_pubsub::Client;
/// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 1, "viewer");
/// let (client, _events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url()) // by default VK's own servers
///     .ws_url(emulator.ws_url())
///     .channel("api-channel-chat:1")
///     .backoff(Duration::from_millis(100), Duration::from_secs(5))
///     .first_connect(5, Duration::from_secs(30)) // default: 3 attempts or 15 s
///     .connect()
///     .await?;
/// client.close().await?;
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
pub struct ClientBuilder {
    credentials: Arc<dyn Credentials>,
    api_url: String,
    ws_url: String,
    channels: Vec<(String, Option<String>)>,
    /// VK channels to follow, each with the kinds of channel to leave out.
    channel_urls: Vec<(String, Vec<ChannelKey>)>,
    request_timeout: Option<Duration>,
    config: Config,
    budget: usize,
    overflow: Overflow,
    first_connect: Option<(u32, Duration)>,
    actor_thread: Option<bool>,
}

/// How many attempts [`ClientBuilder::connect`] makes at the first connect
/// before it gives up (unless [`DEFAULT_FIRST_CONNECT_TIMEOUT`] passes first).
pub const DEFAULT_FIRST_CONNECT_ATTEMPTS: u32 = 3;

/// How long [`ClientBuilder::connect`] tries the first connect before it
/// gives up (unless [`DEFAULT_FIRST_CONNECT_ATTEMPTS`] failed first).
pub const DEFAULT_FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long [`ClientBuilder::connect`] waits for the actor to close after it
/// gave up.
const GIVE_UP_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The default delivery budget: 64 MiB of events waiting for the caller.
pub const DEFAULT_DELIVERY_BUDGET: usize = 64 * 1024 * 1024;

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
    /// A name that cannot be a channel (see
    /// [`check_channel_name`](crate::auth::check_channel_name)) makes
    /// [`ClientBuilder::spawn`] fail with [`ErrorKind::InvalidChannel`]
    /// naming it, before anything is sent.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channels.push((channel.into(), None));
        self
    }

    /// Subscribes every channel in `channels` on connect.
    pub fn channels<I: IntoIterator<Item = S>, S: Into<String>>(mut self, channels: I) -> Self {
        self.channels
            .extend(channels.into_iter().map(|channel| (channel.into(), None)));
        self
    }

    /// Subscribes `channel`, the public chat (`web_socket_channels.chat`) of
    /// the VK channel `slug`: when the link was down and the server cannot
    /// recover what was missed, the chat is filled in from
    /// `GET /v1/chat/messages` (see [`Publication::backfilled`](crate::Publication::backfilled)).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .chat_channel("api-channel-chat:123456", "somechannel")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn chat_channel(mut self, channel: impl Into<String>, slug: impl Into<String>) -> Self {
        self.channels.push((channel.into(), Some(slug.into())));
        self
    }

    /// Follows the VK channel `channel_url`, a slug (`streamer`) or its
    /// page's URL (`https://live.vkvideo.ru/streamer`): looks up its pubsub
    /// channels (`GET /v1/channel`) and subscribes the public ones, its chat
    /// filled in from REST after a loss (as [`ClientBuilder::chat_channel`]),
    /// and the private ones this user is granted a subscription token for.
    /// A lookup that fails for good (an unknown channel) is reported as
    /// [`Event::SubscriptionFailed`] naming the slug; one that may work later
    /// is retried with backoff. An input that is neither a slug nor a channel
    /// URL makes [`ClientBuilder::spawn`] fail.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel_url("https://live.vkvideo.ru/streamer")
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn channel_url(mut self, channel_url: impl Into<String>) -> Self {
        self.channel_urls.push((channel_url.into(), Vec::new()));
        self
    }

    /// Like [`ClientBuilder::channel_url`], but never subscribes the
    /// channels of the kinds in `skip`: an overlay shown to every viewer
    /// leaves out the private and limited chats the token could read.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use vklive_pubsub::event::ChannelKey;
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel_url_without("streamer", [ChannelKey::PrivateChat, ChannelKey::LimitedChat])
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn channel_url_without(
        mut self,
        channel_url: impl Into<String>,
        skip: impl IntoIterator<Item = ChannelKey>,
    ) -> Self {
        self.channel_urls
            .push((channel_url.into(), skip.into_iter().collect()));
        self
    }

    /// Subscribes `channel` (added with [`ClientBuilder::channel`] or
    /// [`ClientBuilder::chat_channel`]) as if this client had already
    /// delivered its stream up to `offset` in `epoch`: the first subscribe
    /// asks the server to recover what came after, as a resubscribe would
    /// (then the server's history, then [`Event::Gap`]). An empty `epoch`
    /// lets the server check the offset alone; offset 0 in an empty epoch
    /// says the position is unknown (the stream had no offsets: a server
    /// without history), so whatever came in between counts as missed (see
    /// [`ClientBuilder::resume_chat`]). For a process that takes a channel
    /// over from another, such as the relay (`docs/relay.md`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .resume("channel-chat:8845069", "", 1234) // publications after 1234 first
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn resume(
        mut self,
        channel: impl Into<String>,
        epoch: impl Into<String>,
        offset: u64,
    ) -> Self {
        let position = connection::Position {
            epoch: epoch.into(),
            offset,
        };
        Arc::make_mut(&mut self.config.resume_from).insert(channel.into(), position);
        self
    }

    /// Tells a chat channel followed by slug ([`ClientBuilder::chat_channel`]
    /// or [`ClientBuilder::channel_url`]) the newest chat message an earlier
    /// reader delivered: when the first subscribe cannot show what came in
    /// between (no history on the server, or too little), the chat is
    /// filled in from REST after that message instead of reported as a
    /// [`Event::Gap`], and that message is not delivered again. With
    /// [`ClientBuilder::resume`], for a process that takes a channel over,
    /// such as the relay; a resume at offset 0 in no epoch says the position
    /// is unknown, so the first subscribe counts as a loss.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use vklive_pubsub::event::ChatKey;
    /// let last = ChatKey { created_at_millis: 1_700_000_000_000, id: 4242 };
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .chat_channel("channel-chat:8845069", "streamer")
    ///     .resume("channel-chat:8845069", "", 0) // where it stood is unknown
    ///     .resume_chat("channel-chat:8845069", last) // chat after 4242 first
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn resume_chat(mut self, channel: impl Into<String>, after: crate::event::ChatKey) -> Self {
        Arc::make_mut(&mut self.config.resume_chat).insert(channel.into(), after);
        self
    }

    /// Channels one connection carries at most (default 128, Centrifugo's
    /// default limit). Past it the client opens another connection; a
    /// server whose limit is lower says so (error 106) and the client learns
    /// it for that connection.
    pub fn channels_per_connection(mut self, limit: usize) -> Self {
        self.config.channels_per_connection = limit;
        self
    }

    /// New connections open at most one per `pace` (default 100 ms), so
    /// that thousands of channels do not hit the server with dozens of
    /// connections at once.
    pub fn connection_pace(mut self, pace: Duration) -> Self {
        self.config.connection_pace = pace;
        self
    }

    /// Reconnect backoff bounds (default 0.5 s to 20 s, full jitter): short
    /// for [`ClientBuilder::backoff_policy`] with [`Backoff::new`]`(min, max)`.
    pub fn backoff(self, min: Duration, max: Duration) -> Self {
        self.backoff_policy(Backoff::new(min, max))
    }

    /// How long to wait before each retry (default [`Backoff::default`], 0.5 s
    /// to 20 s): after a lost or refused connection, and for a channel's
    /// resubscribe, a channel lookup and a chat fill-in that may work later.
    /// Retry `n` waits [`Backoff::delay`]`(n, random)`, never less than what
    /// the server asked for (`Retry-After`, up to 5 minutes). The bounds are
    /// clamped to sane values (`max` within 10 ms to 1 h, `min` at most
    /// `max`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use std::time::Duration;
    /// use vklive_pubsub::{Backoff, Client};
    ///
    /// // Patient with a server that is down: 2 s to a minute between attempts.
    /// let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(60));
    /// assert!(backoff.delay(0, 0.99) < Duration::from_secs(4), "the first retry: 2 to 4 s");
    /// let (_client, _events) = Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .backoff_policy(backoff)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn backoff_policy(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
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

    /// How long opening the WebSocket may take, name lookup, TCP, TLS and
    /// the upgrade together (default 10 s; within 10 ms to 1 h): a slower
    /// dial is given up, reported as [`Event::Disconnected`], and retried
    /// with backoff.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use std::time::Duration;
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .connect_timeout(Duration::from_secs(3)) // a link that answers fast or not at all
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// How long one write to the socket may take (default 10 s; within 10 ms
    /// to 1 h): a server that stops reading makes writes wait, and past
    /// this the link is declared dead and reconnected. It also bounds how
    /// long the connection waits for its close frames to go out once the
    /// client ends.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use std::time::Duration;
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .write_timeout(Duration::from_secs(30)) // a slow uplink
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout;
        self
    }

    /// How long a link must stay up for the reconnect backoff to start over
    /// from its shortest delay (default 30 s; at most 1 h). Until then a
    /// server that closes the connection right after each connect meets a
    /// growing delay, as after any failed attempt.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use std::time::Duration;
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .healthy_after(Duration::from_secs(120))
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn healthy_after(mut self, lived: Duration) -> Self {
        self.config.healthy_after = lived;
        self
    }

    /// How long live chat waits, after a loss, for the chat fill-in from
    /// REST it must follow (default 5 s; at most 1 h; see
    /// [`ClientBuilder::chat_channel`]). Chat received meanwhile is held so
    /// that it comes after what the fill-in brings; past this it is
    /// delivered anyway, and a fill-in that arrives later delivers only what
    /// is newer than the chat already delivered (the rest is reported as
    /// [`Event::Gap`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// use std::time::Duration;
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .chat_channel("channel-chat:8845069", "somechannel")
    ///     .backfill_hold(Duration::from_secs(1)) // fresh chat first
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn backfill_hold(mut self, hold: Duration) -> Self {
        self.config.backfill_hold = hold;
        self
    }

    /// How long one API request may take (default 10 s); slower ones are
    /// retried with backoff.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Whether the connection (its socket, protocol and reconnects) runs on
    /// a thread of its own, with a one-thread runtime, instead of as a task
    /// of the caller's runtime.
    ///
    /// By default it does on a multi-threaded runtime (`#[tokio::main]`):
    /// the socket is then read on a thread that nothing else wakes, which
    /// measured 5% less CPU per event. On a current-thread runtime it stays
    /// a task of that one thread. Either way the thread, like the task, ends
    /// once the [`Events`] stream is dropped or the client is closed.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), vklive_pubsub::Error> {
    /// // Keep every task on the application's own runtime.
    /// let (_client, _events) = vklive_pubsub::Client::with_user_token("token")
    ///     .channel("channel-chat:8845069")
    ///     .actor_thread(false)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn actor_thread(mut self, own_thread: bool) -> Self {
        self.actor_thread = Some(own_thread);
        self
    }

    /// How many bytes of events may wait for the caller (default
    /// [`DEFAULT_DELIVERY_BUDGET`], 64 MiB; at least 64 KiB). Within it
    /// nothing is dropped and pings keep being answered; past it, see
    /// [`ClientBuilder::overflow`].
    pub fn delivery_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes.max(64 * 1024);
        self
    }

    /// What happens past the delivery budget: [`Overflow::Wait`] (the
    /// default) stops reading the socket until the caller catches up;
    /// [`Overflow::Drop`] drops new publications and reports
    /// [`Event::Lagged`].
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// How patient [`ClientBuilder::connect`] is with the first connect: it
    /// gives up after `attempts` failed attempts (at least 1) or once
    /// `within` has passed, whichever comes first. The default is
    /// [`DEFAULT_FIRST_CONNECT_ATTEMPTS`] (3) or
    /// [`DEFAULT_FIRST_CONNECT_TIMEOUT`] (15 s). Has no effect on
    /// [`ClientBuilder::spawn`], nor on reconnects once connected, which are
    /// retried without end.
    pub fn first_connect(mut self, attempts: u32, within: Duration) -> Self {
        self.first_connect = Some((attempts.max(1), within));
        self
    }

    /// Makes [`ClientBuilder::connect`] retry the first connect without end
    /// (with backoff) until it succeeds or fails for good (a 401 from the
    /// API, a terminal close): for a service that starts before the network
    /// or the server is up.
    pub fn retry_first_connect_forever(mut self) -> Self {
        self.first_connect = None;
        self
    }

    /// Starts the connection actor and waits until the first connect
    /// succeeded.
    ///
    /// Fails fast: with the permanent error that stopped the connection (a
    /// 401 from the API, a terminal close), or, when transient failures go on
    /// (a host that does not answer, a 503), after
    /// [`DEFAULT_FIRST_CONNECT_ATTEMPTS`] failed attempts or
    /// [`DEFAULT_FIRST_CONNECT_TIMEOUT`], whichever comes first, with an
    /// [`ErrorKind::Timeout`] error whose message names the last cause. Set
    /// the bounds with [`ClientBuilder::first_connect`], or wait without end
    /// with [`ClientBuilder::retry_first_connect_forever`]. Once connected,
    /// reconnects are retried without end.
    ///
    /// What happened meanwhile ([`Event::Disconnected`] for each failed
    /// attempt, then [`Event::Connected`]) is still delivered on the
    /// returned [`Events`].
    ///
    /// Must be called inside a tokio runtime.
    pub async fn connect(self) -> Result<(Client, Events), Error> {
        let patience = self.first_connect;
        let (client, mut events) = self.spawn()?;
        let started = tokio::time::Instant::now();
        let deadline = patience.map(|(_, within)| started + within);
        let mut failed = 0u32;
        let mut last_cause: Option<String> = None;
        loop {
            let next = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, events.receiver.recv()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    }
                }
                None => events.receiver.recv().await,
            };
            let Some(delivery) = next else {
                return Err(closed_error());
            };
            match delivery.into_event() {
                Event::Closed { reason } => {
                    return Err(match reason {
                        CloseReason::Failed(error) => error,
                        CloseReason::Requested => closed_error(),
                    });
                }
                event @ Event::Connected { .. } => {
                    events.pending.push_back(event);
                    return Ok((client, events));
                }
                Event::Disconnected { code, reason } => {
                    failed += 1;
                    last_cause = Some(match code {
                        Some(code) => format!("close code {code}: {reason}"),
                        None => reason.clone(),
                    });
                    events
                        .pending
                        .push_back(Event::Disconnected { code, reason });
                    if patience.is_some_and(|(attempts, _)| failed >= attempts) {
                        break;
                    }
                }
                event => events.pending.push_back(event),
            }
        }
        // Gave up: stop the actor (dropping `events` would too) and say why.
        let _ = tokio::time::timeout(GIVE_UP_CLOSE_TIMEOUT, client.close()).await;
        let seconds = started.elapsed().as_secs_f64();
        let cause = last_cause.unwrap_or_else(|| String::from("no answer"));
        Err(Error::new(
            ErrorKind::Timeout,
            format!(
                "could not connect ({failed} failed attempt{}, {seconds:.1} s): {cause}",
                if failed == 1 { "" } else { "s" }
            ),
        ))
    }

    /// Starts the connection actor without waiting: everything, the first
    /// connect included, is reported on the [`Events`] stream.
    ///
    /// Must be called inside a tokio runtime. Where the connection runs:
    /// [`ClientBuilder::actor_thread`].
    pub fn spawn(self) -> Result<(Client, Events), Error> {
        let mut api = VkApi::new(&self.api_url, self.credentials)?;
        if let Some(timeout) = self.request_timeout {
            api = api.with_request_timeout(timeout)?;
        }
        crate::plaintext::warn_if_plaintext(&self.ws_url, "the pubsub connection");
        url::Url::parse(&self.ws_url).map_err(|error| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid WebSocket URL {:?}: {error}", self.ws_url),
            )
        })?;
        for (channel, _) in &self.channels {
            crate::auth::check_channel_name(channel)?;
        }
        let mut wanted: Vec<Command> = self
            .channels
            .into_iter()
            .map(|(channel, chat_slug)| Command::Subscribe { channel, chat_slug })
            .collect();
        for (input, skip) in self.channel_urls {
            wanted.push(Command::Follow {
                slug: slug_of(&input)?,
                skip,
            });
        }
        let caller = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the client must be started inside a tokio runtime",
            )
        })?;
        let own_thread = connection::on_own_thread(self.actor_thread, caller.runtime_flavor());
        let actor_api = if own_thread {
            api.with_own_connections()?
        } else {
            api.clone()
        };
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let (events_tx, events_rx) = delivery::queue(self.budget, self.overflow);
        let (state_tx, state_rx) = watch::channel(State::Connecting);
        let actor = connection::Actor::new(
            self.config.clamped(),
            actor_api,
            self.ws_url,
            wanted,
            commands_rx,
            events_tx,
            state_tx,
        );
        if own_thread {
            connection::spawn_on_own_thread(actor.run()).map_err(|error| {
                Error::new(ErrorKind::Transport, "cannot start the connection's thread")
                    .with_source(error)
            })?;
        } else {
            tokio::spawn(actor.run());
        }
        Ok((
            Client {
                commands: commands_tx,
                state: state_rx,
                api,
            },
            Events {
                receiver: events_rx,
                pending: VecDeque::new(),
            },
        ))
    }
}

/// A cloneable handle to the connection. Dropping every handle does not stop
/// the connection; dropping the [`Events`] stream (or [`Client::close`]) does.
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
/// use vklive_pubsub::{Client, State};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 1, "viewer");
/// let (client, _events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url())
///     .ws_url(emulator.ws_url())
///     .connect()
///     .await?;
/// assert_eq!(client.state(), State::Connected);
/// client.subscribe("api-channel-info:1").await?; // on the running connection
/// client.unsubscribe("api-channel-info:1").await?;
/// client.close().await?;
/// assert_eq!(client.state(), State::Closed);
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Order>,
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
            channel_urls: Vec::new(),
            request_timeout: None,
            config: Config::default(),
            budget: DEFAULT_DELIVERY_BUDGET,
            overflow: Overflow::default(),
            first_connect: Some((
                DEFAULT_FIRST_CONNECT_ATTEMPTS,
                DEFAULT_FIRST_CONNECT_TIMEOUT,
            )),
            actor_thread: None,
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
    /// A name that cannot be a channel is refused at once with
    /// [`ErrorKind::InvalidChannel`]; the other channels go on.
    pub async fn subscribe(&self, channel: impl Into<String>) -> Result<(), Error> {
        let channel = channel.into();
        crate::auth::check_channel_name(&channel)?;
        self.send(Order::Command(Command::Subscribe {
            channel,
            chat_slug: None,
        }))
        .await
    }

    /// Like [`Client::subscribe`] for the public chat of the VK channel
    /// `slug`, filled in from REST after a loss (see
    /// [`ClientBuilder::chat_channel`]).
    pub async fn subscribe_chat(
        &self,
        channel: impl Into<String>,
        slug: impl Into<String>,
    ) -> Result<(), Error> {
        let channel = channel.into();
        crate::auth::check_channel_name(&channel)?;
        self.send(Order::Command(Command::Subscribe {
            channel,
            chat_slug: Some(slug.into()),
        }))
        .await
    }

    /// Like [`ClientBuilder::channel_url`] on the running connection.
    pub async fn subscribe_channel_url(&self, channel_url: impl AsRef<str>) -> Result<(), Error> {
        let slug = slug_of(channel_url.as_ref())?;
        let skip = Vec::new();
        self.send(Order::Command(Command::Follow { slug, skip }))
            .await
    }

    /// The pool of connections underneath: each connection's state, its
    /// channels wanted and confirmed, and its channel limit.
    ///
    /// ```no_run
    /// # async fn run(client: vklive_pubsub::Client) -> Result<(), vklive_pubsub::Error> {
    /// for connection in client.pool_state().await?.connections {
    ///     println!("#{}: {}/{} channels", connection.id, connection.channels_subscribed, connection.limit);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn pool_state(&self) -> Result<PoolState, Error> {
        let (answer_tx, answer_rx) = oneshot::channel();
        self.send(Order::Snapshot(answer_tx)).await?;
        answer_rx.await.map_err(|_| closed_error())
    }

    /// Unsubscribes `channel`.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), Error> {
        self.send(Order::Command(Command::Unsubscribe(channel.into())))
            .await
    }

    /// Closes the connection with a normal close frame, after handing over
    /// what was already received. The stream then ends with
    /// [`Event::Closed`] ([`CloseReason::Requested`]).
    pub async fn close(&self) -> Result<(), Error> {
        let (done_tx, done_rx) = oneshot::channel();
        self.send(Order::Close(done_tx)).await?;
        done_rx.await.map_err(|_| closed_error())
    }

    async fn send(&self, command: Order) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| closed_error())
    }
}

/// The slug in a channel URL or slug, or an error naming the input: see
/// [`auth::channel_slug`](crate::auth::channel_slug).
fn slug_of(input: &str) -> Result<String, Error> {
    crate::auth::channel_slug(input)
}

fn closed_error() -> Error {
    Error::new(ErrorKind::Closed, "the connection is closed")
}

/// The stream of [`Event`]s. Ends after [`Event::Closed`].
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use vklive_pubsub::emulator::{demo_chat_message, Emulator, EmulatorConfig};
/// use vklive_pubsub::{Client, Event, VkEvent};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 1, "viewer");
/// let (client, mut events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url())
///     .ws_url(emulator.ws_url())
///     .channel("api-channel-chat:1")
///     .connect()
///     .await?;
/// while let Some(event) = events.next().await {
///     match event {
///         Event::Subscribed { .. } => {
///             emulator.publish("api-channel-chat:1", demo_chat_message(1, "hello"));
///         }
///         Event::Publication(publication) => {
///             if let VkEvent::ChatMessage(message) = &publication.event {
///                 assert_eq!(message.plain_text(), "hello");
///             }
///             client.close().await?; // the stream ends with Event::Closed
///         }
///         Event::Closed { .. } => break,
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct Events {
    receiver: delivery::Receiver,
    /// Events [`ClientBuilder::connect`] read while it waited, handed out first.
    pending: VecDeque<Event>,
}

impl Events {
    /// A stream that hands out `events`, in order, and then ends: to test
    /// your own code (a bot, a dashboard) against the events you choose,
    /// without a server. Build publications with
    /// [`Publication::new`](crate::Publication::new) and
    /// [`VkEvent::decode_str`](crate::VkEvent::decode_str) (the JSON of a
    /// publication's `data`, as VK sends it).
    /// [`Events::next_lazy`] hands their publications out decoded, as
    /// `LazyEvent::Other(Event::Publication(_))`.
    ///
    /// ```
    /// use futures::{Stream, StreamExt};
    /// use vklive_pubsub::{CloseReason, Event, Events, Publication, Recovery, VkEvent};
    ///
    /// /// The code under test: answers `!ping` in chat.
    /// async fn pongs(mut events: impl Stream<Item = Event> + Unpin) -> usize {
    ///     let mut pongs = 0;
    ///     while let Some(event) = events.next().await {
    ///         if let Event::Publication(publication) = event
    ///             && let VkEvent::ChatMessage(message) = &publication.event
    ///             && message.plain_text() == "!ping"
    ///         {
    ///             pongs += 1;
    ///         }
    ///     }
    ///     pongs
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let chat = |id: i64, text: &str| {
    ///     let data = serde_json::json!({"type": "channel_chat_message_send", "data": {
    ///         "chat_message": {"id": id, "created_at": 1_700_000_000,
    ///                          "parts": [{"text": {"content": text}}]}}});
    ///     let event = VkEvent::decode_str(&data.to_string());
    ///     Event::Publication(Publication::new("channel-chat:1".into(), id as u64, event))
    /// };
    /// let events = Events::from_events([
    ///     Event::Subscribed {
    ///         channel: "channel-chat:1".into(),
    ///         recovery: Recovery::NotRequested,
    ///         epoch: String::new(),
    ///         offset: 0,
    ///     },
    ///     chat(1, "!ping"),
    ///     chat(2, "hello"),
    ///     chat(3, "!ping"),
    ///     Event::Closed { reason: CloseReason::Requested },
    /// ]);
    /// assert_eq!(pongs(events).await, 2);
    /// # }
    /// ```
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Events {
        // A queue whose sender is gone: it ends once `pending` is handed out.
        let (_, receiver) = delivery::queue(usize::MAX, Overflow::Wait);
        Events {
            receiver,
            pending: events.into_iter().collect(),
        }
    }

    /// The next event with publications left undecoded: the cheaper path
    /// for callers that read a few fields
    /// ([`LazyPublication::chat_summary`](crate::LazyPublication::chat_summary)),
    /// route by channel first, or forward payloads as they came.
    /// [`LazyPublication::decode`](crate::LazyPublication::decode) gives the
    /// [`Publication`](crate::Publication) the stream would have handed out.
    /// Mixing it with the `Stream` methods is fine: both read the same queue.
    /// See [`LazyPublication`](crate::LazyPublication) for an example.
    pub async fn next_lazy(&mut self) -> Option<LazyEvent> {
        std::future::poll_fn(|cx| self.poll_next_lazy(cx)).await
    }

    /// [`Events::next_lazy`] as a poll function.
    pub fn poll_next_lazy(&mut self, cx: &mut Context<'_>) -> Poll<Option<LazyEvent>> {
        if let Some(event) = self.pending.pop_front() {
            return Poll::Ready(Some(LazyEvent::Other(event)));
        }
        self.receiver
            .poll_recv(cx)
            .map(|delivery| delivery.map(Delivery::into_lazy))
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if let Some(event) = self.pending.pop_front() {
            return Poll::Ready(Some(event));
        }
        self.receiver.poll_event(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VkEvent;
    use crate::{Backoff, Publication, Recovery};
    use futures::StreamExt;

    #[test]
    fn every_timing_knob_reaches_the_connection_config() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(40));
        let builder = Client::with_user_token("token")
            .backoff_policy(backoff)
            .connect_timeout(Duration::from_secs(3))
            .write_timeout(Duration::from_secs(4))
            .healthy_after(Duration::from_secs(5))
            .backfill_hold(Duration::from_secs(6));
        let config = builder.config.clone().clamped();
        assert_eq!(config.backoff, backoff);
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.write_timeout, Duration::from_secs(4));
        assert_eq!(config.healthy_after, Duration::from_secs(5));
        assert_eq!(config.backfill_hold, Duration::from_secs(6));
        let shorthand = Client::with_user_token("token")
            .backoff(Duration::from_secs(2), Duration::from_secs(40));
        assert_eq!(shorthand.config.backoff, backoff);
    }

    fn chat(id: i64) -> Event {
        let data = serde_json::json!({"type": "channel_chat_message_send", "data": {
            "chat_message": {"id": id, "created_at": 1_700_000_000, "parts": []}}});
        let event = VkEvent::decode_str(&data.to_string());
        Event::Publication(Publication::new("chat".into(), id as u64, event))
    }

    #[tokio::test]
    async fn events_made_from_a_list_come_out_in_order_then_the_stream_ends() {
        let subscribed = Event::Subscribed {
            channel: "chat".into(),
            recovery: Recovery::NotRequested,
            epoch: String::new(),
            offset: 0,
        };
        let events =
            Events::from_events([subscribed, chat(1), chat(2), Event::Lagged { dropped: 3 }]);
        let got: Vec<String> =
            tokio::time::timeout(Duration::from_secs(5), events.collect::<Vec<_>>())
                .await
                .expect("the stream ends")
                .into_iter()
                .map(|event| match event {
                    Event::Publication(p) => match p.event {
                        VkEvent::ChatMessage(message) => format!("chat {}", message.id),
                        other => format!("{other:?}"),
                    },
                    Event::Subscribed { channel, .. } => format!("subscribed {channel}"),
                    Event::Lagged { dropped } => format!("lagged {dropped}"),
                    other => format!("{other:?}"),
                })
                .collect();
        assert_eq!(got, ["subscribed chat", "chat 1", "chat 2", "lagged 3"]);

        let mut lazy = Events::from_events([chat(7)]);
        let next = tokio::time::timeout(Duration::from_secs(5), lazy.next_lazy()).await;
        assert!(matches!(
            next,
            Ok(Some(LazyEvent::Other(Event::Publication(p)))) if p.offset == 7
        ));
        let end = tokio::time::timeout(Duration::from_secs(5), lazy.next_lazy()).await;
        assert!(matches!(end, Ok(None)));
    }

    /// Dials that never finish: the emulator answers the REST calls, and the
    /// WebSocket URL leads to a listener that takes the TCP connection and
    /// never answers the upgrade. Time is paused (it moves only when every
    /// task waits), so the test sees the timers' own durations.
    #[cfg(feature = "emulator")]
    mod dialing_into_silence {
        use super::*;
        use crate::emulator::{Emulator, EmulatorConfig};
        use tokio::time::Instant;

        /// The moments of the first `count` failed dials, from the start.
        async fn failed_dials(
            configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
            count: usize,
        ) -> Vec<Duration> {
            let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
            emulator.add_user("access-token", 1, "viewer");
            let silence = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let builder = Client::with_user_token("access-token")
                .api_url(emulator.api_url())
                .ws_url(format!(
                    "ws://{}/connection/websocket",
                    silence.local_addr().unwrap()
                ))
                .actor_thread(false);
            let started = Instant::now();
            let (_client, mut events) = configure(builder).spawn().unwrap();
            let mut failed = Vec::new();
            while failed.len() < count {
                let event = tokio::time::timeout(Duration::from_secs(3600), events.next())
                    .await
                    .expect("an event within the hour")
                    .expect("the stream goes on");
                if let Event::Disconnected { reason, .. } = event {
                    assert_eq!(reason, "WebSocket connection timed out");
                    failed.push(started.elapsed());
                }
            }
            failed
        }

        #[tokio::test(flavor = "current_thread", start_paused = true)]
        async fn connect_timeout_is_how_long_a_dial_may_take() {
            let failed = failed_dials(|b| b.connect_timeout(Duration::from_secs(60)), 1).await;
            // The default (10 s) would have given up six times sooner.
            assert!(failed[0] >= Duration::from_secs(60), "{failed:?}");
        }

        #[tokio::test(flavor = "current_thread", start_paused = true)]
        async fn the_backoff_policy_is_the_wait_between_attempts() {
            let backoff = Backoff::new(Duration::from_secs(90), Duration::from_secs(90));
            let failed = failed_dials(
                |b| {
                    b.connect_timeout(Duration::from_secs(1))
                        .backoff_policy(backoff)
                },
                2,
            )
            .await;
            // The default (0.5 s to 1 s before a second attempt) would not
            // have waited this long.
            assert!(
                failed[1] - failed[0] >= Duration::from_secs(91),
                "{failed:?}"
            );
        }
    }
}
