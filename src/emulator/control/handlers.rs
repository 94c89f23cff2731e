//! The handlers of the control routes (see the table in `control/mod.rs`):
//! each parses its JSON body and calls the state, as the `Emulator` method
//! it mirrors does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State as AxumState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::emulator::http::vk_error;
use crate::emulator::load;
use crate::emulator::state::{Out, Shared};
use crate::emulator::trigger::{self, Trigger};

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

pub(super) async fn publish(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<PublishBody>(&body) {
        Ok(body) => {
            let offset = shared.lock().publish(&body.channel, &body.data);
            Json(json!({ "offset": offset })).into_response()
        }
        Err(response) => *response,
    }
}

pub(super) async fn abort(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    shared.lock().abort_all();
    ok()
}

#[derive(Deserialize)]
struct CloseBody {
    code: u16,
    #[serde(default)]
    reason: String,
}

pub(super) async fn close(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn silent(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn restart_channel(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn send_raw(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn fail_rest(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn fail_ws_upgrade(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn blast(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    let body = match parse::<BlastBody>(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    // Building a few hundred megabytes of frames takes a while: keep it off
    // the runtime's worker threads (and, in `load::blast`, off the lock).
    let built = tokio::task::spawn_blocking(move || {
        load::blast(&shared, &body.channel, body.count, body.per_frame)
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

pub(super) async fn paced(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<PacedBody>(&body) {
        Ok(body) if body.rate.is_finite() && body.rate > 0.0 => {
            drop(load::spawn_paced(
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

pub(super) async fn history(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<HistoryBody>(&body) {
        Ok(body) => {
            shared.lock().set_history(body.enabled);
            ok()
        }
        Err(response) => *response,
    }
}

pub(super) async fn stats(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
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

pub(super) async fn users(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn apps(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn refresh_tokens(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn revoke(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: RevokeBody| {
        shared.lock().revoke_access_token(&body.access_token);
        ok()
    })
}

#[derive(Deserialize)]
struct CountBody {
    count: usize,
}

pub(super) async fn expire_next(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn connection_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: IssueBody| {
        let token = shared
            .lock()
            .issue_connection_token_for(body.user_id, body.ttl.map(seconds));
        Json(json!({ "token": token })).into_response()
    })
}

pub(super) async fn subscription_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn token_ttl(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn channels(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
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

pub(super) async fn deny(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: DenyBody| {
        shared.lock().deny(body.user_id, &body.channel);
        ok()
    })
}

#[derive(Deserialize)]
struct LimitBody {
    limit: Option<usize>,
}

pub(super) async fn channel_limit(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: LimitBody| {
        shared.lock().config.channel_limit = body.limit;
        ok()
    })
}

#[derive(Deserialize)]
struct PingBody {
    seconds: f64,
}

pub(super) async fn ping_interval(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: PingBody| {
        shared.lock().config.ping_interval = seconds(body.seconds);
        ok()
    })
}

pub(super) async fn trigger_route(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn unsubscribe(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn fail_subscribes(
    AxumState(shared): AxumState<Arc<Shared>>,
    body: Bytes,
) -> Response {
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

pub(super) async fn delay_rest(AxumState(shared): AxumState<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |body: DelayBody| {
        shared
            .lock()
            .delay_next_rest(body.count, Duration::from_millis(body.ms));
        ok()
    })
}

pub(super) async fn connections(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
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

pub(super) async fn connection_close(
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

pub(super) async fn connection_abort(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Response {
    let open = shared.lock().abort_connection(id);
    done(id, open)
}

pub(super) async fn connection_silent(
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

pub(super) async fn connection_drop(
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

pub(super) async fn connection_send_raw(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    with_body(&body, |body: RawBody| send_to(&shared, id, &body.frame))
}

/// The line `POST …/garbage` sends: not JSON at all.
pub(crate) const GARBAGE_LINE: &str = "\u{1f5d1} this line is not JSON {";

pub(super) async fn connection_garbage(
    AxumState(shared): AxumState<Arc<Shared>>,
    Path(id): Path<u64>,
) -> Response {
    send_to(&shared, id, GARBAGE_LINE)
}
