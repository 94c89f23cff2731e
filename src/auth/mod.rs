//! The DevAPI side: credentials, the connection token, subscription tokens
//! and channel lookup.
//!
//! [`VkApi`] is a small REST client of `https://apidev.live.vkvideo.ru`. It
//! asks a [`Credentials`] source for the `Authorization` header on every call,
//! so an access token that is refreshed in the background (see
//! [`OAuthRefresher`]) is picked up without restarting anything. Request
//! building and response parsing are plain functions; only `send` does I/O.

mod chat;
mod oauth;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub(crate) use chat::reply_message;
pub use chat::{
    ChatSettings, CurrentUser, CurrentUserChannel, CurrentUserInfo, DEFAULT_SEND_INTERVAL, Message,
    TokenInfo, channel_slug, live_stream,
};
pub use oauth::{
    DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL, OAuthApp, OAuthRefresher, Pkce, TokenGrant,
    TokenPair, TokenStore, scope,
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

/// The longest pubsub channel name or VK slug accepted, in bytes (16 KiB):
/// far above any real one (VK's are a few tens of bytes; Centrifugo's
/// default `channel_max_length` is 255), and small enough that a request
/// naming it always fits in a URL, percent-encoded (HTTP's limit is 64 KiB).
pub const MAX_CHANNEL_NAME_BYTES: usize = 16 * 1024;

/// The most bytes of channel names one subscription-token request carries
/// (with [`SUBSCRIPTION_TOKEN_BATCH`] names at most): percent-encoded, at
/// most three times this, within HTTP's 64 KiB URL.
const SUBSCRIPTION_TOKEN_BATCH_BYTES: usize = 16 * 1024;

/// Checks that `name` can be a pubsub channel name: not empty, at most
/// [`MAX_CHANNEL_NAME_BYTES`], and free of commas (the token batch joins
/// names with them), whitespace and control characters. The error,
/// [`ErrorKind::InvalidChannel`], names the channel (its first 64
/// characters, and its length when longer).
///
/// ```
/// use vklive_pubsub::{auth::check_channel_name, ErrorKind};
/// assert!(check_channel_name("channel-chat:8845069").is_ok());
/// let error = check_channel_name("a,b").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::InvalidChannel);
/// assert!(check_channel_name(&"x".repeat(100_000)).is_err());
/// ```
pub fn check_channel_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_CHANNEL_NAME_BYTES {
        "is too long"
    } else if name.contains(',') {
        "holds a comma"
    } else if name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        "holds whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(invalid_channel("channel name", name, problem))
}

/// An [`ErrorKind::InvalidChannel`] error naming `name` (shortened when long).
pub(crate) fn invalid_channel(what: &str, name: &str, problem: &str) -> Error {
    const SHOWN: usize = 64;
    let shown: String = name.chars().take(SHOWN).collect();
    let more = if shown.len() < name.len() {
        format!("… ({} bytes)", name.len())
    } else {
        String::new()
    };
    Error::new(
        ErrorKind::InvalidChannel,
        format!(
            "{what} {shown:?}{more} {problem} (at most {MAX_CHANNEL_NAME_BYTES} bytes, no comma, whitespace or control character)"
        ),
    )
}

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
    fn header_value(&self) -> Result<reqwest::header::HeaderValue, Error> {
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
/// [`OAuthRefresher`] (a user token refreshed before it expires). Implement it
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
    chat: Arc<chat::ChatState>,
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

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
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

#[derive(Deserialize, Default)]
struct ApiErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
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
            chat: Arc::new(chat::ChatState::new(ChatSettings::default())),
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
        self.chat = Arc::new(chat::ChatState::new(settings));
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
    async fn get<T: DeserializeOwned>(
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
    async fn post(&self, path: &str, query: &[(&str, &str)], body: String) -> Result<(), Error> {
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

fn http_client(timeout: Duration) -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("vklive-pubsub/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| {
            Error::new(ErrorKind::InvalidArgument, "cannot build the HTTP client")
                .with_source(error)
        })
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
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
