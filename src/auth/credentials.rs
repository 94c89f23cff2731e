//! What goes into the `Authorization` header, and where it comes from.

use async_trait::async_trait;
use base64::Engine as _;

use crate::error::{Error, ErrorKind};
use crate::secret::Secret;

/// What goes into the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// A user's OAuth access token: `Bearer <token>`.
    Bearer(Secret),
    /// An application's own credentials: `Basic base64(client_id:client_secret)`.
    /// Applications get no subscription tokens, so only public channels work.
    Basic {
        /// The application's client id (not secret).
        client_id: String,
        /// The application's client secret.
        client_secret: Secret,
    },
}

impl Authorization {
    /// A user's access token.
    pub fn user(access_token: impl Into<Secret>) -> Self {
        Authorization::Bearer(access_token.into())
    }

    /// An application's client credentials.
    pub fn app(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Authorization::Basic {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }

    /// Whether this authenticates a user (who may get subscription tokens).
    pub fn is_user(&self) -> bool {
        matches!(self, Authorization::Bearer(_))
    }

    /// The header value, marked sensitive (HTTP/2's HPACK never indexes it,
    /// and its `Debug` prints `Sensitive`). Never log it.
    pub(super) fn header_value(&self) -> Result<reqwest::header::HeaderValue, Error> {
        let text = match self {
            Authorization::Bearer(token) => format!("Bearer {}", token.expose_secret()),
            Authorization::Basic {
                client_id,
                client_secret,
            } => {
                let pair = format!("{client_id}:{}", client_secret.expose_secret());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        };
        let mut value = reqwest::header::HeaderValue::from_str(&text).map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the credentials hold a character no HTTP header may carry (a line break?)",
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// A source of credentials, asked every time the connector calls the API.
///
/// Implemented by [`Authorization`] itself (a static token) and by
/// [`OAuthRefresher`](super::OAuthRefresher) (a user token refreshed before it expires). Implement it
/// to plug in your own token storage.
#[async_trait]
pub trait Credentials: Send + Sync + 'static {
    /// The credentials to use now.
    async fn authorization(&self) -> Result<Authorization, Error>;

    /// The API answered 401 to `rejected`. Return `Ok(true)` when fresh
    /// credentials are now available and the call should be tried once more,
    /// `Ok(false)` when the rejection is final.
    async fn rejected(&self, rejected: &Authorization) -> Result<bool, Error> {
        let _ = rejected;
        Ok(false)
    }
}

#[async_trait]
impl Credentials for Authorization {
    async fn authorization(&self) -> Result<Authorization, Error> {
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_headers_follow_the_two_documented_forms() {
        assert_eq!(
            Authorization::user("abc").header_value().unwrap(),
            "Bearer abc"
        );
        assert_eq!(
            Authorization::app("id", "secret").header_value().unwrap(),
            "Basic aWQ6c2VjcmV0"
        );
        let error = Authorization::user("abc\n").header_value().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        let printed = format!("{:?}", Authorization::app("id", "secret"));
        assert!(!printed.contains("secret\""), "{printed}");
    }

    #[test]
    fn the_authorization_header_is_marked_sensitive() {
        for authorization in [Authorization::user("abc"), Authorization::app("id", "s")] {
            let value = authorization.header_value().unwrap();
            assert!(value.is_sensitive());
            assert_eq!(format!("{value:?}"), "Sensitive");
        }
    }
}
