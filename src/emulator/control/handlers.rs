//! The handlers of the control routes (see the table in `control/mod.rs`).
//! Most are plain functions of the state and their parsed JSON body (the
//! table's `Knob::json` parses it); the others are axum handlers: a
//! connection id in the path, no body, or work kept off the runtime. Each
//! calls the state as the `Emulator` method it mirrors does.

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

pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, Box<Response>> {
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
pub(super) struct PublishBody {
    channel: String,
    data: serde_json::Value,
}

pub(super) fn publish(shared: &Shared, body: PublishBody) -> Response {
    let offset = shared.lock().publish(&body.channel, &body.data);
    Json(json!({ "offset": offset })).into_response()
}

pub(super) async fn abort(AxumState(shared): AxumState<Arc<Shared>>) -> Response {
    shared.lock().abort_all();
    ok()
}

#[derive(Deserialize)]
pub(super) struct CloseBody {
    code: u16,
    #[serde(default)]
    reason: String,
}

pub(super) fn close(shared: &Shared, body: CloseBody) -> Response {
    shared.lock().close_all(body.code, &body.reason);
    ok()
}

#[derive(Deserialize)]
pub(super) struct SilentBody {
    silent: bool,
}

pub(super) fn silent(shared: &Shared, body: SilentBody) -> Response {
    shared.silent.store(body.silent, Ordering::SeqCst);
    ok()
}

#[derive(Deserialize)]
pub(super) struct ChannelBody {
    channel: String,
}

pub(super) fn restart_channel(shared: &Shared, body: ChannelBody) -> Response {
    shared.lock().restart_channel(&body.channel);
    ok()
}

#[derive(Deserialize)]
pub(super) struct RawBody {
    frame: String,
}

pub(super) fn send_raw(shared: &Shared, body: RawBody) -> Response {
    shared.lock().send_raw(&body.frame);
    ok()
}

#[derive(Deserialize)]
pub(super) struct FailBody {
    count: usize,
    status: u16,
    #[serde(default)]
    retry_after: Option<u64>,
}

pub(super) fn fail_rest(shared: &Shared, body: FailBody) -> Response {
    shared
        .lock()
        .fail_next_rest(body.count, body.status, body.retry_after);
    ok()
}

#[derive(Deserialize)]
pub(super) struct FailUpgradeBody {
    count: usize,
    #[serde(default = "service_unavailable")]
    status: u16,
}

fn service_unavailable() -> u16 {
    503
}

pub(super) fn fail_ws_upgrade(shared: &Shared, body: FailUpgradeBody) -> Response {
    shared.lock().fail_next_ws_upgrade(body.count, body.status);
    ok()
}

#[derive(Deserialize)]
pub(super) struct BlastBody {
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
pub(super) struct PacedBody {
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
pub(super) struct HistoryBody {
    enabled: bool,
}

pub(super) fn history(shared: &Shared, body: HistoryBody) -> Response {
    shared.lock().set_history(body.enabled);
    ok()
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
pub(super) struct UserBody {
    token: String,
    id: u64,
    nick: String,
}

pub(super) fn users(shared: &Shared, body: UserBody) -> Response {
    shared.lock().add_user(&body.token, body.id, &body.nick);
    ok()
}

#[derive(Deserialize)]
pub(super) struct AppBody {
    client_id: String,
    client_secret: String,
}

pub(super) fn apps(shared: &Shared, body: AppBody) -> Response {
    shared.lock().add_app(&body.client_id, &body.client_secret);
    ok()
}

#[derive(Deserialize)]
pub(super) struct RefreshTokenBody {
    refresh_token: String,
    user_id: u64,
    client_id: String,
}

pub(super) fn refresh_tokens(shared: &Shared, body: RefreshTokenBody) -> Response {
    shared
        .lock()
        .add_refresh_token(&body.refresh_token, body.user_id, &body.client_id);
    ok()
}

#[derive(Deserialize)]
pub(super) struct RevokeBody {
    access_token: String,
}

pub(super) fn revoke(shared: &Shared, body: RevokeBody) -> Response {
    shared.lock().revoke_access_token(&body.access_token);
    ok()
}

#[derive(Deserialize)]
pub(super) struct CountBody {
    count: usize,
}

pub(super) fn expire_next(shared: &Shared, body: CountBody) -> Response {
    shared.lock().expire_next_tokens(body.count);
    ok()
}

#[derive(Deserialize)]
pub(super) struct IssueBody {
    user_id: u64,
    #[serde(default)]
    channel: Option<String>,
    /// Seconds; absent or null for the configured lifetime.
    #[serde(default)]
    ttl: Option<f64>,
}

pub(super) fn connection_token(shared: &Shared, body: IssueBody) -> Response {
    let token = shared
        .lock()
        .issue_connection_token_for(body.user_id, body.ttl.map(seconds));
    Json(json!({ "token": token })).into_response()
}

pub(super) fn subscription_token(shared: &Shared, body: IssueBody) -> Response {
    let Some(channel) = body.channel else {
        return vk_error(
            StatusCode::BAD_REQUEST,
            "invalid_param",
            "a subscription token needs a channel",
        );
    };
    let token =
        shared
            .lock()
            .issue_subscription_token_for(body.user_id, &channel, body.ttl.map(seconds));
    Json(json!({ "token": token })).into_response()
}

#[derive(Deserialize)]
pub(super) struct TokenTtlBody {
    /// Seconds; null: tokens never expire.
    ttl: Option<f64>,
    /// Seconds (default 25, Centrifugo's).
    #[serde(default = "default_grace")]
    grace: f64,
}

fn default_grace() -> f64 {
    25.0
}

pub(super) fn token_ttl(shared: &Shared, body: TokenTtlBody) -> Response {
    let mut state = shared.lock();
    state.config.token_ttl = body.ttl.map(seconds);
    state.config.expiry_grace = seconds(body.grace);
    ok()
}

#[derive(Deserialize)]
pub(super) struct AddChannelBody {
    slug: String,
    id: u64,
}

pub(super) fn channels(shared: &Shared, body: AddChannelBody) -> Response {
    let names = shared.lock().add_channel(&body.slug, body.id);
    Json(names).into_response()
}

#[derive(Deserialize)]
pub(super) struct DenyBody {
    user_id: u64,
    channel: String,
}

pub(super) fn deny(shared: &Shared, body: DenyBody) -> Response {
    shared.lock().deny(body.user_id, &body.channel);
    ok()
}

#[derive(Deserialize)]
pub(super) struct LimitBody {
    limit: Option<usize>,
}

pub(super) fn channel_limit(shared: &Shared, body: LimitBody) -> Response {
    shared.lock().config.channel_limit = body.limit;
    ok()
}

#[derive(Deserialize)]
pub(super) struct PingBody {
    seconds: f64,
}

pub(super) fn ping_interval(shared: &Shared, body: PingBody) -> Response {
    shared.lock().config.ping_interval = seconds(body.seconds);
    ok()
}

pub(super) fn trigger_route(shared: &Shared, body: Trigger) -> Response {
    match trigger::fire(&mut shared.lock(), &body) {
        Ok(published) => Json(json!({ "published": published })).into_response(),
        Err(message) => vk_error(StatusCode::BAD_REQUEST, "invalid_param", &message),
    }
}

#[derive(Deserialize)]
pub(super) struct UnsubscribeBody {
    channel: String,
    code: u32,
    #[serde(default)]
    reason: String,
}

pub(super) fn unsubscribe(shared: &Shared, body: UnsubscribeBody) -> Response {
    shared
        .lock()
        .unsubscribe_all(&body.channel, body.code, &body.reason);
    ok()
}

#[derive(Deserialize)]
pub(super) struct FailSubscribesBody {
    count: usize,
    code: u32,
    #[serde(default)]
    temporary: bool,
}

pub(super) fn fail_subscribes(shared: &Shared, body: FailSubscribesBody) -> Response {
    shared
        .lock()
        .fail_next_subscribes(body.count, body.code, body.temporary);
    ok()
}

#[derive(Deserialize)]
pub(super) struct DelayBody {
    count: usize,
    ms: u64,
}

pub(super) fn delay_rest(shared: &Shared, body: DelayBody) -> Response {
    shared
        .lock()
        .delay_next_rest(body.count, Duration::from_millis(body.ms));
    ok()
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
pub(super) struct DropBody {
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
