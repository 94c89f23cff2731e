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
    /// Chat send answered 400 `message_too_long` ("Text too long"). Permanent
    /// for this message: shorten it.
    MessageTooLong,
    /// Chat send answered 400 `same_message` ("Message is the same"): the
    /// same text as this user's previous message. Permanent for this message:
    /// change the text.
    SameMessage,
    /// Chat send answered 400 `send_too_fast` ("Sending messages too fast").
    /// Retryable after a pause; [`VkApi::send_message`](crate::auth::VkApi::send_message)
    /// retries it within its bound before returning it.
    SendTooFast,
    /// A channel name or slug that cannot be one (empty, longer than
    /// [`MAX_CHANNEL_NAME_BYTES`](crate::auth::MAX_CHANNEL_NAME_BYTES), or
    /// holding a comma, a space or a control character). The message names
    /// it. Permanent: fix the name.
    InvalidChannel,
    /// The channel has no live stream, so there is no `stream_id` to send
    /// chat to. Permanent until a stream starts.
    NoLiveStream,
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
                | ErrorKind::SendTooFast
        )
    }

    /// The kind an API error answer maps to: the documented chat codes
    /// (`message_too_long`, `same_message`, `send_too_fast`) by their
    /// `error` code, anything else by its HTTP status.
    ///
    /// ```
    /// use vklive_pubsub::ErrorKind;
    /// assert_eq!(ErrorKind::from_answer(400, Some("same_message")), ErrorKind::SameMessage);
    /// assert_eq!(ErrorKind::from_answer(400, Some("invalid_param")), ErrorKind::InvalidRequest);
    /// assert_eq!(ErrorKind::from_answer(403, None), ErrorKind::Forbidden);
    /// ```
    pub fn from_answer(status: u16, code: Option<&str>) -> ErrorKind {
        match code {
            Some("message_too_long") => ErrorKind::MessageTooLong,
            Some("same_message") => ErrorKind::SameMessage,
            Some("send_too_fast") => ErrorKind::SendTooFast,
            _ => ErrorKind::from_status(status),
        }
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
