//! HTTP control endpoints under `/_emulator/`, for tests written in other
//! languages (the Python conformance test uses them). They mirror methods of
//! [`super::Emulator`] and are not recorded in `rest_calls`.
//!
//! | endpoint | body | answer |
//! |---|---|---|
//! | `POST /_emulator/publish` | `{"channel":…,"data":…}` | `{"offset":N}` |
//! | `POST /_emulator/abort` | — | `{}` |
//! | `POST /_emulator/close` | `{"code":…,"reason":…}` | `{}` |
//! | `POST /_emulator/silent` | `{"silent":true}` | `{}` |
//! | `POST /_emulator/restart_channel` | `{"channel":…}` | `{}` |
//! | `POST /_emulator/send_raw` | `{"frame":…}` | `{}` |
//! | `POST /_emulator/fail_rest` | `{"count":…,"status":…,"retry_after":…}` | `{}` |
//! | `POST /_emulator/fail_ws_upgrade` | `{"count":…,"status":…}` | `{}` (count 0 clears) |
//! | `POST /_emulator/blast` | `{"channel":…,"count":…,"per_frame":100}` | `{"first_offset","last_offset","frames","bytes","subscribers"}` once every frame is queued |
//! | `POST /_emulator/paced` | `{"channel":…,"count":…,"rate":…}` | `{}` at once; publishing goes on in the background |
//! | `POST /_emulator/history` | `{"enabled":false}` | `{}`; as [`super::Emulator::set_history`] |
//! | `GET /_emulator/stats` | — | connections, pings, pongs, violations, close codes, commands by name, REST calls by path, subscribers, `history` (on or off) |
//!
//! `blast` and `paced` are load for benchmarks (see [`super::Emulator::blast`]
//! and [`super::Emulator::publish_paced`]): `blast` builds all the frames
//! first and answers once they are queued, after which the connection's
//! writer sends them as fast as the client reads; `paced` stamps each
//! message's first text part with `⏱<ns since the Unix epoch>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::rest::vk_error;
use super::state::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
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
