//! HTTP helpers every route shares: VK's error shape, the injected REST
//! failures and delays, query and header readers.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::{InjectedFailure, Shared};

/// The VK `error` code of a response, for the call record.
#[derive(Clone)]
pub(crate) struct VkErrorCode(pub(crate) String);

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

/// A 404 `not_found` with this description.
pub(crate) fn not_found(description: &str) -> Response {
    vk_error(StatusCode::NOT_FOUND, "not_found", description)
}
