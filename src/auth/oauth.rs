//! Getting and keeping a user token: [`OAuthApp`] runs the authorization-code
//! flow (authorize URL, redirect check, code exchange), and
//! [`OAuthRefresher`] keeps the access token fresh with its refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::credentials::{Authorization, Credentials};
use super::http::{
    MAX_RESPONSE_BYTES, parse_response, read_body, transport_error, unexpected_body,
};
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
    /// The docs' name (implicit and client-credentials flows): a Unix time,
    /// or seconds from issue for small values.
    #[serde(default)]
    expire_time: Option<u64>,
    #[serde(default)]
    scope: Option<ScopeList>,
    #[serde(default)]
    token_type: Option<String>,
}

/// `scope` as a space- or comma-separated string, or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum ScopeList {
    Text(String),
    List(Vec<String>),
}

impl ScopeList {
    fn into_vec(self) -> Vec<String> {
        match self {
            ScopeList::Text(text) => split_scopes(&text),
            ScopeList::List(list) => list.iter().flat_map(|s| split_scopes(s)).collect(),
        }
    }
}

fn split_scopes(text: &str) -> Vec<String> {
    text.split([' ', ','])
        .filter(|scope| !scope.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Values of `expire_time` below this are a lifetime in seconds; at or
/// above it, a Unix time (2001-09-09).
const UNIX_TIME_FLOOR: u64 = 1_000_000_000;

/// When a token answer's lifetime ends: `expires_in` seconds from `now`, or
/// `expire_time` (a Unix time, or seconds from `now` when small). A value
/// that overflows is "unknown".
fn expiry(
    expires_in: Option<u64>,
    expire_time: Option<u64>,
    now: SystemTime,
) -> Option<SystemTime> {
    if let Some(secs) = expires_in {
        return now.checked_add(Duration::from_secs(secs));
    }
    match expire_time? {
        0 => None,
        secs if secs < UNIX_TIME_FLOOR => now.checked_add(Duration::from_secs(secs)),
        at => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(at)),
    }
}

/// The HTTP client of the token endpoint: a 10 s timeout, and no redirect
/// followed (a `307` would send the code or the refresh token, and the
/// client secret, wherever it points; the answer is an error instead).
fn token_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

impl OAuthRefresher {
    /// A refresher for the app `client_id`/`client_secret`, starting from `pair`.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        pair: TokenPair,
    ) -> Self {
        OAuthRefresher {
            http: token_client(),
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
        crate::plaintext::warn_if_plaintext(&self.token_url, "the OAuth refresher");
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
            .map_err(|error| transport_error(endpoint, error))?;
        let status = response.status().as_u16();
        let body = read_body(endpoint, response, MAX_RESPONSE_BYTES).await?;
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
        // A refused refresh token (400 invalid_grant) cannot get better by retrying.
        return Err(token_error(endpoint, status, body));
    }
    let grant = parse_grant(endpoint, status, body, now)?;
    Ok(TokenPair {
        refresh_token: grant
            .pair
            .refresh_token
            .clone()
            .filter(|token| !token.is_empty())
            .unwrap_or_else(|| old.refresh_token.clone()),
        access_token: grant.pair.access_token,
        expires_at: grant.pair.expires_at,
    })
}

/// A successful token endpoint answer, refresh token still optional.
struct ParsedGrant {
    pair: PartialPair,
    scopes: Vec<String>,
    token_type: Option<String>,
}

struct PartialPair {
    access_token: Secret,
    refresh_token: Option<Secret>,
    expires_at: Option<SystemTime>,
}

fn parse_grant(
    endpoint: &str,
    status: u16,
    body: &[u8],
    now: SystemTime,
) -> Result<ParsedGrant, Error> {
    let answer: TokenResponse =
        serde_json::from_slice(body).map_err(|error| unexpected_body(endpoint, status, &error))?;
    Ok(ParsedGrant {
        pair: PartialPair {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_at: expiry(answer.expires_in, answer.expire_time, now),
        },
        scopes: answer.scope.map(ScopeList::into_vec).unwrap_or_default(),
        token_type: answer.token_type,
    })
}

/// An error answer of the token endpoint as a typed error: a refused grant
/// (400, e.g. `invalid_grant`) is permanent.
fn token_error(endpoint: &str, status: u16, body: &[u8]) -> Error {
    // OAuth errors use the same {error, error_description} shape as the API.
    let error = parse_response::<serde::de::IgnoredAny>(endpoint, status, None, body)
        .err()
        .unwrap_or_else(|| Error::new(ErrorKind::from_status(status), endpoint));
    let kind = if status == 400 {
        ErrorKind::Unauthorized
    } else {
        error.kind()
    };
    let mut message = error.to_string();
    if (300..400).contains(&status) {
        message.push_str(" (a redirect: not followed, the token endpoint must answer itself)");
    }
    Error::new(kind, message).with_status(status)
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

/// A PKCE verifier and its S256 challenge (RFC 7636), for one
/// authorization-code flow: see [`OAuthApp::authorization_url_with_pkce`].
/// `Debug` never shows the verifier.
///
/// ```
/// use vklive_pubsub::auth::Pkce;
/// // RFC 7636, appendix B.
/// let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
/// assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// assert_eq!(Pkce::new()?.verifier().expose_secret().len(), 43);
/// # Ok::<(), vklive_pubsub::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkce {
    verifier: Secret,
}

impl Pkce {
    /// A fresh verifier: 32 random bytes, base64url (43 characters).
    pub fn new() -> Result<Pkce, Error> {
        Ok(Pkce {
            verifier: Secret::new(random_base64url()?),
        })
    }

    /// A verifier kept from earlier (43 to 128 characters of
    /// `[A-Za-z0-9-._~]`, RFC 7636 §4.1).
    pub fn from_verifier(verifier: impl Into<Secret>) -> Pkce {
        Pkce {
            verifier: verifier.into(),
        }
    }

    /// The verifier, sent with the code exchange.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// `BASE64URL(SHA-256(verifier))`, sent on the authorization page.
    pub fn challenge(&self) -> String {
        use base64::Engine as _;
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            self.verifier.expose_secret().as_bytes(),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

/// 32 bytes from the system's random source, base64url without padding.
fn random_base64url() -> Result<String, Error> {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                "the system's random source failed",
            )
        })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// VK's OAuth authorization page (see [`OAuthApp::authorize_url`] to use another).
pub const DEFAULT_AUTHORIZE_URL: &str = "https://auth.live.vkvideo.ru/app/oauth2/authorize";

/// The documented OAuth scopes, and which feature needs which.
///
/// Reading public chat and channel events needs no scope beyond a user
/// token; private channels need the token of a user who may read them.
///
/// ```
/// use vklive_pubsub::auth::{scope, OAuthApp};
/// let app = OAuthApp::new("id", "secret", "http://localhost/cb");
/// let url = app.authorization_url(&[scope::CHAT_MESSAGE_SEND, scope::CHANNEL_POINTS_REWARDS_DEMANDS], "s");
/// assert!(url.contains("scope=chat%3Amessage%3Asend%2Cchannel%3Apoints%3Arewards%3Ademands"));
/// ```
pub mod scope {
    /// Send chat messages ([`VkApi::send_message`](crate::auth::VkApi::send_message)).
    pub const CHAT_MESSAGE_SEND: &str = "chat:message:send";
    /// Read and edit chat settings.
    pub const CHAT_SETTINGS: &str = "chat:settings";
    /// Accept and reject reward demands
    /// ([`VkApi::accept_demands`](crate::auth::VkApi::accept_demands)).
    pub const CHANNEL_POINTS_REWARDS_DEMANDS: &str = "channel:points:rewards:demands";
    /// Manage channel-point rewards.
    pub const CHANNEL_POINTS_REWARDS: &str = "channel:points:rewards";
    /// Channel points.
    pub const CHANNEL_POINTS: &str = "channel:points";
    /// Channel roles.
    pub const CHANNEL_ROLES: &str = "channel:roles";
    /// Stream settings.
    pub const CHANNEL_STREAM_SETTINGS: &str = "channel:stream:settings";
    /// Stream credentials (keys).
    pub const CHANNEL_CREDENTIALS: &str = "channel:credentials";
    /// What a chat bot that also handles redemptions asks for.
    pub const BOT: [&str; 2] = [CHAT_MESSAGE_SEND, CHANNEL_POINTS_REWARDS_DEMANDS];
}

/// What the token endpoint granted for an authorization code; see
/// [`OAuthApp::exchange_code`].
///
/// ```no_run
/// # async fn run(app: vklive_pubsub::auth::OAuthApp, code: vklive_pubsub::Secret) -> Result<(), vklive_pubsub::Error> {
/// use vklive_pubsub::auth::scope;
/// let grant = app.exchange_code(&code).await?;
/// if !grant.scopes.iter().any(|s| s == scope::CHAT_MESSAGE_SEND) {
///     eprintln!("this token cannot send chat");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The access token, its refresh token and its expiry: hand it to
    /// [`OAuthApp::refresher`] to keep it fresh.
    pub pair: TokenPair,
    /// The granted scopes (VK separates them with spaces or commas; both
    /// are read). Empty when the answer named none.
    pub scopes: Vec<String>,
    /// `token_type`, normally `Bearer`.
    pub token_type: Option<String>,
}

/// A registered VK application running the OAuth authorization-code flow:
///
/// 1. send the user to [`OAuthApp::authorization_url`] with the scopes you
///    need and a random `state` ([`OAuthApp::random_state`]; PKCE, opt-in:
///    [`OAuthApp::authorization_url_with_pkce`]);
/// 2. VK redirects to your `redirect_uri` with `code` and `state`:
///    [`OAuthApp::code_from_redirect`] checks the state and takes the code;
/// 3. [`OAuthApp::exchange_code`] trades it for a token pair;
/// 4. [`OAuthApp::refresher`] keeps that pair fresh as the connector's
///    [`Credentials`](crate::Credentials).
///
/// ```no_run
/// # async fn run() -> Result<(), vklive_pubsub::Error> {
/// use vklive_pubsub::auth::{scope, OAuthApp};
/// let app = OAuthApp::new("my-client-id", "my-client-secret", "http://localhost:8765/callback");
/// let state = OAuthApp::random_state()?; // a fresh one per flow, kept for the callback
/// println!("open {}", app.authorization_url(&scope::BOT, &state));
/// let redirected_to = format!("http://localhost:8765/callback?code=abc&state={state}");
/// let code = app.code_from_redirect(&redirected_to, &state)?;
/// let grant = app.exchange_code(&code).await?;
/// let credentials = app.refresher(grant.pair);
/// let (_client, _events) = vklive_pubsub::Client::builder(credentials).connect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OAuthApp {
    http: reqwest::Client,
    client_id: String,
    client_secret: Secret,
    redirect_uri: String,
    authorize_url: String,
    token_url: String,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl OAuthApp {
    /// The app `client_id`/`client_secret`, whose registered redirect URI
    /// is `redirect_uri` (it must match exactly). `Debug` never shows the secret.
    ///
    /// ```
    /// use vklive_pubsub::auth::OAuthApp;
    /// let app = OAuthApp::new("id", "s3cret", "http://localhost/cb")
    ///     .authorize_url("http://127.0.0.1:8099/app/oauth2/authorize")
    ///     .token_url("http://127.0.0.1:8099/oauth/server/token");
    /// assert!(!format!("{app:?}").contains("s3cret"));
    /// assert!(app.authorization_url(&[], "s").starts_with("http://127.0.0.1:8099/app/oauth2/authorize?"));
    /// ```
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        OAuthApp {
            http: token_client(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            authorize_url: DEFAULT_AUTHORIZE_URL.to_owned(),
            token_url: DEFAULT_TOKEN_URL.to_owned(),
        }
    }

    /// Uses another authorization page (the emulator's, in tests).
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize_url = url.into();
        self
    }

    /// Uses another token endpoint (the emulator's, in tests). An `http://`
    /// URL to a host other than loopback is logged at `warn` here, before
    /// anything is sent: the code, the refresh token and the client secret
    /// would travel in plaintext.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = url.into();
        crate::plaintext::warn_if_plaintext(&self.token_url, "the OAuth app");
        self
    }

    /// A random `state` for [`OAuthApp::authorization_url`]: 32 bytes from
    /// the system's random source, base64url (43 characters). Keep it for
    /// [`OAuthApp::code_from_redirect`]; a fresh one for every flow.
    ///
    /// ```
    /// use vklive_pubsub::auth::OAuthApp;
    /// let state = OAuthApp::random_state()?;
    /// assert_eq!(state.len(), 43);
    /// assert_ne!(state, OAuthApp::random_state()?);
    /// # Ok::<(), vklive_pubsub::Error>(())
    /// ```
    pub fn random_state() -> Result<String, Error> {
        random_base64url()
    }

    /// Where to send the user: the authorization page with `client_id`,
    /// `redirect_uri`, `response_type=code`, the scopes comma-separated (as
    /// VK documents) and `state`.
    ///
    /// ```
    /// use vklive_pubsub::auth::{scope, OAuthApp};
    /// let app = OAuthApp::new("id", "secret", "http://localhost/cb");
    /// let url = app.authorization_url(&[scope::CHAT_MESSAGE_SEND], "xyz");
    /// assert!(url.starts_with("https://auth.live.vkvideo.ru/app/oauth2/authorize?client_id=id&"));
    /// assert!(url.contains("&scope=chat%3Amessage%3Asend&state=xyz"));
    /// ```
    pub fn authorization_url(&self, scopes: &[&str], state: &str) -> String {
        self.authorization_url_for(scopes, state, None)
    }

    /// [`OAuthApp::authorization_url`] with PKCE (RFC 7636):
    /// `code_challenge` and `code_challenge_method=S256` added. Exchange the
    /// code with [`OAuthApp::exchange_code_with_pkce`] and the same `pkce`.
    ///
    /// VK does not document PKCE (one public client sends it): it is opt-in,
    /// on the assumption that VK ignores or honours it. A server that
    /// honours it refuses a stolen code without the verifier.
    ///
    /// ```
    /// use vklive_pubsub::auth::{scope, OAuthApp, Pkce};
    /// let app = OAuthApp::new("id", "secret", "http://localhost/cb");
    /// let pkce = Pkce::new()?;
    /// let url = app.authorization_url_with_pkce(&scope::BOT, &OAuthApp::random_state()?, &pkce);
    /// assert!(url.contains(&format!("&code_challenge={}&code_challenge_method=S256", pkce.challenge())));
    /// # Ok::<(), vklive_pubsub::Error>(())
    /// ```
    pub fn authorization_url_with_pkce(&self, scopes: &[&str], state: &str, pkce: &Pkce) -> String {
        self.authorization_url_for(scopes, state, Some(pkce))
    }

    fn authorization_url_for(&self, scopes: &[&str], state: &str, pkce: Option<&Pkce>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes.join(","))
            .append_pair("state", state);
        if let Some(pkce) = pkce {
            query
                .append_pair("code_challenge", &pkce.challenge())
                .append_pair("code_challenge_method", "S256");
        }
        let query = query.finish();
        let separator = if self.authorize_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{query}", self.authorize_url)
    }

    /// The `code` of the URL VK redirected the user to, after checking that
    /// its `state` is `expected_state` (anything else may be a forged
    /// request). A refusal (`error=access_denied`) is
    /// [`ErrorKind::Forbidden`]; a missing code or a wrong state
    /// [`ErrorKind::InvalidArgument`].
    ///
    /// ```
    /// use vklive_pubsub::auth::OAuthApp;
    /// let app = OAuthApp::new("id", "secret", "http://localhost/cb");
    /// assert_eq!(app.code_from_redirect("http://localhost/cb?code=c1&state=s", "s").unwrap().expose_secret(), "c1");
    /// assert!(app.code_from_redirect("http://localhost/cb?code=c1&state=other", "s").is_err());
    /// ```
    pub fn code_from_redirect(
        &self,
        redirected_to: &str,
        expected_state: &str,
    ) -> Result<Secret, Error> {
        let url = url::Url::parse(redirected_to).map_err(|error| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("invalid redirect URL: {error}"),
            )
        })?;
        let field = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        if field("state").as_deref() != Some(expected_state) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the redirect's state is not the one sent: ignoring it",
            ));
        }
        if let Some(error) = field("error") {
            let description = field("error_description").unwrap_or_default();
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("authorization refused: {error} {description}")
                    .trim_end()
                    .to_owned(),
            ));
        }
        match field("code").filter(|code| !code.is_empty()) {
            Some(code) => Ok(Secret::from(code)),
            None => Err(Error::new(
                ErrorKind::InvalidArgument,
                "the redirect carries no code",
            )),
        }
    }

    /// `POST /oauth/server/token` with `grant_type=authorization_code`, the
    /// code and the redirect URI, authenticated with the app's Basic
    /// credentials. A refused code is [`ErrorKind::Unauthorized`]. The
    /// lifetime is read from `expires_in` or `expire_time`.
    ///
    /// ```no_run
    /// # async fn run(app: vklive_pubsub::auth::OAuthApp) -> Result<(), vklive_pubsub::Error> {
    /// let grant = app.exchange_code(&"code-from-the-redirect".into()).await?;
    /// println!("scopes: {:?}", grant.scopes);
    /// # Ok(()) }
    /// ```
    pub async fn exchange_code(&self, code: &Secret) -> Result<TokenGrant, Error> {
        self.exchange(code, None).await
    }

    /// [`OAuthApp::exchange_code`] for a code got through
    /// [`OAuthApp::authorization_url_with_pkce`]: the form also carries
    /// `code_verifier`.
    ///
    /// ```no_run
    /// # async fn run(app: vklive_pubsub::auth::OAuthApp, pkce: vklive_pubsub::auth::Pkce) -> Result<(), vklive_pubsub::Error> {
    /// let grant = app.exchange_code_with_pkce(&"code-from-the-redirect".into(), &pkce).await?;
    /// # Ok(()) }
    /// ```
    pub async fn exchange_code_with_pkce(
        &self,
        code: &Secret,
        pkce: &Pkce,
    ) -> Result<TokenGrant, Error> {
        self.exchange(code, Some(pkce)).await
    }

    async fn exchange(&self, code: &Secret, pkce: Option<&Pkce>) -> Result<TokenGrant, Error> {
        let endpoint = "POST /oauth/server/token";
        crate::plaintext::warn_if_plaintext(&self.token_url, "the OAuth app");
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        if let Some(pkce) = pkce {
            form.push(("code_verifier", pkce.verifier.expose_secret()));
        }
        let response = self
            .http
            .post(&self.token_url)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&form)
            .send()
            .await
            .map_err(|error| transport_error(endpoint, error))?;
        let status = response.status().as_u16();
        let body = read_body(endpoint, response, MAX_RESPONSE_BYTES).await?;
        if !(200..300).contains(&status) {
            return Err(token_error(endpoint, status, &body));
        }
        let grant = parse_grant(endpoint, status, &body, SystemTime::now())?;
        Ok(TokenGrant {
            pair: TokenPair {
                access_token: grant.pair.access_token,
                refresh_token: grant.pair.refresh_token.unwrap_or_else(|| Secret::new("")),
                expires_at: grant.pair.expires_at,
            },
            scopes: grant.scopes,
            token_type: grant.token_type,
        })
    }

    /// Credentials that keep `pair` fresh through this app's token endpoint.
    ///
    /// ```no_run
    /// # async fn run(app: vklive_pubsub::auth::OAuthApp, grant: vklive_pubsub::auth::TokenGrant) {
    /// let client = vklive_pubsub::Client::builder(app.refresher(grant.pair));
    /// # }
    /// ```
    pub fn refresher(&self, pair: TokenPair) -> OAuthRefresher {
        OAuthRefresher::new(self.client_id.clone(), self.client_secret.clone(), pair)
            .token_url(self.token_url.clone())
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

    /// Runs `body` with `warn` lines captured; what was logged.
    fn warnings_of(body: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::prelude::*;
        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false),
        );
        tracing::subscriber::with_default(subscriber, || {
            // A callsite first hit by another test's thread may cache "never".
            tracing::callsite::rebuild_interest_cache();
            body()
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_plaintext_token_url_is_warned_about_before_anything_is_sent() {
        let logged = warnings_of(|| {
            let _app = OAuthApp::new("id", "secret", "http://localhost/cb")
                .token_url("http://192.0.2.24/oauth/server/token");
        });
        assert!(logged.contains("WARN"), "{logged}");
        assert!(logged.contains("192.0.2.24"), "{logged}");
    }

    #[test]
    fn random_states_and_verifiers_are_long_url_safe_and_fresh() {
        let states: Vec<String> = (0..8).map(|_| OAuthApp::random_state().unwrap()).collect();
        for state in &states {
            assert_eq!(state.len(), 43);
            assert!(
                state
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{state}"
            );
        }
        let mut unique = states.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), states.len());
        let pkce = Pkce::new().unwrap();
        assert_ne!(pkce, Pkce::new().unwrap());
        assert!(!format!("{pkce:?}").contains(pkce.verifier().expose_secret()));
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        let pkce = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let app = OAuthApp::new("id", "secret", "http://localhost/cb");
        let url = app.authorization_url_with_pkce(&[], "s", &pkce);
        assert!(
            url.ends_with(
                "&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
            ),
            "{url}"
        );
        assert!(!app.authorization_url(&[], "s").contains("code_challenge"));
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
    fn lifetimes_come_from_expires_in_or_expire_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_an_hour = Some(now + Duration::from_secs(3600));
        assert_eq!(expiry(Some(3600), None, now), in_an_hour);
        assert_eq!(expiry(None, Some(3600), now), in_an_hour);
        assert_eq!(expiry(None, Some(1_700_003_600), now), in_an_hour);
        assert_eq!(expiry(None, None, now), None);
        let body =
            br#"{"access_token":"a","expire_time":60,"scope":"chat:message:send channel:points"}"#;
        let grant = parse_grant("POST t", 200, body, now).unwrap();
        assert_eq!(grant.pair.expires_at, Some(now + Duration::from_secs(60)));
        assert_eq!(grant.scopes, ["chat:message:send", "channel:points"]);
    }

    #[test]
    fn scopes_may_be_comma_or_space_separated_or_a_list() {
        for body in [
            &br#"{"access_token":"a","scope":"a,b"}"#[..],
            br#"{"access_token":"a","scope":"a b"}"#,
            br#"{"access_token":"a","scope":" a, b "}"#,
            br#"{"access_token":"a","scope":["a","b"]}"#,
        ] {
            let grant = parse_grant("POST t", 200, body, SystemTime::now()).unwrap();
            assert_eq!(grant.scopes, ["a", "b"]);
        }
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
