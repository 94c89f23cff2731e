//! The VK DevAPI REST side: token methods, channel info, chat history, OAuth
//! refresh.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::bots;
use super::http::{
    VkErrorCode, authorization, begin, forbidden, invalid_param, query_param, unauthorized,
    vk_error,
};
use super::state::{CHAT_MESSAGES_DEFAULT_LIMIT, CHAT_MESSAGES_MAX_LIMIT, Caller, Shared, Subject};

/// `GET /v1/websocket/token`: a connection token for a user or an app.
pub(crate) async fn websocket_token(
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
pub(crate) async fn subscription_token(
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
pub(crate) async fn channel(
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
pub(crate) async fn chat_messages(
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
pub(crate) async fn oauth_token(
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
pub(crate) async fn unknown_method(
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
