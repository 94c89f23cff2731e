//! [`VkApi`]: the REST client of the DevAPI endpoints the connector needs
//! (connection and subscription tokens, channel lookup, recent chat). The
//! chat-sending side is in `chat.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::channel_name::check_channel_name;
use super::chat_pace::{ChatSettings, ChatState};
use super::credentials::{Authorization, Credentials};
use super::http::{
    MAX_RESPONSE_BYTES, http_client, parse_response, read_body, retry_after, transport_error,
};
use crate::error::{Error, ErrorKind};
use crate::event::ChannelInfo;
use crate::secret::Secret;

/// The DevAPI's REST base URL.
pub const DEFAULT_API_URL: &str = "https://apidev.live.vkvideo.ru";

/// How many channels one `subscription_token` request carries; longer lists
/// are split into several requests.
#[doc(hidden)] // internal: not part of the public API
pub const SUBSCRIPTION_TOKEN_BATCH: usize = 100;

/// How long one REST call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes of channel names one subscription-token request carries
/// (with [`SUBSCRIPTION_TOKEN_BATCH`] names at most): percent-encoded, at
/// most three times this, within HTTP's 64 KiB URL.
const SUBSCRIPTION_TOKEN_BATCH_BYTES: usize = 16 * 1024;

/// A client of the VK DevAPI endpoints the connector needs. Cheap to clone.
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use vklive_pubsub::auth::VkApi;
/// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
/// use vklive_pubsub::Authorization;
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 42, "tester");
/// emulator.add_channel("streamer", 7);
///
/// // By default VK's own API (DEFAULT_API_URL); here the emulator's.
/// let api = VkApi::new(&emulator.api_url(), Arc::new(Authorization::user("access-token")))?;
/// let info = api.channel("streamer").await?;
/// let chat = info.web_socket_channels.chat.clone().expect("a chat channel");
/// assert_eq!(chat, "api-channel-chat:7");
/// // Private channels need a subscription token; none in the answer means no access.
/// let private = info.web_socket_channels.private();
/// let tokens = api.subscription_tokens(&private).await?;
/// assert_eq!(tokens.len(), private.len());
/// let _connection_token = api.connection_token().await?; // a Secret: prints [redacted]
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct VkApi {
    http: reqwest::Client,
    /// What `http` gives each request (kept to build another like it).
    request_timeout: Duration,
    base: url::Url,
    credentials: Arc<dyn Credentials>,
    pub(super) chat: Arc<ChatState>,
}

impl std::fmt::Debug for VkApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only scheme, host, port and path: user info or a query may hold a secret.
        let mut shown = self.base.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.set_fragment(None);
        f.debug_struct("VkApi")
            .field("base", &shown.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TokenData {
    token: Secret,
}

#[derive(Debug, Deserialize)]
struct ChannelTokensData {
    #[serde(default)]
    channel_tokens: Option<Vec<ChannelToken>>,
}

#[derive(Debug, Deserialize)]
struct ChannelToken {
    channel: String,
    token: Secret,
}

#[derive(Deserialize)]
struct ChannelData {
    channel: ChannelInfo,
}

impl VkApi {
    /// A client of the API at `base_url` (use [`DEFAULT_API_URL`] for VK's).
    /// An `http://` URL to a host other than loopback is logged once at
    /// `warn`: the access token would travel in plaintext.
    pub fn new(base_url: &str, credentials: Arc<dyn Credentials>) -> Result<Self, Error> {
        let base = url::Url::parse(base_url).map_err(|error| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid API URL {base_url:?}: {error}"),
            )
        })?;
        crate::plaintext::warn_if_plaintext(base_url, "the VK API client");
        let http = http_client(REQUEST_TIMEOUT)?;
        Ok(VkApi {
            http,
            request_timeout: REQUEST_TIMEOUT,
            base,
            credentials,
            chat: Arc::new(ChatState::new(ChatSettings::default())),
        })
    }

    /// Paces and retries chat sends by `settings` instead of the defaults
    /// (see [`ChatSettings`]). The returned client starts with no cached
    /// stream ids and fresh rate limits; its clones share them.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use vklive_pubsub::auth::{Authorization, ChatSettings, VkApi, DEFAULT_API_URL};
    /// let api = VkApi::new(DEFAULT_API_URL, Arc::new(Authorization::user("token")))?
    ///     .with_chat_settings(ChatSettings { interval: Duration::from_secs(3), ..Default::default() });
    /// # Ok::<(), vklive_pubsub::Error>(())
    /// ```
    pub fn with_chat_settings(mut self, settings: ChatSettings) -> Self {
        self.chat = Arc::new(ChatState::new(settings));
        self
    }

    /// Gives every request at most `timeout` (default 10 s); a request that
    /// takes longer fails with [`ErrorKind::Timeout`], which is retryable.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        self.http = http_client(timeout)?;
        self.request_timeout = timeout;
        Ok(self)
    }

    /// A clone with a pool of HTTP connections of its own (same settings,
    /// same credentials and chat state), for a runtime of its own: a pooled
    /// connection lives on the runtime it was opened on and dies with it.
    pub(crate) fn with_own_connections(&self) -> Result<Self, Error> {
        Ok(VkApi {
            http: http_client(self.request_timeout)?,
            ..self.clone()
        })
    }

    /// The credentials source this client uses.
    pub fn credentials(&self) -> &Arc<dyn Credentials> {
        &self.credentials
    }

    /// `GET /v1/websocket/token`: a connection token for the pubsub.
    pub async fn connection_token(&self) -> Result<Secret, Error> {
        let data: TokenData = self.get("/v1/websocket/token", &[]).await?;
        Ok(data.token)
    }

    /// `GET /v1/websocket/subscription_token`: tokens for `channels`, split
    /// into requests of 100 channels (the most one carries) sent
    /// concurrently.
    ///
    /// A channel missing from the answer got no token for this user: that is
    /// VK's documented way of saying "no access", not an error. A name that
    /// fails [`check_channel_name`] is not asked for (logged at `warn`) and
    /// gets no token either. Applications
    /// get no subscription tokens at all, so with app credentials no request
    /// is made and the map is empty.
    pub async fn subscription_tokens(
        &self,
        channels: &[String],
    ) -> Result<HashMap<String, Secret>, Error> {
        // A name that cannot be a channel gets no token (as a channel
        // without access) instead of failing the batch for the others.
        let channels: Vec<String> = channels
            .iter()
            .filter(|name| match check_channel_name(name) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "no subscription token asked for this channel");
                    false
                }
            })
            .cloned()
            .collect();
        if channels.is_empty() || !self.credentials.authorization().await?.is_user() {
            return Ok(HashMap::new());
        }
        let requests = subscription_token_batches(&channels, SUBSCRIPTION_TOKEN_BATCH)
            .into_iter()
            .map(|batch| async move {
                self.get::<ChannelTokensData>(
                    "/v1/websocket/subscription_token",
                    &[("channels", batch.as_str())],
                )
                .await
            });
        let mut tokens = HashMap::new();
        for answer in futures::future::join_all(requests).await {
            for entry in answer?.channel_tokens.unwrap_or_default() {
                if !entry.token.is_empty() {
                    tokens.insert(entry.channel, entry.token);
                }
            }
        }
        Ok(tokens)
    }

    /// `GET /v1/channel?channel_url=SLUG`: the channel's id and its pubsub
    /// channel names.
    pub async fn channel(&self, slug: &str) -> Result<ChannelInfo, Error> {
        let data: ChannelData = self.get("/v1/channel", &[("channel_url", slug)]).await?;
        Ok(data.channel)
    }

    /// `GET /v1/chat/messages?channel_url=SLUG&limit=N`: recent chat messages
    /// of the channel, each the `data.chat_message` of a
    /// `channel_chat_message_send`. VK documents `limit` up to 200.
    ///
    /// The order of the answer is not documented (the emulator sends newest
    /// first): sort by `created_at` and `id` if order matters. A message that
    /// does not decode is skipped (logged at `debug`), so one odd message
    /// never costs the others; errors are those of [`VkApi::channel`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), vklive_pubsub::Error> {
    /// use std::sync::Arc;
    /// use vklive_pubsub::auth::{Authorization, DEFAULT_API_URL, VkApi};
    ///
    /// let api = VkApi::new(DEFAULT_API_URL, Arc::new(Authorization::user("access-token")))?;
    /// let mut messages = api.chat_messages("somechannel", 200).await?;
    /// messages.sort_by_key(|message| (message.created_at, message.id));
    /// for message in &messages {
    ///     println!("{}: {}", message.id, message.plain_text());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn chat_messages(
        &self,
        slug: &str,
        limit: u32,
    ) -> Result<Vec<crate::event::ChatMessage>, Error> {
        #[derive(Deserialize)]
        struct ChatMessagesData {
            #[serde(default)]
            chat_messages: Option<Vec<Box<serde_json::value::RawValue>>>,
        }
        let limit = limit.to_string();
        let data: ChatMessagesData = self
            .get(
                "/v1/chat/messages",
                &[("channel_url", slug), ("limit", limit.as_str())],
            )
            .await?;
        let raw = data.chat_messages.unwrap_or_default();
        let mut messages = Vec::with_capacity(raw.len());
        for (index, message) in raw.iter().enumerate() {
            match serde_json::from_str::<crate::event::ChatMessage>(message.get()) {
                Ok(message) => messages.push(message),
                // Only the error's class and position: the message's text
                // stays out of the log.
                Err(error) => tracing::debug!(
                    index,
                    class = ?error.classify(),
                    line = error.line(),
                    column = error.column(),
                    "GET /v1/chat/messages: skipped a message that does not decode"
                ),
            }
        }
        Ok(messages)
    }

    /// A GET with the current credentials; on 401, asks the credentials
    /// source once for fresh ones and retries.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, Error> {
        let endpoint = format!("GET {path}");
        let (status, retry_after, body) =
            self.call(reqwest::Method::GET, path, query, None).await?;
        parse_response(&endpoint, status, retry_after, &body)
    }

    /// A POST of a JSON `body`; any 2xx answer is success (VK answers `{}`),
    /// anything else a typed error. Retried once on 401 as [`VkApi::get`].
    pub(super) async fn post(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: String,
    ) -> Result<(), Error> {
        let endpoint = format!("POST {path}");
        let (status, retry_after, answer) = self
            .call(reqwest::Method::POST, path, query, Some(body))
            .await?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        parse_response::<serde::de::IgnoredAny>(&endpoint, status, retry_after, &answer).map(|_| ())
    }

    /// One request with the current credentials; on 401, asks the
    /// credentials source once for fresh ones and sends it again.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Error> {
        let authorization = self.credentials.authorization().await?;
        let answer = self
            .call_once(method.clone(), path, query, body.clone(), &authorization)
            .await?;
        if answer.0 == 401 && self.credentials.rejected(&authorization).await? {
            let fresh = self.credentials.authorization().await?;
            return self.call_once(method, path, query, body, &fresh).await;
        }
        Ok(answer)
    }

    async fn call_once(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
        authorization: &Authorization,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), Error> {
        let endpoint = format!("{method} {path}");
        let mut url = self.base.clone();
        url.set_path(path);
        let mut request = self.http.request(method, url).query(query).header(
            reqwest::header::AUTHORIZATION,
            authorization.header_value()?,
        );
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| transport_error(&endpoint, error))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = read_body(&endpoint, response, MAX_RESPONSE_BYTES).await?;
        tracing::debug!(%endpoint, status, "API answered");
        Ok((status, retry_after, body.to_vec()))
    }
}

/// Splits `channels` into comma-joined lists of at most `size` names and
/// [`SUBSCRIPTION_TOKEN_BATCH_BYTES`] bytes (a longer name goes alone).
pub(crate) fn subscription_token_batches(channels: &[String], size: usize) -> Vec<String> {
    let mut batches = Vec::new();
    let mut batch = String::new();
    let mut names = 0;
    for channel in channels {
        let full = names >= size.max(1)
            || batch.len() + 1 + channel.len() > SUBSCRIPTION_TOKEN_BATCH_BYTES;
        if names > 0 && full {
            batches.push(std::mem::take(&mut batch));
            names = 0;
        }
        if names > 0 {
            batch.push(',');
        }
        batch.push_str(channel);
        names += 1;
    }
    if names > 0 {
        batches.push(batch);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::MAX_CHANNEL_NAME_BYTES;

    #[test]
    fn long_channel_lists_are_split_into_batches() {
        let channels: Vec<String> = (0..250).map(|i| format!("c:{i}")).collect();
        let batches = subscription_token_batches(&channels, 100);
        assert_eq!(batches.len(), 3);
        assert!(batches[0].starts_with("c:0,c:1,"));
        assert_eq!(batches[2].split(',').count(), 50);
        assert!(subscription_token_batches(&[], 100).is_empty());
    }

    #[test]
    fn long_names_are_split_into_batches_that_fit_in_a_url() {
        let channels: Vec<String> = (0..10)
            .map(|i| format!("c:{i}-{}", "x".repeat(10_000)))
            .collect();
        let batches = subscription_token_batches(&channels, 100);
        assert_eq!(batches.len(), 10);
        assert!(
            batches
                .iter()
                .all(|b| b.len() <= SUBSCRIPTION_TOKEN_BATCH_BYTES)
        );
        let longest = vec!["y".repeat(MAX_CHANNEL_NAME_BYTES), String::from("z")];
        assert_eq!(subscription_token_batches(&longest, 100).len(), 2);
    }

    #[test]
    fn error_bodies_become_typed_errors_naming_endpoint_status_and_description() {
        let body = br#"{"error":"unauthorized","error_description":"Not authorized"}"#;
        let error =
            parse_response::<TokenData>("GET /v1/websocket/token", 401, None, body).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Unauthorized);
        assert!(!error.is_retryable());
        assert_eq!(error.status(), Some(401));
        assert_eq!(
            error.to_string(),
            "GET /v1/websocket/token: HTTP 401 unauthorized: Not authorized"
        );
    }

    #[test]
    fn rate_limits_and_server_errors_are_retryable() {
        let error = parse_response::<TokenData>(
            "GET /v1/websocket/token",
            429,
            Some(Duration::from_secs(2)),
            br#"{"error":"ratelimit_exceeded"}"#,
        )
        .unwrap_err();
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));
        let error = parse_response::<TokenData>("GET /x", 503, None, b"<html>").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ServerUnavailable);
        assert_eq!(error.to_string(), "GET /x: HTTP 503");
    }

    #[test]
    fn missing_channel_tokens_are_not_an_error() {
        let body = br#"{"data":{"channel_tokens":[{"channel":"a","token":"t"}]}}"#;
        let data = parse_response::<ChannelTokensData>("GET /s", 200, None, body).unwrap();
        let tokens = data.channel_tokens.unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].channel, "a");
        let body = br#"{"data":{"channel_tokens":null}}"#;
        let data = parse_response::<ChannelTokensData>("GET /s", 200, None, body).unwrap();
        assert!(data.channel_tokens.is_none());
    }

    #[test]
    fn unexpected_success_bodies_are_protocol_errors_without_the_body() {
        for body in [
            &br#"{"data":{"tok":"secret-value"}}"#[..],
            br#"{"data":"secret-value"}"#,
            br#"{"data":{"token":["secret-value"]}}"#,
        ] {
            let error = parse_response::<TokenData>("GET /t", 200, None, body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Protocol);
            assert!(!error.to_string().contains("secret-value"), "{error}");
        }
    }

    #[test]
    fn debug_never_shows_user_info_of_the_base_url() {
        let api = VkApi::new(
            "http://bob:hunter2@127.0.0.1:9/api?key=k",
            Arc::new(Authorization::user("t")),
        )
        .unwrap();
        let printed = format!("{api:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("bob"), "{printed}");
        assert!(printed.contains("127.0.0.1:9"), "{printed}");
    }

    /// The REST clients warn about their own URLs when they are built.
    #[test]
    fn api_and_oauth_clients_warn_about_plaintext_urls() {
        let output = crate::plaintext::tests::captured(|| {
            let credentials = Arc::new(Authorization::user("t"));
            VkApi::new("http://api.plaintext.test/?access_token=zzz", credentials).unwrap();
            let pair = crate::auth::TokenPair {
                access_token: crate::Secret::new("a"),
                refresh_token: crate::Secret::new("r"),
                expires_at: None,
            };
            let _ = crate::auth::OAuthRefresher::new("id", "secret", pair)
                .token_url("http://oauth.plaintext.test/oauth/server/token");
        });
        assert!(output.contains("http://api.plaintext.test/"), "{output}");
        assert!(
            output.contains("http://oauth.plaintext.test/oauth/server/token"),
            "{output}"
        );
        assert!(!output.contains("zzz"), "{output}");
    }
}
