//! HTTP control endpoints under `/_emulator/`, for tests written in other
//! languages, `vklive trigger` and the Python conformance test. They mirror
//! the methods of [`super::Emulator`] and are not recorded in `rest_calls`.
//! [`ROUTES`] lists them (and `GET /_emulator/` answers it);
//! `docs/emulator-control.md` has a curl example for each.
//!
//! Bodies are JSON (an empty body counts as `{}`); answers are JSON, `{}`
//! when there is nothing to say. A bad body answers 400 `invalid_param`, an
//! unknown connection 404 `not_found`, both in VK's error shape.
//!
//! `blast` and `paced` are load for benchmarks (see [`super::Emulator::blast`]
//! and [`super::Emulator::publish_paced`]): `blast` builds all the frames
//! first and answers once they are queued, after which the connection's
//! writer sends them as fast as the client reads; `paced` stamps each
//! message's first text part with `⏱<ns since the Unix epoch>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::rest::vk_error;
use super::state::{Out, Shared};
use super::trigger::{self, Trigger};

/// One control route: method, path, body, what it does.
pub(crate) struct Route {
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) body: &'static str,
    pub(crate) does: &'static str,
}

const fn route(
    method: &'static str,
    path: &'static str,
    body: &'static str,
    does: &'static str,
) -> Route {
    Route {
        method,
        path,
        body,
        does,
    }
}

/// Every control route, as `GET /_emulator/` lists them.
pub(crate) const ROUTES: &[Route] = &[
    route("GET", "/_emulator/", "", "this list"),
    // identities
    route(
        "POST",
        "/_emulator/users",
        r#"{"token":"t","id":42,"nick":"tester"}"#,
        "add_user: a user and its Bearer access token",
    ),
    route(
        "POST",
        "/_emulator/apps",
        r#"{"client_id":"app","client_secret":"s"}"#,
        "add_app: an app with Basic credentials",
    ),
    route(
        "POST",
        "/_emulator/refresh_tokens",
        r#"{"refresh_token":"r","user_id":42,"client_id":"app"}"#,
        "add_refresh_token: an OAuth refresh token",
    ),
    route(
        "POST",
        "/_emulator/tokens/revoke",
        r#"{"access_token":"t"}"#,
        "revoke_access_token: 401 from now on, the user's connections closed with 3500",
    ),
    route(
        "POST",
        "/_emulator/tokens/expire_next",
        r#"{"count":1}"#,
        "expire_next_tokens: the next pubsub tokens are issued expired (error 109)",
    ),
    route(
        "POST",
        "/_emulator/tokens/connection",
        r#"{"user_id":42,"ttl":null}"#,
        "issue_connection_token: answers {\"token\"}",
    ),
    route(
        "POST",
        "/_emulator/tokens/subscription",
        r#"{"user_id":42,"channel":"api-channel-private-chat:1","ttl":null}"#,
        "issue_subscription_token: answers {\"token\"}",
    ),
    route(
        "POST",
        "/_emulator/token_ttl",
        r#"{"ttl":60,"grace":5}"#,
        "set_token_ttl: lifetime (null: never) and grace of pubsub tokens, seconds",
    ),
    // channels
    route(
        "POST",
        "/_emulator/channels",
        r#"{"slug":"streamer","id":2}"#,
        "add_channel: answers its eight channel names",
    ),
    route(
        "POST",
        "/_emulator/deny",
        r#"{"user_id":42,"channel":"api-channel-private-info:1"}"#,
        "deny: no subscription token for this user and channel",
    ),
    route(
        "POST",
        "/_emulator/channel_limit",
        r#"{"limit":128}"#,
        "set_channel_limit: subscriptions per connection (null: no limit)",
    ),
    route(
        "POST",
        "/_emulator/ping_interval",
        r#"{"seconds":25}"#,
        "set_ping_interval: for connections opened from now on",
    ),
    route(
        "POST",
        "/_emulator/history",
        r#"{"enabled":false}"#,
        "set_history: history and recovery on or off",
    ),
    // publications
    route(
        "POST",
        "/_emulator/publish",
        r#"{"channel":"api-channel-chat:1","data":{"type":"…","data":{}}}"#,
        "publish: answers {\"offset\"}",
    ),
    route(
        "POST",
        "/_emulator/trigger",
        r#"{"event":"follow","channel":"demo","nick":"X","text":null,"id":null,"count":1,"overrides":null}"#,
        "trigger: a named event (chat, delete, follow, raid, subscription, reward, stream-start, stream-stop, unknown); answers {\"published\":[{\"channel\",\"offset\",\"type\"}]}",
    ),
    route(
        "POST",
        "/_emulator/restart_channel",
        r#"{"channel":"api-channel-chat:1"}"#,
        "restart_channel: new epoch, unsubscribe push 2500",
    ),
    route(
        "POST",
        "/_emulator/unsubscribe",
        r#"{"channel":"api-channel-chat:1","code":2000,"reason":"bye"}"#,
        "unsubscribe_all: an unsubscribe push to every subscriber",
    ),
    route(
        "POST",
        "/_emulator/blast",
        r#"{"channel":"api-channel-chat:1","count":1000,"per_frame":100}"#,
        "blast: benchmark load, prebuilt frames",
    ),
    route(
        "POST",
        "/_emulator/paced",
        r#"{"channel":"api-channel-chat:1","count":1000,"rate":100}"#,
        "publish_paced: stamped messages at a rate, in the background",
    ),
    // faults of every connection
    route(
        "POST",
        "/_emulator/close",
        r#"{"code":3000,"reason":"go away"}"#,
        "close_all: close frames",
    ),
    route(
        "POST",
        "/_emulator/abort",
        "",
        "abort_all: drop every TCP connection",
    ),
    route(
        "POST",
        "/_emulator/silent",
        r#"{"silent":true}"#,
        "set_silent: send nothing at all",
    ),
    route(
        "POST",
        "/_emulator/send_raw",
        r#"{"frame":"not json"}"#,
        "send_raw: a frame verbatim to every connection",
    ),
    route(
        "POST",
        "/_emulator/fail_subscribes",
        r#"{"count":1,"code":103,"temporary":false}"#,
        "fail_next_subscribes: refuse the next subscribes with an error",
    ),
    route(
        "POST",
        "/_emulator/fail_rest",
        r#"{"count":2,"status":503,"retry_after":null}"#,
        "fail_next_rest: the next REST calls answer this status",
    ),
    route(
        "POST",
        "/_emulator/delay_rest",
        r#"{"count":1,"ms":2000}"#,
        "delay_next_rest: the next REST calls answer late",
    ),
    route(
        "POST",
        "/_emulator/fail_ws_upgrade",
        r#"{"count":1,"status":503}"#,
        "fail_next_ws_upgrade: refuse the next WebSocket upgrades",
    ),
    // faults of one connection
    route(
        "GET",
        "/_emulator/connections",
        "",
        "connections: [{\"id\",\"user_id\",\"app\",\"subscriptions\"}]",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/close",
        r#"{"code":3000,"reason":"go away"}"#,
        "close_connection: a close frame with this code",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/abort",
        "",
        "abort_connection: drop the TCP connection",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/silent",
        r#"{"silent":true}"#,
        "set_connection_silent: send it nothing",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/drop",
        r#"{"frames":3}"#,
        "drop_next_frames: drop its next N frames",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/send_raw",
        r#"{"frame":"not json"}"#,
        "send_raw_to: a frame verbatim",
    ),
    route(
        "POST",
        "/_emulator/connections/{id}/garbage",
        "",
        "send_raw_to with a line that is not JSON",
    ),
    // observation
    route(
        "GET",
        "/_emulator/stats",
        "",
        "counters: connections, pings, pongs, violations, close codes, commands, REST calls, subscribers, history",
    ),
];

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_emulator", get(index))
        .route("/_emulator/", get(index))
        .route("/_emulator/users", post(users))
        .route("/_emulator/apps", post(apps))
        .route("/_emulator/refresh_tokens", post(refresh_tokens))
        .route("/_emulator/tokens/revoke", post(revoke))
        .route("/_emulator/tokens/expire_next", post(expire_next))
        .route("/_emulator/tokens/connection", post(connection_token))
        .route("/_emulator/tokens/subscription", post(subscription_token))
        .route("/_emulator/token_ttl", post(token_ttl))
        .route("/_emulator/channels", post(channels))
        .route("/_emulator/deny", post(deny))
        .route("/_emulator/channel_limit", post(channel_limit))
        .route("/_emulator/ping_interval", post(ping_interval))
        .route("/_emulator/trigger", post(trigger_route))
        .route("/_emulator/unsubscribe", post(unsubscribe))
        .route("/_emulator/fail_subscribes", post(fail_subscribes))
        .route("/_emulator/delay_rest", post(delay_rest))
        .route("/_emulator/connections", get(connections))
        .route("/_emulator/connections/{id}/close", post(connection_close))
        .route("/_emulator/connections/{id}/abort", post(connection_abort))
        .route(
            "/_emulator/connections/{id}/silent",
            post(connection_silent),
        )
        .route("/_emulator/connections/{id}/drop", post(connection_drop))
        .route(
            "/_emulator/connections/{id}/send_raw",
            post(connection_send_raw),
        )
        .route(
            "/_emulator/connections/{id}/garbage",
            post(connection_garbage),
        )
        .route("/_emulator/publish", post(publish))
        .route("/_emulator/abort", post(abort))
        .route("/_emulator/close", post(close))
        .route("/_emulator/silent", post(silent))
        .route("/_emulator/restart_channel", post(restart_channel))
        .route("/_emulator/send_raw", post(send_raw))
        .route("/_emulator/fail_rest", post(fail_rest))
        .route("/_emulator/fail_ws_upgrade", post(fail_ws_upgrade))
        .route("/_emulator/blast", post(blast))
        .route("/_emulator/paced", post(paced))
        .route("/_emulator/history", post(history))
        .route("/_emulator/stats", get(stats))
}

fn ok() -> Response {
    Json(json!({})).into_response()
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| {
        Box::new(vk_error(
            StatusCode::BAD_REQUEST,
            "invalid_param",
            &format!("bad control request body: {error}"),
        ))
    })
}

#[derive(Deserialize)]
struct PublishBody {
    channel: String,
    data: serde_json::Value,
}

async fn publish(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<PublishBody>(&body) {
        Ok(body) => {
            let offset = shared.lock().publish(&body.channel, &body.data);
            Json(json!({ "offset": offset })).into_response()
        }
        Err(response) => *response,
    }
}

async fn abort(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    shared.lock().abort_all();
    ok()
}

#[derive(Deserialize)]
struct CloseBody {
    code: u16,
    #[serde(default)]
    reason: String,
}

async fn close(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<CloseBody>(&body) {
        Ok(body) => {
            shared.lock().close_all(body.code, &body.reason);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct SilentBody {
    silent: bool,
}

async fn silent(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<SilentBody>(&body) {
        Ok(body) => {
            shared.silent.store(body.silent, Ordering::SeqCst);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct ChannelBody {
    channel: String,
}

async fn restart_channel(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<ChannelBody>(&body) {
        Ok(body) => {
            shared.lock().restart_channel(&body.channel);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct RawBody {
    frame: String,
}

async fn send_raw(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<RawBody>(&body) {
        Ok(body) => {
            shared.lock().send_raw(&body.frame);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct FailBody {
    count: usize,
    status: u16,
    #[serde(default)]
    retry_after: Option<u64>,
}

async fn fail_rest(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<FailBody>(&body) {
        Ok(body) => {
            shared
                .lock()
                .fail_next_rest(body.count, body.status, body.retry_after);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct FailUpgradeBody {
    count: usize,
    #[serde(default = "service_unavailable")]
    status: u16,
}

fn service_unavailable() -> u16 {
    503
}

async fn fail_ws_upgrade(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<FailUpgradeBody>(&body) {
        Ok(body) => {
            shared.lock().fail_next_ws_upgrade(body.count, body.status);
            ok()
        }
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct BlastBody {
    channel: String,
    count: usize,
    #[serde(default = "hundred")]
    per_frame: usize,
}

fn hundred() -> usize {
    100
}

async fn blast(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    let body = match parse::<BlastBody>(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    // Building a few hundred megabytes of frames takes a while: keep it off
    // the runtime's worker threads.
    let built = tokio::task::spawn_blocking(move || {
        shared.lock().blast(
            &body.channel,
            body.count,
            body.per_frame,
            super::blast::chat_payload,
        )
    })
    .await;
    match built {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(message)) => vk_error(StatusCode::BAD_REQUEST, "invalid_param", &message),
        Err(error) => vk_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            &error.to_string(),
        ),
    }
}

#[derive(Deserialize)]
struct PacedBody {
    channel: String,
    count: usize,
    rate: f64,
}

async fn paced(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<PacedBody>(&body) {
        Ok(body) if body.rate.is_finite() && body.rate > 0.0 => {
            drop(super::blast::spawn_paced(
                shared,
                body.channel,
                body.count,
                body.rate,
            ));
            ok()
        }
        Ok(_) => vk_error(
            StatusCode::BAD_REQUEST,
            "invalid_param",
            "rate must be a positive number",
        ),
        Err(response) => *response,
    }
}

#[derive(Deserialize)]
struct HistoryBody {
    enabled: bool,
}

async fn history(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<HistoryBody>(&body) {
        Ok(body) => {
            shared.lock().set_history(body.enabled);
            ok()
        }
        Err(response) => *response,
    }
}

async fn stats(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    let state = shared.lock();
    let subscribers: BTreeMap<String, usize> = state.subscriber_counts();
    let mut commands: BTreeMap<&'static str, usize> = BTreeMap::new();
    for received in &state.received {
        let name = received.command.request_name().unwrap_or("pong");
        *commands.entry(name).or_default() += 1;
    }
    let mut rest: BTreeMap<&str, usize> = BTreeMap::new();
    for call in &state.rest_calls {
        *rest.entry(call.path.as_str()).or_default() += 1;
    }
    Json(json!({
        "connections": state.connection_count(),
        "sockets": state.socket_count(),
        "pings_sent": shared.pings_sent.load(Ordering::SeqCst),
        "pongs_received": shared.pongs_received.load(Ordering::SeqCst),
        "violations": state.violations,
        "close_codes": state.close_codes,
        "received_commands": state.received.len(),
        "commands": commands,
        "rest_calls": state.rest_calls.len(),
        "rest_calls_by_path": rest,
        "subscribers": subscribers,
        "history": state.config.history,
    }))
    .into_response()
}

async fn index() -> Response {
    let routes: Vec<serde_json::Value> = ROUTES
        .iter()
        .map(|route| {
            json!({
                "method": route.method,
                "path": route.path,
                "body": route.body,
                "does": route.does,
            })
        })
        .collect();
    Json(json!({ "routes": routes })).into_response()
}

/// Parses `body` and runs `apply` on it, answering what it returns.
fn with_body<T: DeserializeOwned>(body: &Bytes, apply: impl FnOnce(T) -> Response) -> Response {
    match parse::<T>(body) {
        Ok(body) => apply(body),
        Err(response) => *response,
    }
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 1e9))
}

#[derive(Deserialize)]
struct UserBody {
    token: String,
    id: u64,
    nick: String,
}

async fn users(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: UserBody| {
        shared.lock().add_user(&body.token, body.id, &body.nick);
        ok()
    })
}

#[derive(Deserialize)]
struct AppBody {
    client_id: String,
    client_secret: String,
}

async fn apps(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: AppBody| {
        shared.lock().add_app(&body.client_id, &body.client_secret);
        ok()
    })
}

#[derive(Deserialize)]
struct RefreshTokenBody {
    refresh_token: String,
    user_id: u64,
    client_id: String,
}

async fn refresh_tokens(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: RefreshTokenBody| {
        shared
            .lock()
            .add_refresh_token(&body.refresh_token, body.user_id, &body.client_id);
        ok()
    })
}

#[derive(Deserialize)]
struct RevokeBody {
    access_token: String,
}

async fn revoke(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: RevokeBody| {
        shared.lock().revoke_access_token(&body.access_token);
        ok()
    })
}

#[derive(Deserialize)]
struct CountBody {
    count: usize,
}

async fn expire_next(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: CountBody| {
        shared.lock().expire_next_tokens(body.count);
        ok()
    })
}

#[derive(Deserialize)]
struct IssueBody {
    user_id: u64,
    #[serde(default)]
    channel: Option<String>,
    /// Seconds; absent or null for the configured lifetime.
    #[serde(default)]
    ttl: Option<f64>,
}

async fn connection_token(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: IssueBody| {
        let token = shared
            .lock()
            .issue_connection_token_for(body.user_id, body.ttl.map(seconds));
        Json(json!({ "token": token })).into_response()
    })
}

async fn subscription_token(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: IssueBody| {
        let Some(channel) = body.channel else {
            return vk_error(
                StatusCode::BAD_REQUEST,
                "invalid_param",
                "a subscription token needs a channel",
            );
        };
        let token = shared.lock().issue_subscription_token_for(
            body.user_id,
            &channel,
            body.ttl.map(seconds),
        );
        Json(json!({ "token": token })).into_response()
    })
}

#[derive(Deserialize)]
struct TokenTtlBody {
    /// Seconds; null: tokens never expire.
    ttl: Option<f64>,
    /// Seconds (default 25, Centrifugo's).
    #[serde(default = "default_grace")]
    grace: f64,
}

fn default_grace() -> f64 {
    25.0
}

async fn token_ttl(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: TokenTtlBody| {
        let mut state = shared.lock();
        state.config.token_ttl = body.ttl.map(seconds);
        state.config.expiry_grace = seconds(body.grace);
        ok()
    })
}

#[derive(Deserialize)]
struct AddChannelBody {
    slug: String,
    id: u64,
}

async fn channels(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: AddChannelBody| {
        let names = shared.lock().add_channel(&body.slug, body.id);
        Json(names).into_response()
    })
}

#[derive(Deserialize)]
struct DenyBody {
    user_id: u64,
    channel: String,
}

async fn deny(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: DenyBody| {
        shared.lock().deny(body.user_id, &body.channel);
        ok()
    })
}

#[derive(Deserialize)]
struct LimitBody {
    limit: Option<usize>,
}

async fn channel_limit(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: LimitBody| {
        shared.lock().config.channel_limit = body.limit;
        ok()
    })
}

#[derive(Deserialize)]
struct PingBody {
    seconds: f64,
}

async fn ping_interval(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: PingBody| {
        shared.lock().config.ping_interval = seconds(body.seconds);
        ok()
    })
}

async fn trigger_route(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: Trigger| {
        match trigger::fire(&mut shared.lock(), &body) {
            Ok(published) => Json(json!({ "published": published })).into_response(),
            Err(message) => vk_error(StatusCode::BAD_REQUEST, "invalid_param", &message),
        }
    })
}

#[derive(Deserialize)]
struct UnsubscribeBody {
    channel: String,
    code: u32,
    #[serde(default)]
    reason: String,
}

async fn unsubscribe(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: UnsubscribeBody| {
        shared
            .lock()
            .unsubscribe_all(&body.channel, body.code, &body.reason);
        ok()
    })
}

#[derive(Deserialize)]
struct FailSubscribesBody {
    count: usize,
    code: u32,
    #[serde(default)]
    temporary: bool,
}

async fn fail_subscribes(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: FailSubscribesBody| {
        shared
            .lock()
            .fail_next_subscribes(body.count, body.code, body.temporary);
        ok()
    })
}

#[derive(Deserialize)]
struct DelayBody {
    count: usize,
    ms: u64,
}

async fn delay_rest(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: DelayBody| {
        shared
            .lock()
            .delay_next_rest(body.count, Duration::from_millis(body.ms));
        ok()
    })
}

async fn connections(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    Json(shared.lock().connections()).into_response()
}

fn no_connection(id: u64) -> Response {
    vk_error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no open connection {id}"),
    )
}

/// `{}` when the connection was open, 404 otherwise.
fn done(id: u64, open: bool) -> Response {
    if open { ok() } else { no_connection(id) }
}

async fn connection_close(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: CloseBody| {
        let mut state = shared.lock();
        let open = state.is_open(id);
        state.close_connection(id, body.code, &body.reason);
        done(id, open)
    })
}

async fn connection_abort(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Response {
    let open = shared.lock().abort_connection(id);
    done(id, open)
}

async fn connection_silent(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: SilentBody| {
        let faults = shared.lock().faults(id);
        if let Some(faults) = &faults {
            faults.silent.store(body.silent, Ordering::SeqCst);
        }
        done(id, faults.is_some())
    })
}

#[derive(Deserialize)]
struct DropBody {
    frames: usize,
}

async fn connection_drop(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: DropBody| {
        let faults = shared.lock().faults(id);
        if let Some(faults) = &faults {
            faults.drop_frames.store(body.frames, Ordering::SeqCst);
        }
        done(id, faults.is_some())
    })
}

fn send_to(shared: &Shared, id: u64, frame: &str) -> Response {
    let mut state = shared.lock();
    let sent = state.is_open(id) && state.deliver(id, Out::Raw(Arc::from(frame)));
    done(id, sent)
}

async fn connection_send_raw(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: RawBody| send_to(&shared, id, &body.frame))
}

/// The line `POST …/garbage` sends: not JSON at all.
pub(crate) const GARBAGE_LINE: &str = "\u{1f5d1} this line is not JSON {";

async fn connection_garbage(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Response {
    send_to(&shared, id, GARBAGE_LINE)
}
