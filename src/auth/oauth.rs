//! [`OAuthRefresher`]: a user access token kept fresh with its refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::{Authorization, Credentials};
use crate::error::{Error, ErrorKind};
use crate::secret::Secret;

/// VK's OAuth token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.live.vkvideo.ru/oauth/server/token";

/// An access token with the refresh token that renews it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The access token sent as `Bearer`.
    pub access_token: Secret,
    /// The refresh token.
    pub refresh_token: Secret,
    /// When the access token expires, if known.
    pub expires_at: Option<SystemTime>,
}

/// Where refreshed token pairs go, so they survive a restart (refresh tokens
/// are rotated: the old one may stop working once a new pair is issued).
pub trait TokenStore: Send + Sync + 'static {
    /// Called with every new pair, before it is used.
    fn save(&self, pair: &TokenPair);
}

/// Credentials that refresh a user's access token through
/// `POST /oauth/server/token` (`grant_type=refresh_token`, Basic client auth):
/// ahead of expiry, and once when the API answers 401.
///
/// Only one refresh runs at a time: concurrent callers wait for it and then
/// share its result. When the answer carries no refresh token the old one is
/// kept. Every new pair is handed to the [`TokenStore`].
pub struct OAuthRefresher {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: Secret,
    refresh_ahead: Duration,
    store: Option<Arc<dyn TokenStore>>,
    current: Mutex<TokenPair>,
}

impl std::fmt::Debug for OAuthRefresher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthRefresher")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    #[serde(default)]
    refresh_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuthRefresher {
    /// A refresher for the app `client_id`/`client_secret`, starting from `pair`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        pair: TokenPair,
    ) -> Self {
        OAuthRefresher {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            refresh_ahead: Duration::from_secs(60),
            store: None,
            current: Mutex::new(pair),
        }
    }

    /// Uses another token endpoint (the emulator's, in tests). An `http://`
    /// URL to a host other than loopback is logged once at `warn`: the client
    /// secret and refresh token would travel in plaintext.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        crate::plaintext::warn_if_plaintext(&self.token_url, "the OAuth refresher");
        self
    }

    /// Refreshes this long before the access token expires (default 60 s).
    pub fn refresh_ahead(mut self, ahead: Duration) -> Self {
        self.refresh_ahead = ahead;
        self
    }

    /// Hands every new token pair to `store`.
    pub fn store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The current pair.
    pub async fn current(&self) -> TokenPair {
        self.current.lock().await.clone()
    }

    /// Refreshes now, under the lock the caller holds.
    async fn refresh_locked(&self, current: &mut TokenPair) -> Result<(), Error> {
        let endpoint = "POST /oauth/server/token";
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", current.refresh_token.expose_secret()),
        ];
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|error| super::transport_error(endpoint, error))?;
        let status = response.status().as_u16();
        let body = super::read_body(endpoint, response, super::MAX_RESPONSE_BYTES).await?;
        *current = parse_token_answer(endpoint, status, &body, current, SystemTime::now())?;
        tracing::info!("access token refreshed");
        if let Some(store) = &self.store {
            store.save(current);
        }
        Ok(())
    }
}

/// The new pair from a token endpoint answer; keeps the old refresh token when
/// the answer has none.
fn parse_token_answer(
    endpoint: &str,
    status: u16,
    body: &[u8],
    old: &TokenPair,
    now: SystemTime,
) -> Result<TokenPair, Error> {
    if !(200..300).contains(&status) {
        // OAuth errors use the same {error, error_description} shape as the API.
        let error = super::parse_response::<serde::de::IgnoredAny>(endpoint, status, None, body)
            .err()
            .unwrap_or_else(|| Error::new(ErrorKind::from_status(status), endpoint));
        // A refused refresh token (400 invalid_grant) cannot get better by retrying.
        let kind = if status == 400 {
            ErrorKind::Unauthorized
        } else {
            error.kind()
        };
        return Err(Error::new(kind, error.to_string()).with_status(status));
    }
    let answer: TokenResponse = serde_json::from_slice(body)
        .map_err(|error| super::unexpected_body(endpoint, status, &error))?;
    Ok(TokenPair {
        access_token: answer.access_token,
        refresh_token: answer
            .refresh_token
            .filter(|token| !token.is_empty())
            .unwrap_or_else(|| old.refresh_token.clone()),
        // A huge `expires_in` must not overflow: treat it as "unknown".
        expires_at: answer
            .expires_in
            .and_then(|secs| now.checked_add(Duration::from_secs(secs))),
    })
}

/// Whether a token expiring at `expires_at` should be refreshed at `now`.
fn needs_refresh(expires_at: Option<SystemTime>, now: SystemTime, ahead: Duration) -> bool {
    expires_at.is_some_and(|at| now + ahead >= at)
}

#[async_trait]
impl Credentials for OAuthRefresher {
    async fn authorization(&self) -> Result<Authorization, Error> {
        let mut current = self.current.lock().await;
        if needs_refresh(current.expires_at, SystemTime::now(), self.refresh_ahead) {
            self.refresh_locked(&mut current).await?;
        }
        Ok(Authorization::Bearer(current.access_token.clone()))
    }

    async fn rejected(&self, rejected: &Authorization) -> Result<bool, Error> {
        let mut current = self.current.lock().await;
        // Someone else refreshed while this call was in flight: just retry.
        if *rejected != Authorization::Bearer(current.access_token.clone()) {
            return Ok(true);
        }
        self.refresh_locked(&mut current).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(refresh: &str) -> TokenPair {
        TokenPair {
            access_token: Secret::new("old-access"),
            refresh_token: Secret::new(refresh),
            expires_at: None,
        }
    }

    #[test]
    fn refresh_is_due_within_the_margin_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let ahead = Duration::from_secs(60);
        assert!(!needs_refresh(None, now, ahead));
        assert!(!needs_refresh(
            Some(now + Duration::from_secs(61)),
            now,
            ahead
        ));
        assert!(needs_refresh(
            Some(now + Duration::from_secs(60)),
            now,
            ahead
        ));
        assert!(needs_refresh(
            Some(now - Duration::from_secs(1)),
            now,
            ahead
        ));
    }

    #[test]
    fn answer_without_refresh_token_keeps_the_old_one() {
        let now = SystemTime::UNIX_EPOCH;
        let body = br#"{"access_token":"new","expires_in":3600,"token_type":"Bearer"}"#;
        let new = parse_token_answer("POST t", 200, body, &pair("keep-me"), now).unwrap();
        assert_eq!(new.access_token.expose_secret(), "new");
        assert_eq!(new.refresh_token.expose_secret(), "keep-me");
        assert_eq!(new.expires_at, Some(now + Duration::from_secs(3600)));
    }

    #[test]
    fn absurd_lifetimes_do_not_overflow() {
        let body = br#"{"access_token":"a","expires_in":18446744073709551615}"#;
        let new = parse_token_answer("POST t", 200, body, &pair("r"), SystemTime::now()).unwrap();
        assert_eq!(new.expires_at, None);
    }

    #[test]
    fn rotated_refresh_token_replaces_the_old_one() {
        let body = br#"{"access_token":"a2","refresh_token":"r2","expires_in":60}"#;
        let new = parse_token_answer("POST t", 200, body, &pair("r1"), SystemTime::now()).unwrap();
        assert_eq!(new.refresh_token.expose_secret(), "r2");
    }

    #[test]
    fn refused_refresh_tokens_are_permanent_and_outages_retryable() {
        let body = br#"{"error":"invalid_grant","error_description":"bad refresh token"}"#;
        let error =
            parse_token_answer("POST t", 400, body, &pair("r"), SystemTime::now()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert!(error.to_string().contains("bad refresh token"));
        let error =
            parse_token_answer("POST t", 503, b"", &pair("r"), SystemTime::now()).unwrap_err();
        assert!(error.is_retryable());
    }
}
