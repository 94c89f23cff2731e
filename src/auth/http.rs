//! The HTTP plumbing every REST call shares: the client, bounded body reads,
//! `Retry-After`, and answers turned into typed errors.

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// The largest REST answer body read, in bytes (4 MiB), for the API and the
/// OAuth token endpoint alike. These answers are a few hundred bytes (a
/// subscription-token answer for 100 channels, a few tens of KiB); a longer
/// one fails with [`ErrorKind::Protocol`] (retryable) as soon as it passes
/// the cap, so an endless answer cannot take the process's memory.
#[doc(hidden)] // internal, public for the tests
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The longest server `Retry-After` honoured (5 minutes), as the connection
/// caps it: a bogus value cannot park a client for days nor overflow a clock.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
}

#[derive(Deserialize, Default)]
struct ApiErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("vklive-pubsub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| {
            Error::new(ErrorKind::InvalidArgument, "cannot build the HTTP client")
                .with_source(error)
        })
}

/// Reads an answer's body, chunk by chunk, up to `limit` bytes: a longer
/// body (declared or sent) fails with [`ErrorKind::Protocol`] and the rest is
/// never read.
pub(crate) async fn read_body(
    endpoint: &str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, Error> {
    let status = response.status().as_u16();
    let too_large = || {
        Error::new(
            ErrorKind::Protocol,
            format!("{endpoint}: HTTP {status} with an answer larger than {limit} bytes"),
        )
        .with_status(status)
    };
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(too_large());
    }
    // `declared` is at most `limit` here.
    let mut body = Vec::with_capacity(declared as usize);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(endpoint, error))?
    {
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub(crate) fn transport_error(endpoint: &str, error: reqwest::Error) -> Error {
    let kind = if error.is_builder() {
        // The request cannot be built (a URL longer than HTTP allows):
        // sending it again cannot help.
        ErrorKind::InvalidArgument
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Transport
    };
    let error = error.without_url();
    Error::new(
        kind,
        format!("{endpoint}: request failed: {}", error_chain(&error)),
    )
    .with_source(error)
}

/// An error and its sources as one line ("error sending request: connection refused").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// The server's `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`]; a
/// number too large for `u64` is the cap too.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let seconds = text.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// An answer that does not have the documented shape. Only the error's class
/// and position are kept: serde's message can quote a value from the body,
/// and the body may hold a token.
pub(crate) fn unexpected_body(endpoint: &str, status: u16, error: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!(
            "{endpoint}: HTTP {status} with an unexpected body ({:?} error at line {}, column {})",
            error.classify(),
            error.line(),
            error.column()
        ),
    )
}

/// Turns an API answer into data or a typed error naming the endpoint, the
/// status and the server's own description.
pub(crate) fn parse_response<T: DeserializeOwned>(
    endpoint: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<T, Error> {
    if (200..300).contains(&status) {
        return serde_json::from_slice::<Envelope<T>>(body)
            .map(|envelope| envelope.data)
            .map_err(|error| unexpected_body(endpoint, status, &error));
    }
    let described = serde_json::from_slice::<ApiErrorBody>(body).unwrap_or_default();
    let kind = ErrorKind::from_answer(status, described.error.as_deref());
    let mut message = format!("{endpoint}: HTTP {status}");
    if let Some(code) = described.error {
        message.push_str(&format!(" {code}"));
    }
    if let Some(description) = described.error_description {
        message.push_str(&format!(": {description}"));
    }
    Err(Error::new(kind, message)
        .with_status(status)
        .with_retry_after(retry_after))
}
