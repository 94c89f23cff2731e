//! [`Error`] and [`ErrorKind`]: what went wrong, and whether retrying can help.

use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is. Kinds split into permanent ones
/// (retrying with the same credentials cannot help) and retryable ones; see
/// [`ErrorKind::is_retryable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API answered 401: the access token or app credentials were rejected. Permanent.
    Unauthorized,
    /// The API answered 403: the credentials lack a scope or a permission. Permanent.
    Forbidden,
    /// The API rejected the request itself (another 4xx). Permanent.
    InvalidRequest,
    /// The API answered 429. Retryable, after [`Error::retry_after`] when given.
    RateLimited,
    /// The API answered 5xx. Retryable.
    ServerUnavailable,
    /// The network failed: DNS, TCP, TLS, WebSocket handshake. Retryable.
    Transport,
    /// Something took longer than its deadline. Retryable.
    Timeout,
    /// The peer sent something that does not follow the protocol. Retryable.
    Protocol,
    /// The pubsub server refused us for good: a terminal close code or a
    /// non-temporary connect error. Permanent.
    Rejected,
    /// The client was closed. Permanent.
    Closed,
    /// A setting or argument is invalid (a bad URL, say). Permanent.
    InvalidArgument,
}

impl ErrorKind {
    /// Whether the same call may succeed later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::ServerUnavailable
                | ErrorKind::Transport
                | ErrorKind::Timeout
                | ErrorKind::Protocol
        )
    }

    /// The kind an HTTP status maps to.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::ServerUnavailable,
            _ => ErrorKind::InvalidRequest,
        }
    }
}

/// An error from the connector: a [`kind`](Error::kind), a message that names
/// what failed (endpoint, status, the server's own words, never a token), and
/// the underlying error as its `source`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    #[source]
    source: Option<BoxError>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Attaches an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Attaches the server's `Retry-After`.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The HTTP status, for API errors.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How long the server asked us to wait (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_permanent_and_retryable_kinds() {
        for status in [401, 403, 400, 404, 422] {
            assert!(!ErrorKind::from_status(status).is_retryable(), "{status}");
        }
        for status in [429, 500, 502, 503, 504] {
            assert!(ErrorKind::from_status(status).is_retryable(), "{status}");
        }
        assert_eq!(ErrorKind::from_status(401), ErrorKind::Unauthorized);
        assert_eq!(ErrorKind::from_status(403), ErrorKind::Forbidden);
    }
}
