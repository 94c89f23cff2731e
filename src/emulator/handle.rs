//! The [`Emulator`] handle: every method a test calls.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use super::config::EmulatorConfig;
use super::names::ChannelNames;
use super::reports::{BlastReport, ConnectionInfo, ReceivedCommand, RestCall};
use super::state::{DemandDecision, Out, Shared};
use super::trigger::{Trigger, Triggered};
use super::{demo, load, router, trigger};
use crate::error::{Error, ErrorKind};

/// A running emulator: a cheap, cloneable handle to the server.
///
/// Every method that changes state takes effect at once for the connections
/// that are open (except [`Emulator::set_ping_interval`], which applies to new
/// connections). Nothing here blocks on the network. Each method has an HTTP
/// twin under [`Emulator::control_url`] (`docs/emulator-control.md`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use vklive_pubsub::emulator::{Emulator, EmulatorConfig, Trigger, TriggerEvent};
/// use vklive_pubsub::{Client, Event, VkEvent};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 42, "tester");
/// let names = emulator.add_channel("mychannel", 7);
/// let (_client, mut events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url())
///     .ws_url(emulator.ws_url())
///     .channel(names.info.clone())
///     .connect()
///     .await?;
/// while !matches!(events.next().await, Some(Event::Subscribed { .. })) {}
///
/// // A follow by "X" in mychannel's info channel.
/// emulator.trigger(&Trigger {
///     event: TriggerEvent::Follow,
///     nick: Some("X".into()),
///     ..Default::default()
/// })?;
/// loop {
///     if let Some(Event::Publication(publication)) = events.next().await {
///         assert!(matches!(publication.event, VkEvent::Follow(_)));
///         break;
///     }
/// }
/// // Faults: this connection drops without a close frame; the client reconnects.
/// let connection = emulator.connections()[0].id;
/// assert!(emulator.abort_connection(connection));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Emulator {
    /// Starts the emulator on `127.0.0.1` with a free port.
    ///
    /// Fails only when no socket can be bound (the kinds as for
    /// [`Emulator::start_on`]).
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        Emulator::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts the emulator on the given address (port 0 picks a free one).
    ///
    /// An address that is not loopback (`0.0.0.0`, a LAN address) lets other
    /// machines drive it, and is logged as a warning (see
    /// [`Emulator::is_loopback`]). Fails with [`ErrorKind::InvalidArgument`]
    /// when the address is taken or not this machine's, with
    /// [`ErrorKind::Transport`] for any other socket error.
    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> Result<Emulator, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| bind_error(addr, error))?;
        let addr = listener
            .local_addr()
            .map_err(|error| bind_error(addr, error))?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the emulator listens on an address that is not loopback: other machines can \
                 reach it, and its control API lets anyone who can drive it"
            );
        }
        // As Centrifugo (Go sets TCP_NODELAY on every TCP connection): a small
        // push must not wait behind Nagle's algorithm for the previous ACK.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let shared = Arc::new(Shared::new(config));
        let router = router::router(Arc::clone(&shared), addr);
        let mut stop = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let stopped = async move {
                // Ends when shutdown() flips the flag or every sender is gone.
                let _ = stop.wait_for(|stopped| *stopped).await;
            };
            if let Err(error) = axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
            {
                tracing::warn!(%error, "emulator server stopped");
            }
        });
        Ok(Emulator { shared, addr })
    }

    /// Stops accepting connections and closes the open ones with 3001
    /// "shutdown". Idempotent.
    pub fn shutdown(&self) {
        self.shared
            .lock()
            .close_all(crate::protocol::codes::CLOSE_SHUTDOWN, "shutdown");
        self.shared.shutdown.send_replace(true);
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it listens on a loopback address only (`127.0.0.1`, `::1`),
    /// out of other machines' reach. A program that starts it elsewhere
    /// should say so loudly: the control API has no credentials.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), vklive_pubsub::Error> {
    /// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
    /// let emulator = Emulator::start(EmulatorConfig::default()).await?;
    /// assert!(emulator.is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().is_loopback()
    }

    /// Base URL of the REST API, e.g. `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The pubsub URL with VK's query string.
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/connection/websocket?format=json&cf_protocol_version=v2",
            self.addr
        )
    }

    /// The OAuth token endpoint.
    pub fn oauth_token_url(&self) -> String {
        format!("http://{}/oauth/server/token", self.addr)
    }

    /// The OAuth authorization page: it authorizes at once as the
    /// authorizing user (see [`Emulator::set_authorizing_user`]) and
    /// redirects to `redirect_uri?code=…&state=…`.
    ///
    /// ```no_run
    /// # async fn demo(emulator: vklive_pubsub::emulator::Emulator) {
    /// use vklive_pubsub::auth::OAuthApp;
    /// emulator.add_app("app", "secret");
    /// let app = OAuthApp::new("app", "secret", "http://localhost/cb")
    ///     .authorize_url(emulator.oauth_authorize_url())
    ///     .token_url(emulator.oauth_token_url());
    /// # }
    /// ```
    pub fn oauth_authorize_url(&self) -> String {
        format!("http://{}/app/oauth2/authorize", self.addr)
    }

    /// Base URL of the HTTP control endpoints (`…/publish`, `…/stats`, …).
    pub fn control_url(&self) -> String {
        format!("http://{}/_emulator", self.addr)
    }

    /// The JSON line a standalone emulator prints on start: its URLs, the
    /// user token, the demo channel's slug and names, and whether channels
    /// keep history. Other programs read it, so its fields stay as they are.
    pub fn info_line(&self, token: &str, slug: &str, channels: &ChannelNames) -> serde_json::Value {
        serde_json::json!({
            "api_url": self.api_url(),
            "ws_url": self.ws_url(),
            "oauth_token_url": self.oauth_token_url(),
            "control_url": self.control_url(),
            "token": token,
            "slug": slug,
            "history": self.shared.lock().config.history,
            "channels": channels,
        })
    }

    // ----- identities -------------------------------------------------------

    /// Registers a user and a valid Bearer access token for it (never expires).
    pub fn add_user(&self, access_token: &str, user_id: u64, nick: &str) {
        self.shared.lock().add_user(access_token, user_id, nick);
    }

    /// Registers an application whose `Basic` credentials are valid.
    pub fn add_app(&self, client_id: &str, client_secret: &str) {
        self.shared.lock().add_app(client_id, client_secret);
    }

    /// Revokes an access token: the API answers 401 for it from now on, the
    /// pubsub tokens it obtained stop working (connect closes 3500), and the
    /// live pubsub connections of its user are closed with 3500 "invalid token".
    pub fn revoke_access_token(&self, access_token: &str) {
        self.shared.lock().revoke_access_token(access_token);
    }

    /// Registers a refresh token of `user_id` for the app `client_id`, to be
    /// exchanged at [`Emulator::oauth_token_url`].
    pub fn add_refresh_token(&self, refresh_token: &str, user_id: u64, client_id: &str) {
        self.shared
            .lock()
            .add_refresh_token(refresh_token, user_id, client_id);
    }

    /// Issues a connection token for `user_id` directly, bypassing REST.
    /// `ttl` overrides the configured token lifetime (`Some(Duration::ZERO)`
    /// makes a token that is already expired).
    pub fn issue_connection_token(&self, user_id: u64, ttl: Option<Duration>) -> String {
        self.shared.lock().issue_connection_token_for(user_id, ttl)
    }

    /// Issues a subscription token for `user_id` and `channel` directly,
    /// bypassing REST and [`Emulator::deny`]. `ttl` as in
    /// [`Emulator::issue_connection_token`].
    pub fn issue_subscription_token(
        &self,
        user_id: u64,
        channel: &str,
        ttl: Option<Duration>,
    ) -> String {
        self.shared
            .lock()
            .issue_subscription_token_for(user_id, channel, ttl)
    }

    // ----- channels ----------------------------------------------------------

    /// Registers a VK channel: `GET /v1/channel?channel_url=<slug>` answers
    /// with it, and its names (see the module docs) are returned.
    pub fn add_channel(&self, slug: &str, channel_id: u64) -> ChannelNames {
        self.shared.lock().add_channel(slug, channel_id)
    }

    /// Starts a new stream on the channel `slug`: a new stream id (so a cached
    /// one goes stale) and start time. False for an unknown slug.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), vklive_pubsub::Error> {
    /// # use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
    /// let emulator = Emulator::start(EmulatorConfig::default()).await?;
    /// emulator.add_channel("demo", 1);
    /// let first = emulator.stream_id("demo").unwrap();
    /// emulator.stop_stream("demo"); // sends now fail with ErrorKind::NoLiveStream
    /// assert_eq!(emulator.stream_id("demo"), None);
    /// emulator.start_stream("demo");
    /// assert_ne!(emulator.stream_id("demo").unwrap(), first);
    /// # Ok(()) }
    /// ```
    pub fn start_stream(&self, slug: &str) -> bool {
        self.shared.lock().start_stream(slug)
    }

    /// Ends the stream of the channel `slug`: `GET /v1/channel` answers
    /// `"stream": null` and chat sends answer 404 until
    /// [`Emulator::start_stream`] (example there). False for an unknown slug.
    pub fn stop_stream(&self, slug: &str) -> bool {
        self.shared.lock().stop_stream(slug)
    }

    /// The id of the live stream of the channel `slug`, if it is live (see
    /// the example of [`Emulator::start_stream`]).
    pub fn stream_id(&self, slug: &str) -> Option<String> {
        self.shared.lock().channel_view(slug)?.live_stream_id
    }

    /// Forbids `user_id` to write in the chat of `slug`: its sends answer
    /// 403 `forbidden` (a ban, or chat settings the user does not meet).
    ///
    /// ```no_run
    /// # fn demo(emulator: vklive_pubsub::emulator::Emulator) {
    /// emulator.add_user("muted-token", 9, "muted");
    /// emulator.forbid_chat("demo", 9); // VkApi::send_message → ErrorKind::Forbidden
    /// # }
    /// ```
    pub fn forbid_chat(&self, slug: &str, user_id: u64) {
        self.shared.lock().bots.forbid(slug, user_id);
    }

    /// Who the OAuth page authorizes as (default: the first user added).
    ///
    /// ```no_run
    /// # fn demo(emulator: vklive_pubsub::emulator::Emulator) {
    /// emulator.add_user("bot-token", 77, "bot");
    /// emulator.set_authorizing_user(77); // codes from the page now stand for user 77
    /// # }
    /// ```
    pub fn set_authorizing_user(&self, user_id: u64) {
        self.shared.lock().bots.authorizing_user = Some(user_id);
    }

    /// The reward demands accepted or rejected over REST, in order. Only
    /// demands the emulator published (a `channel_points_reward_demand_create`
    /// through [`Emulator::publish`]) can be decided, by the owner of their
    /// channel (the user whose id is the channel id).
    ///
    /// ```no_run
    /// # async fn demo(emulator: vklive_pubsub::emulator::Emulator, api: vklive_pubsub::auth::VkApi) {
    /// use vklive_pubsub::emulator::{reward_demand_create, DemandDecision, DemoUser};
    /// let names = emulator.add_channel("mine", 77); // owned by user 77, the API's user
    /// emulator.publish(&names.private_channel_points,
    ///     reward_demand_create(9179, &DemoUser::new(5, "fan"), "reward-id", "play X"));
    /// api.accept_demands(&[9179]).await.unwrap();
    /// assert_eq!(emulator.demand_decisions(), [(9179, DemandDecision::Accepted)]);
    /// # }
    /// ```
    pub fn demand_decisions(&self) -> Vec<(i64, DemandDecision)> {
        self.shared.lock().bots.decisions.clone()
    }

    /// `subscription_token` requests of `user_id` omit `channel` from now on.
    pub fn deny(&self, user_id: u64, channel: &str) {
        self.shared.lock().deny(user_id, channel);
    }

    /// Publishes `data` (the VK envelope `{"type":…,"data":…}`) into a
    /// channel: every subscriber gets a `pub` push, and the publication is
    /// kept in history (and, for a chat message, in the chat log). Returns
    /// its offset (1, 2, 3, … per epoch), or 0 when history is off
    /// (publications then carry no offset).
    pub fn publish(&self, channel: &str, data: serde_json::Value) -> u64 {
        self.shared.lock().publish(channel, &data)
    }

    /// Sends a text frame, verbatim, to every open connection (connected or
    /// not): for malformed-line tests and pre-built benchmark frames.
    pub fn send_raw(&self, frame: &str) {
        self.shared.lock().send_raw(frame);
    }

    /// Publishes `count` realistic chat messages into `channel` for a
    /// benchmark: `per_frame` push lines to a text frame, every frame built
    /// before the first is queued, then written as fast as each subscriber
    /// reads. Offsets, history and the chat log advance as with `count`
    /// calls of [`Emulator::publish`] (with history off the report's offsets
    /// are 0). The payloads cycle through 512 fixed chat
    /// messages made by the demo builders (the same bytes in every run), with
    /// message ids counting up from 700 000 000.
    ///
    /// The frames are built without holding the emulator's lock, so
    /// connections and other calls go on meanwhile.
    ///
    /// Fails ([`ErrorKind::InvalidArgument`]) when `count` is above
    /// [`MAX_BLAST_COUNT`](super::MAX_BLAST_COUNT), or when the frames would not fit a
    /// connection's queue ([`EmulatorConfig::outgoing_queue_capacity`] frames).
    pub fn blast(
        &self,
        channel: &str,
        count: usize,
        per_frame: usize,
    ) -> Result<BlastReport, Error> {
        load::blast(&self.shared, channel, count, per_frame)
            .map_err(|reason| Error::new(ErrorKind::InvalidArgument, reason))
    }

    /// Publishes `count` chat messages into `channel` at `rate` a second, one
    /// at a time, from a thread of its own; each message's first text part is
    /// [`STAMP_PREFIX`](super::STAMP_PREFIX) and the wall-clock time (ns since the Unix epoch) taken
    /// just before it is queued, which [`stamp_of`](super::stamp_of) reads back. For latency
    /// measurements. The thread returns how many it published.
    pub fn publish_paced(
        &self,
        channel: &str,
        count: usize,
        rate: f64,
    ) -> std::thread::JoinHandle<usize> {
        load::spawn_paced(Arc::clone(&self.shared), channel.to_owned(), count, rate)
    }

    /// Restarts a channel's stream: a new epoch, offsets from 1 again, history
    /// cleared. Current subscribers get an unsubscribe push 2500
    /// "insufficient state" (as a positioned Centrifugo subscription would),
    /// so a client resubscribes and learns that recovery failed.
    pub fn restart_channel(&self, channel: &str) {
        self.shared.lock().restart_channel(channel);
    }

    /// Ends every subscription to `channel` with an unsubscribe push carrying
    /// `code` (below 2500 terminal, 2500 and up resubscribe) and `reason`.
    pub fn unsubscribe_all(&self, channel: &str, code: u32, reason: &str) {
        self.shared.lock().unsubscribe_all(channel, code, reason);
    }

    /// Fires a named event (see [`Trigger`]): a chat message, a follow, a
    /// raid, … into the channel of its kind, `count` times. Returns where
    /// each went, or why nothing was fired (no channel registered, nothing to
    /// delete, a count out of range: [`ErrorKind::InvalidArgument`]).
    pub fn trigger(&self, trigger: &Trigger) -> Result<Vec<Triggered>, Error> {
        trigger::fire(&mut self.shared.lock(), trigger)
            .map_err(|reason| Error::new(ErrorKind::InvalidArgument, reason))
    }

    // ----- fault switches ----------------------------------------------------

    /// Closes every open connection with a WebSocket close frame carrying
    /// `code` and `reason`, after what was already queued for it.
    pub fn close_all(&self, code: u16, reason: &str) {
        self.shared.lock().close_all(code, reason);
    }

    /// Drops every TCP connection at once, with no close frame.
    pub fn abort_all(&self) {
        self.shared.lock().abort_all();
    }

    /// The id of the connection subscribed to `channel`, if one is: with
    /// [`Emulator::abort_connection`] and [`Emulator::close_connection`] a
    /// test can end the one member of a client's pool that carries it.
    pub fn connection_subscribed_to(&self, channel: &str) -> Option<u64> {
        self.shared.lock().connection_subscribed_to(channel)
    }

    /// While silent, connections stay open but the server sends nothing at
    /// all: no pings, no pushes, no replies (they are dropped, not delayed).
    /// Commands are still received and processed.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Changes the lifetime of pubsub tokens issued from now on, and the
    /// expiry grace for connections and subscriptions checked from now on.
    pub fn set_token_ttl(&self, ttl: Option<Duration>, grace: Duration) {
        let mut state = self.shared.lock();
        state.config.token_ttl = ttl;
        state.config.expiry_grace = grace;
    }

    /// Turns history and recovery on or off at run time (see
    /// [`EmulatorConfig::history`]). A change starts every channel's stream
    /// afresh — new epoch, offsets from 1, history cleared — as a Centrifugo
    /// restarted with the other setting would, so a position taken before
    /// the switch never recovers across it. Open subscriptions stay (no
    /// unsubscribe push); subscribe replies and publications follow the new
    /// setting from now on. The chat log is kept.
    pub fn set_history(&self, enabled: bool) {
        self.shared.lock().set_history(enabled);
    }

    /// Changes the per-connection channel limit.
    pub fn set_channel_limit(&self, limit: Option<usize>) {
        self.shared.lock().config.channel_limit = limit;
    }

    /// Changes the ping interval for connections opened from now on.
    pub fn set_ping_interval(&self, interval: Duration) {
        self.shared.lock().config.ping_interval = interval;
    }

    /// The next `count` REST calls (`/v1/*` and the OAuth endpoint) answer
    /// `status` with a VK error body (and `Retry-After` when given).
    pub fn fail_next_rest(&self, count: usize, status: u16, retry_after_secs: Option<u64>) {
        self.shared
            .lock()
            .fail_next_rest(count, status, retry_after_secs);
    }

    /// The next `count` WebSocket upgrade requests answer `status` (e.g. 503)
    /// instead of upgrading.
    pub fn fail_next_ws_upgrade(&self, count: usize, status: u16) {
        self.shared.lock().fail_next_ws_upgrade(count, status);
    }

    /// The next `count` REST calls (`/v1/*` and OAuth) are answered only after
    /// `delay`, to exercise client timeouts.
    pub fn delay_next_rest(&self, count: usize, delay: Duration) {
        self.shared.lock().delay_next_rest(count, delay);
    }

    /// The next `count` pubsub tokens the server issues (connection or
    /// subscription, over REST or `issue_*`) are already expired, so the
    /// client's `connect` or `subscribe` with them gets error 109.
    pub fn expire_next_tokens(&self, count: usize) {
        self.shared.lock().expire_next_tokens(count);
    }

    /// The next `count` subscribe commands (from any connection) are refused
    /// with error `code`, marked `temporary` or not.
    pub fn fail_next_subscribes(&self, count: usize, code: u32, temporary: bool) {
        self.shared
            .lock()
            .fail_next_subscribes(count, code, temporary);
    }

    // ----- faults of one connection ------------------------------------------
    //
    // Each takes a connection id from [`Emulator::connections`] and returns
    // false when no such connection is open.

    /// Closes one connection with a close frame carrying `code` and `reason`,
    /// after what was already queued for it.
    pub fn close_connection(&self, id: u64, code: u16, reason: &str) -> bool {
        let mut state = self.shared.lock();
        let open = state.is_open(id);
        state.close_connection(id, code, reason);
        open
    }

    /// Drops one TCP connection at once, with no close frame.
    pub fn abort_connection(&self, id: u64) -> bool {
        self.shared.lock().abort_connection(id)
    }

    /// While silent, this connection gets nothing at all (pings, pushes and
    /// replies are dropped, not delayed); it still reads commands.
    pub fn set_connection_silent(&self, id: u64, silent: bool) -> bool {
        self.shared.lock().faults(id).is_some_and(|faults| {
            faults.silent.store(silent, Ordering::SeqCst);
            true
        })
    }

    /// The next `frames` frames queued for this connection are dropped
    /// instead of sent (publications and replies inside them are lost to
    /// it, as on a lossy proxy); later ones go out as usual.
    pub fn drop_next_frames(&self, id: u64, frames: usize) -> bool {
        self.shared.lock().faults(id).is_some_and(|faults| {
            faults.drop_frames.store(frames, Ordering::SeqCst);
            true
        })
    }

    /// Sends `frame` verbatim to one connection, after what is queued: for
    /// a garbage line, say `"this is not json"`.
    pub fn send_raw_to(&self, id: u64, frame: &str) -> bool {
        let mut state = self.shared.lock();
        state.is_open(id) && state.deliver(id, Out::Raw(Arc::from(frame)))
    }

    // ----- observation -------------------------------------------------------

    /// The open pubsub connections: id, who connected, subscriptions.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.shared.lock().connections()
    }

    /// Connections that completed `connect` and are still open.
    pub fn connection_count(&self) -> usize {
        self.shared.lock().connection_count()
    }

    /// Open WebSockets, whether they sent `connect` or not.
    pub fn socket_count(&self) -> usize {
        self.shared.lock().socket_count()
    }

    /// Lines (publications, replies, pings) queued for the open sockets and
    /// not yet written: 0 once a burst has gone out to the clients' sockets.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), vklive_pubsub::Error> {
    /// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
    /// let emulator = Emulator::start(EmulatorConfig::default()).await?;
    /// assert_eq!(emulator.queued_lines(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn queued_lines(&self) -> usize {
        self.shared.lock().queued_lines()
    }

    /// Live subscriptions to `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.shared.lock().subscriber_count(channel)
    }

    /// The current `(epoch, top offset)` of a channel's stream.
    pub fn stream_position(&self, channel: &str) -> (String, u64) {
        self.shared.lock().stream_position(channel)
    }

    /// Every command received, in arrival order, pongs included (the last
    /// 100 000).
    pub fn received_commands(&self) -> Vec<ReceivedCommand> {
        self.shared.lock().received.iter().cloned().collect()
    }

    /// Every REST call answered, in order (the last 100 000).
    pub fn rest_calls(&self) -> Vec<RestCall> {
        self.shared.lock().rest_calls.iter().cloned().collect()
    }

    /// Pings (`{}`) the server sent.
    pub fn pings_sent(&self) -> u64 {
        self.shared.pings_sent.load(Ordering::SeqCst)
    }

    /// Pongs received in answer to a ping.
    pub fn pongs_received(&self) -> u64 {
        self.shared.pongs_received.load(Ordering::SeqCst)
    }

    /// Every close code the server sent, in order (the last 100 000).
    pub fn close_codes(&self) -> Vec<u16> {
        self.shared.lock().close_codes.iter().copied().collect()
    }

    /// Protocol misuse the server saw: unsolicited pong, command before
    /// connect, undecodable line, … (the last 100 000).
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.iter().cloned().collect()
    }

    /// Polls `condition` every ~5 ms until it holds (true) or `timeout`
    /// passes (false).
    pub async fn wait_for(&self, condition: impl Fn(&Emulator) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if condition(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // ----- demo traffic ------------------------------------------------------

    /// Publishes realistic traffic about `messages_per_second` times a
    /// second until the handle is aborted or the emulator shuts down: mostly
    /// `channel_chat_message_send` on `names.chat` (Cyrillic and Latin nicks,
    /// moderators, badges, emoji, mentions, smiles, links), now and then a
    /// follow on `names.info` and a reward demand on
    /// `names.private_channel_points`, rarely a raid or a paid subscription.
    pub fn start_demo(
        &self,
        names: &ChannelNames,
        messages_per_second: f64,
    ) -> tokio::task::JoinHandle<()> {
        demo::spawn(Arc::clone(&self.shared), names.clone(), messages_per_second)
    }
}

/// The error of a socket that could not be bound or read.
fn bind_error(addr: SocketAddr, error: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    let kind = match error.kind() {
        Io::AddrInUse | Io::AddrNotAvailable | Io::PermissionDenied => ErrorKind::InvalidArgument,
        _ => ErrorKind::Transport,
    };
    Error::new(
        kind,
        format!("the emulator cannot listen on {addr}: {error}"),
    )
    .with_source(error)
}
