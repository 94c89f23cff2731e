//! The lines the server writes: replies and error replies, one JSON line
//! each, and the small rules about tokens' lifetimes they carry.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::protocol::{ErrorReply, Reply, codes};

/// Whole seconds from `now` to `expires_at`, rounded up, at least 1.
pub(super) fn ttl_secs(expires_at: Instant, now: Instant) -> u32 {
    let left = expires_at.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

/// Whether a deadline has passed.
pub(super) fn expired(expires_at: Option<Instant>, now: Instant) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// One reply as a JSON line.
pub(super) fn line(reply: &Reply) -> Arc<str> {
    let mut text = String::new();
    crate::protocol::append_line(&mut text, reply);
    Arc::from(text)
}

/// An error reply as a JSON line.
pub(super) fn error_line(id: u32, code: u32, message: &str) -> Arc<str> {
    line(&Reply {
        id,
        error: Some(ErrorReply {
            code,
            message: message.to_owned(),
            temporary: false,
        }),
        ..Reply::default()
    })
}

/// Centrifugo's message for an error code.
pub(super) fn error_message(code: u32) -> &'static str {
    match code {
        codes::INTERNAL => "internal server error",
        codes::UNAUTHORIZED => "unauthorized",
        codes::UNKNOWN_CHANNEL => "unknown channel",
        codes::PERMISSION_DENIED => "permission denied",
        codes::METHOD_NOT_FOUND => "method not found",
        codes::ALREADY_SUBSCRIBED => "already subscribed",
        codes::LIMIT_EXCEEDED => "limit exceeded",
        codes::BAD_REQUEST => "bad request",
        codes::NOT_AVAILABLE => "not available",
        codes::TOKEN_EXPIRED => "token expired",
        codes::UNRECOVERABLE_POSITION => "unrecoverable position",
        _ => "error",
    }
}

/// A JSON value as a raw payload.
pub(super) fn raw_json(value: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| {
        // A `Value` always serializes; keep a valid payload regardless.
        RawValue::from_string(String::from("null")).unwrap_or_default()
    })
}
