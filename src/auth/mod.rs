//! The DevAPI side: credentials, the connection token, subscription tokens
//! and channel lookup.
//!
//! [`VkApi`] is a small REST client of `https://apidev.live.vkvideo.ru`. It
//! asks a [`Credentials`] source for the `Authorization` header on every call,
//! so an access token that is refreshed in the background (see
//! [`OAuthRefresher`]) is picked up without restarting anything. Request
//! building and response parsing are plain functions; only `send` does I/O.
//!
//! The files, each importing only those above it: `channel_name` (which
//! names may be channels), `credentials` (the `Authorization` header and its
//! source), `http` (bounded reads, typed errors), `chat_pace` (the per-channel
//! pace of chat sends), `api` ([`VkApi`] and its token and channel calls),
//! `chat` (sending chat, reward demands, token checks), `oauth` (tokens from
//! VK's OAuth server). This file only re-exports.

mod api;
mod channel_name;
mod chat;
mod chat_pace;
mod credentials;
mod http;
mod oauth;

pub use api::{DEFAULT_API_URL, SUBSCRIPTION_TOKEN_BATCH, VkApi};
pub use channel_name::{MAX_CHANNEL_NAME_BYTES, check_channel_name};
pub(crate) use chat::reply_message;
pub use chat::{
    CurrentUser, CurrentUserChannel, CurrentUserInfo, Message, TokenInfo, channel_slug, live_stream,
};
pub use chat_pace::{ChatSettings, DEFAULT_SEND_INTERVAL};
pub use credentials::{Authorization, Credentials};
pub use http::{MAX_RESPONSE_BYTES, MAX_RETRY_AFTER};
pub use oauth::{
    DEFAULT_AUTHORIZE_URL, DEFAULT_TOKEN_URL, OAuthApp, OAuthRefresher, Pkce, TokenGrant,
    TokenPair, TokenStore, scope,
};
