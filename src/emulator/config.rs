//! The settings of an emulator.

use std::time::Duration;

/// Settings of an [`Emulator`](super::Emulator). `Default` gives Centrifugo's defaults.
///
/// Build it with struct update syntax so new fields do not break your tests:
/// `EmulatorConfig { ping_interval: Duration::from_secs(1), ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Server ping interval (25 s). The first ping `{}` goes out at a random
    /// moment in `[N/2, N)` after connect, then one every `N`. Zero: no pings.
    pub ping_interval: Duration,
    /// How long the server waits for the pong to each ping (8 s) before it
    /// closes with 3012 "no pong".
    pub pong_timeout: Duration,
    /// How long a new WebSocket may go without a successful `connect` (10 s)
    /// before the server closes it with 3502 "stale".
    pub stale_timeout: Duration,
    /// Subscriptions per connection (`Some(128)`); one more answers error 106.
    pub channel_limit: Option<usize>,
    /// Lifetime of the pubsub tokens the REST side issues (`None`: they never
    /// expire). With `Some(t)`, connect and subscribe replies carry
    /// `expires: true` and `ttl`, and the server enforces expiry.
    pub token_ttl: Option<Duration>,
    /// Grace after a token's expiry (25 s): a connection not refreshed by
    /// then is closed with 3005, a subscription gets an unsubscribe push 2501.
    pub expiry_grace: Duration,
    /// Whether channels keep history and support recovery (true), as a
    /// Centrifugo namespace with `history_size`, `history_ttl` and
    /// `force_recovery` set. With `false` the server behaves as Centrifugo
    /// with no history, which is probably how VK runs: publications carry no
    /// `offset`, subscribe replies carry no `recoverable`, `positioned`,
    /// `epoch` or `offset`, and a subscribe with `recover: true` answers
    /// `was_recovering: true` with `recovered` false and no publications
    /// (centrifuge `client.go` sets `was_recovering` from the request whether
    /// or not the channel can recover). Chat history over REST
    /// (`GET /v1/chat/messages`) is kept either way. Switch it at run time
    /// with [`Emulator::set_history`](super::Emulator::set_history).
    pub history: bool,
    /// Whether subscribers may call `history` (false), as Centrifugo's
    /// `allow_history_for_subscriber`. Off, `history` answers 103
    /// "permission denied" as Centrifugo does by default; on, it answers
    /// the kept publications after `since` (error 112 for another epoch,
    /// 108 with history off).
    pub history_for_subscribers: bool,
    /// Publications kept per channel for recovery (300) while
    /// [`history`](EmulatorConfig::history) is on. Zero keeps offsets and
    /// epochs but stores nothing, so a recovery succeeds only when nothing
    /// was missed; for a server without history use `history: false`.
    pub history_size: usize,
    /// Whether the writer merges queued lines into one text frame joined by
    /// `\n` (true), or sends one line per frame.
    pub batch_frames: bool,
    /// Lifetime of access tokens issued by `POST /oauth/server/token`
    /// (`None`: they never stop working, `expires_in` says 3600).
    pub access_token_lifetime: Option<Duration>,
    /// Most channels one `subscription_token` request may name (100); more
    /// answers 400 `invalid_param`.
    pub max_channels_per_token_request: usize,
    /// Lines queued per connection before the server gives up on a slow
    /// client and closes it with 3008 "slow" (65 536).
    pub outgoing_queue_capacity: usize,
    /// Chat send: the shortest time between two messages of one user in one
    /// channel (1 s); a quicker one answers 400 `send_too_fast`. VK publishes
    /// no number; its chat settings are per-user intervals.
    pub chat_min_interval: Duration,
    /// Chat send: the longest message, in characters of its text (500); a
    /// longer one answers 400 `message_too_long`. VK publishes no number.
    pub chat_max_length: usize,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            stale_timeout: Duration::from_secs(10),
            channel_limit: Some(128),
            token_ttl: None,
            expiry_grace: Duration::from_secs(25),
            history: true,
            history_for_subscribers: false,
            history_size: 300,
            batch_frames: true,
            access_token_lifetime: None,
            max_channels_per_token_request: 100,
            outgoing_queue_capacity: 65_536,
            chat_min_interval: Duration::from_secs(1),
            chat_max_length: 500,
        }
    }
}
