//! The VK DevAPI REST side: token methods, channel info, chat history, OAuth
//! refresh.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::state::{
    CHAT_MESSAGES_DEFAULT_LIMIT, CHAT_MESSAGES_MAX_LIMIT, Caller, InjectedFailure, Shared, Subject,
};
use super::{bots, control, pubsub};

/// The whole HTTP surface: REST, OAuth, the WebSocket and the control API.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/websocket/token", get(websocket_token))
        .route("/v1/websocket/subscription_token", get(subscription_token))
        .route("/v1/channel", get(channel))
        .route("/v1/chat/messages", get(chat_messages))
        .route("/v1/chat/message/send", post(bots::chat_send))
        .route(
            "/v1/channel_point/reward/demand/accept",
            post(bots::demand_accept),
        )
        .route(
            "/v1/channel_point/reward/demand/reject",
            post(bots::demand_reject),
        )
        .route("/v1/token", get(bots::token_info))
        .route("/v1/current_user", get(bots::current_user))
        .route("/app/oauth2/authorize", get(bots::authorize))
        .route("/oauth/server/token", post(oauth_token))
        .route("/connection/websocket", get(pubsub::upgrade))
        .merge(control::routes())
        .fallback(unknown_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            record,
        ))
        .with_state(shared)
}

/// Whether a path is part of the recorded API surface (REST and OAuth; not
/// the WebSocket or the control endpoints).
fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/oauth/") || path.starts_with("/app/oauth2/")
}

/// The largest request body recorded (and accepted) by the API.
const BODY_LIMIT: usize = 1 << 20;

/// The VK `error` code of a response, for the call record.
#[derive(Clone)]
struct VkErrorCode(String);

/// Records every API call with its body, then its status and VK error code.
async fn record(
    AxumState(shared): AxumState<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !is_api_path(&path) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return vk_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_param",
            "Body too large",
        );
    };
    let text = if path.starts_with("/oauth/") {
        redact_form(&bytes)
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let seq = shared.lock().record_rest(
        parts.method.as_str(),
        &path,
        parts.uri.query().unwrap_or(""),
        text,
    );
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let response = next.run(request).await;
    let code = response
        .extensions()
        .get::<VkErrorCode>()
        .map(|code| code.0.clone());
    shared
        .lock()
        .finish_rest(seq, response.status().as_u16(), code);
    response
}

/// A form body with its secret values replaced by `[redacted]`.
fn redact_form(body: &[u8]) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(body) {
        let secret = matches!(key.as_ref(), "code" | "refresh_token" | "client_secret");
        out.append_pair(&key, if secret { "[redacted]" } else { &value });
    }
    out.finish()
}

/// A VK error response: `{"error":…,"error_description":…}`.
pub(crate) fn vk_error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(VkErrorCode(code.to_owned()));
    response
}

pub(crate) fn unauthorized() -> Response {
    vk_error(StatusCode::UNAUTHORIZED, "unauthorized", "Not authorized")
}

pub(crate) fn forbidden() -> Response {
    vk_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Access to resource forbidden",
    )
}

pub(crate) fn invalid_param(description: &str) -> Response {
    vk_error(StatusCode::BAD_REQUEST, "invalid_param", description)
}

fn injected(failure: InjectedFailure) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (code, description) = match failure.status {
        400 => ("invalid_param", "Invalid parameter"),
        401 => ("unauthorized", "Not authorized"),
        403 => ("forbidden", "Access to resource forbidden"),
        404 => ("not_found", "Not found"),
        422 => ("unprocessable_entity", "Unprocessable entity"),
        429 => ("ratelimit_exceeded", "Rate limit exceeded"),
        500 => ("internal_error", "Internal server error"),
        503 => ("service_unavailable", "Service unavailable"),
        _ => ("error", "Injected failure"),
    };
    let mut response = vk_error(status, code, description);
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Waits out an injected delay, and returns the injected failure's
/// response, if one is pending. (The `record` layer records the call.)
pub(crate) async fn begin(shared: &Shared, method: &Method, uri: &Uri) -> Option<Response> {
    let _ = (method, uri);
    let delay = shared.lock().take_rest_delay();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    shared.lock().take_rest_failure().map(injected)
}

pub(crate) fn query_param(uri: &Uri, name: &str) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

pub(crate) fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

/// `GET /v1/websocket/token`: a connection token for a user or an app.
async fn websocket_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let mut state = shared.lock();
    let (subject, issued_by) = match state.authenticate(authorization(&headers)) {
        Some(Caller::User {
            user_id,
            access_token,
        }) => (Subject::User(user_id), Some(access_token)),
        Some(Caller::App { client_id }) => (Subject::App(client_id), None),
        None => return unauthorized(),
    };
    let ttl = state.config.token_ttl;
    let token = state.issue_connection_token(subject, issued_by, ttl);
    Json(json!({"data": {"token": token}})).into_response()
}

/// `GET /v1/websocket/subscription_token?channels=a,b`: user only; channels
/// the user may not read are simply missing from the answer.
async fn subscription_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let mut state = shared.lock();
    let (user_id, access_token) = match state.authenticate(authorization(&headers)) {
        Some(Caller::User {
            user_id,
            access_token,
        }) => (user_id, access_token),
        Some(Caller::App { .. }) => return forbidden(),
        None => return unauthorized(),
    };
    let Some(channels) = query_param(&uri, "channels") else {
        return invalid_param("Parameter channels is required");
    };
    let channels: Vec<String> = channels
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if channels.is_empty() {
        return invalid_param("Parameter channels is required");
    }
    if channels.len() > state.config.max_channels_per_token_request {
        return invalid_param("Too many channels");
    }
    let tokens: Vec<serde_json::Value> = state
        .subscription_tokens(user_id, &access_token, &channels)
        .into_iter()
        .map(|(channel, token)| json!({"channel": channel, "token": token}))
        .collect();
    Json(json!({"data": {"channel_tokens": tokens}})).into_response()
}

/// `GET /v1/channel?channel_url=<slug>`.
async fn channel(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let state = shared.lock();
    if state.authenticate(authorization(&headers)).is_none() {
        return unauthorized();
    }
    let Some(slug) = query_param(&uri, "channel_url").filter(|s| !s.is_empty()) else {
        return invalid_param("Parameter channel_url is required");
    };
    match state.channel_info(&slug) {
        Some(data) => Json(json!({ "data": data })).into_response(),
        None => channel_not_found(),
    }
}

fn channel_not_found() -> Response {
    vk_error(StatusCode::NOT_FOUND, "not_found", "Channel not found")
}

/// `GET /v1/chat/messages?channel_url=<slug>&limit=N`: the channel's most
/// recent chat messages from the chat log, newest first. `limit` defaults to
/// 20; anything but an integer in 1..=200 answers 400 `invalid_param`.
async fn chat_messages(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let state = shared.lock();
    if state.authenticate(authorization(&headers)).is_none() {
        return unauthorized();
    }
    let Some(slug) = query_param(&uri, "channel_url").filter(|s| !s.is_empty()) else {
        return invalid_param("Parameter channel_url is required");
    };
    let limit = match query_param(&uri, "limit") {
        None => CHAT_MESSAGES_DEFAULT_LIMIT,
        Some(limit) => match limit.trim().parse::<usize>() {
            Ok(limit) if (1..=CHAT_MESSAGES_MAX_LIMIT).contains(&limit) => limit,
            _ => return invalid_param("Parameter limit must be an integer from 1 to 200"),
        },
    };
    match state.chat_messages(&slug, limit) {
        Some(messages) => Json(json!({"data": {"chat_messages": messages}})).into_response(),
        None => channel_not_found(),
    }
}

/// `POST /oauth/server/token` with `grant_type=refresh_token`.
async fn oauth_token(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use base64::Engine as _;
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    // Client authentication: Basic header, or client_id/client_secret fields.
    let from_header = authorization(&headers)
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, value)| {
            base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            text.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    let client = from_header.or_else(|| field("client_id").zip(field("client_secret")));
    let mut state = shared.lock();
    let Some((client_id, secret)) = client.filter(|(id, secret)| state.app_valid(id, secret))
    else {
        return vk_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed",
        );
    };
    let _ = secret;
    if field("grant_type").as_deref() == Some("authorization_code") {
        drop(state);
        let code = field("code").unwrap_or_default();
        return bots::exchange_code(&shared, &client_id, &code, field("redirect_uri").as_deref());
    }
    if field("grant_type").as_deref() != Some("refresh_token") {
        return vk_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=refresh_token and authorization_code are emulated",
        );
    }
    let refresh_token = field("refresh_token").unwrap_or_default();
    match state.oauth_refresh(&client_id, &refresh_token) {
        Ok((access_token, refresh_token, expires_in)) => Json(json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "expires_in": expires_in,
            "token_type": "Bearer",
        }))
        .into_response(),
        Err(()) => vk_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Refresh token is invalid",
        ),
    }
}

/// Any other path: 404 `{"error":"unknown_api_method"}`.
async fn unknown_method(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    let path = uri.path();
    if (path.starts_with("/v1/") || path.starts_with("/oauth/"))
        && let Some(response) = begin(&shared, &method, &uri).await
    {
        return response;
    }
    let mut response = (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "unknown_api_method"})),
    )
        .into_response();
    response
        .extensions_mut()
        .insert(VkErrorCode(String::from("unknown_api_method")));
    response
}
