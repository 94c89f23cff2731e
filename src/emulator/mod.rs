//! An in-process emulator of the VK DevAPI (REST) and its Centrifugo v4 pubsub
//! (client protocol v2, JSON over WebSocket), for your bot's tests and demos.
//!
//! Enable the `emulator` feature (usually as a dev-dependency feature). The
//! emulator binds `127.0.0.1:0`, serves the REST methods the connector uses
//! and the WebSocket endpoint on the same port, and lets the test drive it:
//! publish events, inject faults, and observe what the client did.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vklive_pubsub::Error> {
//! use std::time::Duration;
//! use vklive_pubsub::emulator::{demo_chat_message, Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! emulator.add_user("test-access-token", 42, "tester");
//! let names = emulator.add_channel("mychannel", 1);
//!
//! // Point your bot at emulator.api_url() (REST base) and emulator.ws_url()
//! // (pubsub) with the Bearer token "test-access-token", then:
//! assert!(emulator.wait_for(|e| e.subscriber_count(&names.chat) == 1, Duration::from_secs(5)).await);
//! let offset = emulator.publish(&names.chat, demo_chat_message(1, "привет 👋"));
//! assert_eq!(offset, 1);
//! emulator.abort_all(); // the bot must reconnect and recover what it missed
//! emulator.shutdown();
//! # Ok(()) }
//! ```
//!
//! # What it serves
//! - `GET /v1/websocket/token` (Bearer user token or Basic app credentials),
//!   `GET /v1/websocket/subscription_token?channels=a,b` (user only; denied or
//!   unknown channels are simply missing from the answer, the VK rule),
//!   `GET /v1/channel?channel_url=<slug>`,
//!   `GET /v1/chat/messages?channel_url=<slug>&limit=N` (see below), and
//!   `POST /oauth/server/token`
//!   (`grant_type=refresh_token`, rotating refresh tokens). Errors use VK's
//!   `{"error":…,"error_description":…}` shape; unknown paths answer 404
//!   `{"error":"unknown_api_method"}`.
//! - What bots use (rules in `docs/bots.md`): `POST /v1/chat/message/send`
//!   (publishes the message into the channel's chat as the sending user;
//!   answers `message_too_long`, `same_message`, `send_too_fast`, 403 and a
//!   stale or missing stream id as documented), `POST
//!   /v1/channel_point/reward/demand/{accept,reject}`, `GET /v1/token`, `GET
//!   /v1/current_user`, the OAuth page `GET /app/oauth2/authorize` (redirects
//!   at once with `code` and `state`) and `grant_type=authorization_code`.
//!   Every REST call is recorded with its body, status and VK error code
//!   ([`Emulator::rest_calls`]).
//! - `/connection/websocket`: a strict Centrifugo server — framing, ping/pong,
//!   stale and pong timeouts, token expiry with grace, private channels,
//!   channel limit, history with epoch/offset and recovery (or none at all,
//!   see [`EmulatorConfig::history`]). Protocol misuse
//!   closes the connection with the code a real server uses (3501, 3500, …)
//!   and is recorded in [`Emulator::violations`].
//! - `/_emulator/…`: HTTP control endpoints for tests written in other
//!   languages, listed by `GET /_emulator/` (see [`Emulator`] and
//!   `docs/emulator-control.md`). They take JSON bodies with
//!   `Content-Type: application/json` and refuse requests a web page could
//!   send (another content type, a foreign `Origin` or `Host`), since they
//!   have no credentials; keep the emulator on a loopback address.
//!
//! # Chat history over REST
//! Every `channel_chat_message_send` published into a public chat channel
//! (`api-channel-chat:N`), by [`Emulator::publish`], the control API, demo
//! traffic, [`Emulator::blast`] or [`Emulator::publish_paced`], is kept in
//! that channel's chat log (the last 1,000 messages; a
//! `channel_chat_message_delete` removes its message), whatever the history
//! setting: VK keeps chat over REST even when its pubsub keeps nothing.
//! `GET /v1/chat/messages?channel_url=<slug>&limit=N` (user or app
//! credentials, as `GET /v1/channel`) answers
//! `{"data":{"chat_messages":[…]}}` with the most recent `N` of the channel
//! registered as `slug` (each the `data.chat_message` object of its
//! publication), **newest first**: VK does not document the order, so
//! clients must not rely on it. `limit` defaults to 20; a `limit` that is not
//! an integer in 1..=200 answers 400 `invalid_param` (no clamping); an
//! unknown slug answers 404 `not_found` as `GET /v1/channel` does.
//!
//! # Channel naming
//! [`Emulator::add_channel`] with id `N` registers these names, in the
//! `api-channel-chat:<id>` style two shipped DevAPI clients report (the
//! website's own pubsub uses `channel-chat:<id>`; the private names are a
//! guess). Clients must take names from `web_socket_channels` and never build
//! them:
//!
//! | key | name | needs a subscription token |
//! |---|---|---|
//! | `chat` | `api-channel-chat:N` | no |
//! | `info` | `api-channel-info:N` | no |
//! | `channel_points` | `api-channel-points:N` | no |
//! | `private_chat` | `api-channel-private-chat:N` | yes |
//! | `private_info` | `api-channel-private-info:N` | yes |
//! | `private_channel_points` | `api-channel-private-points:N` | yes |
//! | `limited_chat` | `api-channel-limited-chat:N` | yes |
//! | `limited_private_chat` | `api-channel-limited-private-chat:N` | yes |
//!
//! Any channel in these namespaces can be subscribed (and published to) even
//! if `add_channel` was never called; another namespace answers error 102.
//! A private channel without a token answers 103, with an unknown token 103,
//! with an expired one 109; a token for another channel or user closes the
//! connection with 3500, as Centrifugo does.
//!
//! # Faults and observation
//! [`Emulator::close_all`], [`Emulator::abort_all`], [`Emulator::set_silent`],
//! [`Emulator::send_raw`], [`Emulator::restart_channel`],
//! [`Emulator::unsubscribe_all`], [`Emulator::fail_next_rest`] and
//! [`Emulator::fail_next_ws_upgrade`] break things on purpose;
//! [`Emulator::received_commands`], [`Emulator::rest_calls`],
//! [`Emulator::close_codes`], [`Emulator::violations`] and the counters tell
//! what your client did. A well-behaved client leaves `violations()` empty.
//!
//! # From other languages
//! `vklive emulator --ping-interval 1` (`cargo install --locked --path . --features cli`;
//! or `cargo run --features emulator --example emulator -- --ping-interval 1`)
//! starts a standalone emulator (user token `demo-token`, channel slug `demo`
//! with id 1) and prints one JSON line with `api_url`, `ws_url`,
//! `oauth_token_url`, `control_url` and the channel names, then runs until
//! SIGINT or SIGTERM (the example: until its stdin closes). The control
//! routes under `control_url` mirror the methods here, `GET …/` lists them,
//! and `docs/emulator-control.md` has a curl example for each; `vklive
//! trigger` fires named events through them. `--no-history` starts it with
//! [`EmulatorConfig::history`] off. `tests/conformance/run.sh` drives it with the official
//! `centrifuge-python` SDK.
//!
//! # Benchmark load
//! [`Emulator::blast`] queues many realistic chat publications as prebuilt
//! frames (written as fast as the client reads), and
//! [`Emulator::publish_paced`] publishes at a fixed rate with the send time
//! stamped into each message; `examples/bench.rs` and `bench/run.sh` use them.
//!
//! # Lifetime
//! The server runs in tasks spawned on the tokio runtime that called
//! [`Emulator::start`]. [`Emulator`] is a cheap handle: dropping every clone
//! does **not** stop the server — it runs until [`Emulator::shutdown`] or
//! until the runtime ends (which, in a `#[tokio::test]`, is the end of the
//! test).

// Layout: `handle` (the `Emulator` methods) over `state` (one lock, one
// file per job); `router` assembles `rest`, `bots`, `pubsub` and `control`,
// which share `http`; `call_log` records REST calls. `config`, `names` and
// `reports` are the public types. Payloads: `payloads` (the builders),
// `pool` (benchmark payloads), `demo` (traffic), `trigger` (named events),
// `load` (blast and paced publishing). No file here imports this one: it
// only declares and re-exports (tests/import_cycles.rs checks for circles).

mod bots;
mod call_log;
mod clock;
mod config;
mod control;
mod demo;
mod handle;
mod http;
mod load;
mod names;
mod payloads;
mod pool;
mod pubsub;
mod random;
mod reports;
mod rest;
mod router;
mod state;
mod trigger;

pub use config::EmulatorConfig;
pub use handle::Emulator;
pub use names::ChannelNames;
pub use payloads::{
    DemoReward, DemoUser, chat_message_delete, chat_message_send, demo_chat_message, demo_rewards,
    demo_users, follow_create, link_part, mention_part, raid_income, reward_demand,
    reward_demand_create, smile_part, subscription_create, text_part,
};
pub use pool::{STAMP_PREFIX, stamp_of};
pub use reports::{BlastReport, ConnectionInfo, ReceivedCommand, RestCall};
pub use state::DemandDecision;
pub use state::blast::MAX_BLAST_COUNT;
pub use trigger::{MAX_TRIGGER_COUNT, Trigger, TriggerEvent, Triggered};
