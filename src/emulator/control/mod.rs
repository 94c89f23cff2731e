//! HTTP control endpoints under `/_emulator/`, for tests written in other
//! languages, `vklive trigger` and the Python conformance test. They mirror
//! the methods of [`super::Emulator`] and are not recorded in `rest_calls`.
//! `docs/emulator-control.md` has a curl example for each.
//!
//! One table, [`knobs`], drives the routes, their handlers and the listing
//! `GET /_emulator/` answers: a new knob is a `State` method, an `Emulator`
//! method, one line here (`Knob::json` with a function of the state and the
//! parsed body, in `handlers.rs`), and its section
//! in the docs (`tests/control.rs` checks that each listed route is tested
//! and documented).
//!
//! Bodies are JSON (an empty body counts as `{}`) sent with
//! `Content-Type: application/json`; answers are JSON, `{}` when there is
//! nothing to say. A bad body answers 400 `invalid_param`, an unknown
//! connection 404 `not_found`, both in VK's error shape. [`guard`] refuses
//! what a web page could send: another content type (415), a foreign
//! `Origin` or a `Host` that is not the emulator's (403).
//!
//! `blast` and `paced` are load for benchmarks (see [`super::Emulator::blast`]
//! and [`super::Emulator::publish_paced`]): `blast` builds all the frames
//! first and answers once they are queued, after which the connection's
//! writer sends them as fast as the client reads; `paced` stamps each
//! message's first text part with `⏱<ns since the Unix epoch>`.

mod guard;
mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router, routing};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::state::Shared;
use handlers as h;

/// One control route: what the listing says of it, and its handler.
pub(crate) struct Knob {
    method: &'static str,
    path: &'static str,
    /// An example body.
    body: &'static str,
    /// What it does, starting with the `Emulator` method it mirrors.
    does: &'static str,
    handler: MethodRouter<Arc<Shared>>,
}

impl Knob {
    fn get<H, T>(path: &'static str, body: &'static str, does: &'static str, handler: H) -> Knob
    where
        H: Handler<T, Arc<Shared>>,
        T: 'static,
    {
        Knob {
            method: "GET",
            path,
            body,
            does,
            handler: routing::get(handler),
        }
    }

    /// A POST whose JSON body (empty: `{}`) is parsed into `B` and handed,
    /// with the state, to `apply`; a body that does not parse answers 400.
    fn json<B>(
        path: &'static str,
        body: &'static str,
        does: &'static str,
        apply: fn(&Shared, B) -> Response,
    ) -> Knob
    where
        B: DeserializeOwned + Send + 'static,
    {
        let handler = move |State(shared): State<Arc<Shared>>, bytes: Bytes| async move {
            match h::parse::<B>(&bytes) {
                Ok(parsed) => apply(&shared, parsed),
                Err(response) => *response,
            }
        };
        Knob {
            method: "POST",
            path,
            body,
            does,
            handler: routing::post(handler),
        }
    }

    fn post<H, T>(path: &'static str, body: &'static str, does: &'static str, handler: H) -> Knob
    where
        H: Handler<T, Arc<Shared>>,
        T: 'static,
    {
        Knob {
            method: "POST",
            path,
            body,
            does,
            handler: routing::post(handler),
        }
    }
}

/// Every control route, in the order `GET /_emulator/` lists them.
fn knobs() -> Vec<Knob> {
    vec![
        Knob::get("/_emulator/", "", "this list", index),
        // identities and tokens
        Knob::json(
            "/_emulator/users",
            r#"{"token":"t","id":42,"nick":"tester"}"#,
            "add_user: a user and its Bearer access token",
            h::users,
        ),
        Knob::json(
            "/_emulator/apps",
            r#"{"client_id":"app","client_secret":"s"}"#,
            "add_app: an app with Basic credentials",
            h::apps,
        ),
        Knob::json(
            "/_emulator/refresh_tokens",
            r#"{"refresh_token":"r","user_id":42,"client_id":"app"}"#,
            "add_refresh_token: an OAuth refresh token",
            h::refresh_tokens,
        ),
        Knob::json(
            "/_emulator/tokens/revoke",
            r#"{"access_token":"t"}"#,
            "revoke_access_token: 401 from now on, the user's connections closed with 3500",
            h::revoke,
        ),
        Knob::json(
            "/_emulator/tokens/expire_next",
            r#"{"count":1}"#,
            "expire_next_tokens: the next pubsub tokens are issued expired (error 109)",
            h::expire_next,
        ),
        Knob::json(
            "/_emulator/tokens/connection",
            r#"{"user_id":42,"ttl":null}"#,
            "issue_connection_token: answers {\"token\"}",
            h::connection_token,
        ),
        Knob::json(
            "/_emulator/tokens/subscription",
            r#"{"user_id":42,"channel":"api-channel-private-chat:1","ttl":null}"#,
            "issue_subscription_token: answers {\"token\"}",
            h::subscription_token,
        ),
        Knob::json(
            "/_emulator/token_ttl",
            r#"{"ttl":60,"grace":5}"#,
            "set_token_ttl: lifetime (null: never) and grace of pubsub tokens, seconds",
            h::token_ttl,
        ),
        // channels
        Knob::json(
            "/_emulator/channels",
            r#"{"slug":"streamer","id":2}"#,
            "add_channel: answers its eight channel names",
            h::channels,
        ),
        Knob::json(
            "/_emulator/deny",
            r#"{"user_id":42,"channel":"api-channel-private-info:1"}"#,
            "deny: no subscription token for this user and channel",
            h::deny,
        ),
        Knob::json(
            "/_emulator/channel_limit",
            r#"{"limit":128}"#,
            "set_channel_limit: subscriptions per connection (null: no limit)",
            h::channel_limit,
        ),
        Knob::json(
            "/_emulator/ping_interval",
            r#"{"seconds":25}"#,
            "set_ping_interval: for connections opened from now on",
            h::ping_interval,
        ),
        Knob::json(
            "/_emulator/history",
            r#"{"enabled":false}"#,
            "set_history: history and recovery on or off",
            h::history,
        ),
        // publications
        Knob::json(
            "/_emulator/publish",
            r#"{"channel":"api-channel-chat:1","data":{"type":"…","data":{}}}"#,
            "publish: answers {\"offset\"}",
            h::publish,
        ),
        Knob::json(
            "/_emulator/trigger",
            r#"{"event":"follow","channel":"demo","nick":"X","text":null,"id":null,"count":1,"overrides":null}"#,
            "trigger: a named event (chat, delete, follow, raid, subscription, reward, stream-start, stream-stop, unknown); answers {\"published\":[{\"channel\",\"offset\",\"type\"}]}",
            h::trigger_route,
        ),
        Knob::json(
            "/_emulator/restart_channel",
            r#"{"channel":"api-channel-chat:1"}"#,
            "restart_channel: new epoch, unsubscribe push 2500",
            h::restart_channel,
        ),
        Knob::json(
            "/_emulator/unsubscribe",
            r#"{"channel":"api-channel-chat:1","code":2000,"reason":"bye"}"#,
            "unsubscribe_all: an unsubscribe push to every subscriber",
            h::unsubscribe,
        ),
        Knob::post(
            "/_emulator/blast",
            r#"{"channel":"api-channel-chat:1","count":1000,"per_frame":100}"#,
            "blast: benchmark load, prebuilt frames",
            h::blast,
        ),
        Knob::post(
            "/_emulator/paced",
            r#"{"channel":"api-channel-chat:1","count":1000,"rate":100}"#,
            "publish_paced: stamped messages at a rate, in the background",
            h::paced,
        ),
        // faults of every connection
        Knob::json(
            "/_emulator/close",
            r#"{"code":3000,"reason":"go away"}"#,
            "close_all: close frames",
            h::close,
        ),
        Knob::post(
            "/_emulator/abort",
            "",
            "abort_all: drop every TCP connection",
            h::abort,
        ),
        Knob::json(
            "/_emulator/silent",
            r#"{"silent":true}"#,
            "set_silent: send nothing at all",
            h::silent,
        ),
        Knob::json(
            "/_emulator/send_raw",
            r#"{"frame":"not json"}"#,
            "send_raw: a frame verbatim to every connection",
            h::send_raw,
        ),
        Knob::json(
            "/_emulator/fail_subscribes",
            r#"{"count":1,"code":103,"temporary":false}"#,
            "fail_next_subscribes: refuse the next subscribes with an error",
            h::fail_subscribes,
        ),
        Knob::json(
            "/_emulator/fail_rest",
            r#"{"count":2,"status":503,"retry_after":null}"#,
            "fail_next_rest: the next REST calls answer this status",
            h::fail_rest,
        ),
        Knob::json(
            "/_emulator/delay_rest",
            r#"{"count":1,"ms":2000}"#,
            "delay_next_rest: the next REST calls answer late",
            h::delay_rest,
        ),
        Knob::json(
            "/_emulator/fail_ws_upgrade",
            r#"{"count":1,"status":503}"#,
            "fail_next_ws_upgrade: refuse the next WebSocket upgrades",
            h::fail_ws_upgrade,
        ),
        // faults of one connection
        Knob::get(
            "/_emulator/connections",
            "",
            "connections: [{\"id\",\"user_id\",\"app\",\"subscriptions\"}]",
            h::connections,
        ),
        Knob::post(
            "/_emulator/connections/{id}/close",
            r#"{"code":3000,"reason":"go away"}"#,
            "close_connection: a close frame with this code",
            h::connection_close,
        ),
        Knob::post(
            "/_emulator/connections/{id}/abort",
            "",
            "abort_connection: drop the TCP connection",
            h::connection_abort,
        ),
        Knob::post(
            "/_emulator/connections/{id}/silent",
            r#"{"silent":true}"#,
            "set_connection_silent: send it nothing",
            h::connection_silent,
        ),
        Knob::post(
            "/_emulator/connections/{id}/drop",
            r#"{"frames":3}"#,
            "drop_next_frames: drop its next N frames",
            h::connection_drop,
        ),
        Knob::post(
            "/_emulator/connections/{id}/send_raw",
            r#"{"frame":"not json"}"#,
            "send_raw_to: a frame verbatim",
            h::connection_send_raw,
        ),
        Knob::post(
            "/_emulator/connections/{id}/garbage",
            "",
            "send_raw_to with a line that is not JSON",
            h::connection_garbage,
        ),
        // observation
        Knob::get(
            "/_emulator/stats",
            "",
            "counters: connections, pings, pongs, violations, close codes, commands, REST calls, subscribers, history",
            h::stats,
        ),
    ]
}

/// The control routes, behind the [`guard`]; `addr` is where the emulator
/// listens (the only `Host` and `Origin` it answers besides loopback names).
pub(crate) fn routes(addr: SocketAddr) -> Router<Arc<Shared>> {
    let mut router = Router::new().route("/_emulator", routing::get(index));
    for knob in knobs() {
        router = router.route(knob.path, knob.handler);
    }
    router.route_layer(axum::middleware::from_fn_with_state(addr, guard::check))
}

/// `GET /_emulator/`: the table, without its handlers.
async fn index() -> Response {
    let routes: Vec<serde_json::Value> = knobs()
        .iter()
        .map(|knob| {
            json!({
                "method": knob.method,
                "path": knob.path,
                "body": knob.body,
                "does": knob.does,
            })
        })
        .collect();
    Json(json!({ "routes": routes })).into_response()
}
