//! The record of REST calls: every call to the VK API surface (REST and
//! OAuth; not the WebSocket or the control routes) with its body, then its
//! status and VK error code ([`super::Emulator::rest_calls`]).

use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::response::Response;

use super::http::{VkErrorCode, vk_error};
use super::state::Shared;

/// Whether a path is part of the recorded API surface (REST and OAuth; not
/// the WebSocket or the control endpoints).
fn is_api_path(path: &str) -> bool {
    path.starts_with("/v1/") || path.starts_with("/oauth/") || path.starts_with("/app/oauth2/")
}

/// The largest request body recorded (and accepted) by the API.
const BODY_LIMIT: usize = 1 << 20;

/// Records every API call with its body, then its status and VK error code.
pub(crate) async fn record(
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
