//! Why a relay or a subscriber stopped.

use crate::error::{Error, ErrorKind};

/// Why a relay or a subscriber stopped.
///
/// It converts into the crate's [`Error`], so `?` works in a function that
/// returns `vklive_pubsub::Error`: [`RelayError::Nats`] becomes
/// [`ErrorKind::Transport`], [`RelayError::Vk`] [`ErrorKind::Rejected`]; the
/// message is kept (it names no secret: NATS URLs are shown with `***` for
/// their credentials) and the `RelayError` is its source.
///
/// ```no_run
/// use vklive_pubsub::Client;
/// use vklive_pubsub::relay::{NatsOptions, Relay, RelayChannel, RelayConfig};
///
/// #[tokio::main]
/// async fn main() -> Result<(), vklive_pubsub::Error> {
///     let config = RelayConfig::new(
///         NatsOptions::new("nats://127.0.0.1:4222"),
///         vec![RelayChannel::new("channel-chat:8845069")],
///     );
///     let relay = Relay::new(config, || Client::with_user_token("token"));
///     relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
///     Ok(())
/// }
/// ```
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

impl RelayError {
    /// The kind of the crate's [`Error`] this converts into.
    fn kind(&self) -> ErrorKind {
        match self {
            // Unreachable, or refusing: a NATS that comes back (or is
            // reconfigured) lets the same relay run.
            RelayError::Nats(_) => ErrorKind::Transport,
            // The relay ends on VK's side only for what retrying cannot
            // fix: a rejected token, a bad URL or channel.
            RelayError::Vk(_) => ErrorKind::Rejected,
        }
    }
}

impl From<RelayError> for Error {
    fn from(error: RelayError) -> Error {
        Error::new(error.kind(), error.to_string()).with_source(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question_mark(error: RelayError) -> Result<(), Error> {
        Err(error)?
    }

    #[test]
    fn a_relay_error_converts_into_the_crate_error_with_its_message_and_source() {
        let error = question_mark(RelayError::Nats(
            "cannot connect to NATS at nats://relay:***@127.0.0.1:4222".into(),
        ))
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transport);
        assert!(error.is_retryable());
        assert_eq!(
            error.to_string(),
            "cannot connect to NATS at nats://relay:***@127.0.0.1:4222"
        );
        let source = std::error::Error::source(&error).expect("a source");
        assert!(matches!(
            source.downcast_ref::<RelayError>(),
            Some(RelayError::Nats(_))
        ));

        let error = question_mark(RelayError::Vk("HTTP 401 unauthorized".into())).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert!(!error.is_retryable());
        assert_eq!(error.to_string(), "HTTP 401 unauthorized");
    }
}
