//! Why a relay or a subscriber stopped.

/// Why a relay or a subscriber stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// NATS could not be reached or refused something (a connect, the
    /// stream, the bucket, a consumer).
    #[error("{0}")]
    Nats(String),
    /// The VK side failed for good (a rejected token, a bad URL).
    #[error("{0}")]
    Vk(String),
}
