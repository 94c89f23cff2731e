//! Users, apps, access and refresh tokens, and the pubsub tokens issued
//! for them.

use std::collections::HashSet;

use tokio::time::{Duration, Instant};

use super::wire::expired;
use super::{
    AccessToken, Caller, ConnToken, RefreshGrant, State, SubToken, Subject, TOKEN_PRUNE_THRESHOLD,
};
use crate::emulator::clock::unix_now;
use crate::emulator::names::namespace_privacy;
use crate::emulator::random::random_string;
use crate::protocol::codes;

impl State {
    pub(crate) fn add_user(&mut self, access_token: &str, user_id: u64, nick: &str) {
        self.first_user.get_or_insert(user_id);
        self.users.insert(user_id, nick.to_owned());
        self.revoked_access_tokens.remove(access_token);
        self.access_tokens.insert(
            access_token.to_owned(),
            AccessToken {
                user_id,
                expires_at: None,
                scopes: None,
            },
        );
    }

    pub(crate) fn add_app(&mut self, client_id: &str, client_secret: &str) {
        self.apps
            .insert(client_id.to_owned(), client_secret.to_owned());
    }

    pub(crate) fn add_refresh_token(&mut self, refresh_token: &str, user_id: u64, client_id: &str) {
        self.refresh_tokens.insert(
            refresh_token.to_owned(),
            RefreshGrant {
                user_id,
                client_id: client_id.to_owned(),
                scopes: None,
            },
        );
    }

    pub(crate) fn revoke_access_token(&mut self, access_token: &str) {
        let user = self.access_tokens.remove(access_token).map(|t| t.user_id);
        self.revoked_access_tokens.insert(access_token.to_owned());
        if let Some(user_id) = user {
            let victims: Vec<u64> = self
                .connections
                .iter()
                .filter(|(_, entry)| entry.subject == Some(Subject::User(user_id)))
                .map(|(id, _)| *id)
                .collect();
            for id in victims {
                self.close_connection(id, codes::CLOSE_INVALID_TOKEN, "invalid token");
            }
        }
    }

    pub(super) fn is_revoked(&self, issued_by: &Option<String>) -> bool {
        issued_by
            .as_ref()
            .is_some_and(|token| self.revoked_access_tokens.contains(token))
    }

    /// Resolves an `Authorization` header value.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Option<Caller> {
        use base64::Engine as _;
        let header = header?.trim();
        let (scheme, value) = header.split_once(' ')?;
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = self.access_tokens.get(value)?;
            if expired(token.expires_at, Instant::now()) {
                return None;
            }
            Some(Caller::User {
                user_id: token.user_id,
                access_token: value.to_owned(),
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (client_id, secret) = decoded.split_once(':')?;
            self.app_valid(client_id, secret).then(|| Caller::App {
                client_id: client_id.to_owned(),
            })
        } else {
            None
        }
    }

    pub(crate) fn app_known(&self, client_id: &str) -> bool {
        self.apps.contains_key(client_id)
    }

    pub(crate) fn app_valid(&self, client_id: &str, secret: &str) -> bool {
        self.apps.get(client_id).is_some_and(|s| s == secret)
    }

    pub(super) fn token_expiry(&mut self, ttl: Option<Duration>) -> Option<Instant> {
        let now = Instant::now();
        if self.expire_next > 0 {
            self.expire_next -= 1;
            return Some(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
        }
        ttl.map(|ttl| now + ttl)
    }

    pub(super) fn prune_tokens(&mut self) {
        let now = Instant::now();
        let grace = self.config.expiry_grace;
        let stale = |at: Option<Instant>| at.is_some_and(|at| at + grace < now);
        if self.conn_tokens.len() > TOKEN_PRUNE_THRESHOLD {
            self.conn_tokens.retain(|_, t| !stale(t.expires_at));
        }
        if self.sub_tokens.len() > TOKEN_PRUNE_THRESHOLD {
            self.sub_tokens.retain(|_, t| !stale(t.expires_at));
        }
    }

    pub(crate) fn issue_connection_token(
        &mut self,
        subject: Subject,
        issued_by: Option<String>,
        ttl: Option<Duration>,
    ) -> String {
        self.prune_tokens();
        let token = format!("emu-conn-{}", random_string(32));
        let expires_at = self.token_expiry(ttl);
        self.conn_tokens.insert(
            token.clone(),
            ConnToken {
                subject,
                expires_at,
                issued_by,
            },
        );
        token
    }

    pub(crate) fn issue_connection_token_for(
        &mut self,
        user_id: u64,
        ttl: Option<Duration>,
    ) -> String {
        let ttl = ttl.or(self.config.token_ttl);
        self.issue_connection_token(Subject::User(user_id), None, ttl)
    }

    pub(super) fn issue_subscription_token(
        &mut self,
        user_id: u64,
        channel: &str,
        issued_by: Option<String>,
        ttl: Option<Duration>,
    ) -> String {
        self.prune_tokens();
        let token = format!("emu-sub-{}", random_string(32));
        let expires_at = self.token_expiry(ttl);
        self.sub_tokens.insert(
            token.clone(),
            SubToken {
                user_id,
                channel: channel.to_owned(),
                expires_at,
                issued_by,
            },
        );
        token
    }

    pub(crate) fn issue_subscription_token_for(
        &mut self,
        user_id: u64,
        channel: &str,
        ttl: Option<Duration>,
    ) -> String {
        let ttl = ttl.or(self.config.token_ttl);
        self.issue_subscription_token(user_id, channel, None, ttl)
    }

    /// Tokens for the requested channels the user may read, in request order.
    pub(crate) fn subscription_tokens(
        &mut self,
        user_id: u64,
        access_token: &str,
        channels: &[String],
    ) -> Vec<(String, String)> {
        let ttl = self.config.token_ttl;
        let mut seen = HashSet::new();
        let mut tokens = Vec::new();
        for channel in channels {
            if namespace_privacy(channel).is_none()
                || self.denied.contains(&(user_id, channel.clone()))
                || !seen.insert(channel.clone())
            {
                continue;
            }
            let token =
                self.issue_subscription_token(user_id, channel, Some(access_token.to_owned()), ttl);
            tokens.push((channel.clone(), token));
        }
        tokens
    }

    /// Exchanges a refresh token: `Ok((access, refresh, expires_in))`, or
    /// `Err(())` for an unknown token or one of another client.
    pub(crate) fn oauth_refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
    ) -> Result<(String, String, u64), ()> {
        match self.refresh_tokens.get(refresh_token) {
            Some(grant) if grant.client_id == client_id => {}
            _ => return Err(()),
        }
        let grant = self.refresh_tokens.remove(refresh_token).ok_or(())?;
        let access = format!("emu-at-{}", random_string(32));
        let refresh = format!("emu-rt-{}", random_string(32));
        let lifetime = self.config.access_token_lifetime;
        self.access_tokens.insert(
            access.clone(),
            AccessToken {
                user_id: grant.user_id,
                expires_at: lifetime.map(|d| Instant::now() + d),
                scopes: grant.scopes.clone(),
            },
        );
        self.refresh_tokens.insert(refresh.clone(), grant);
        let expires_in = lifetime.map_or(3600, |d| d.as_secs().max(1));
        Ok((access, refresh, expires_in))
    }

    pub(crate) fn user_nick(&self, user_id: u64) -> Option<String> {
        self.users
            .get(&user_id)
            .or_else(|| self.bots.nicks.get(&user_id))
            .cloned()
    }

    pub(crate) fn first_user(&self) -> Option<u64> {
        self.first_user
    }

    /// Whether `access_token` may use `scope` (tokens without a scope list
    /// may do everything).
    pub(crate) fn has_scope(&self, access_token: &str, scope: &str) -> bool {
        self.access_tokens.get(access_token).is_none_or(|token| {
            token
                .scopes
                .as_ref()
                .is_none_or(|s| s.iter().any(|s| s == scope))
        })
    }

    /// When `access_token` expires, as Unix seconds (`None`: never).
    pub(crate) fn access_token_expiry(&self, access_token: &str) -> Option<u64> {
        let at = self.access_tokens.get(access_token)?.expires_at?;
        let left = at.saturating_duration_since(Instant::now());
        Some(unix_now() + left.as_secs())
    }

    /// Issues an access token and a refresh token of `user_id` for the app
    /// `client_id`: `(access, refresh, expires_in)`.
    pub(crate) fn issue_user_tokens(
        &mut self,
        user_id: u64,
        client_id: &str,
        scopes: Vec<String>,
    ) -> (String, String, u64) {
        let refresh = format!("emu-rt-{}", random_string(32));
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshGrant {
                user_id,
                client_id: client_id.to_owned(),
                scopes: Some(scopes),
            },
        );
        // Exchange it at once: one place decides what an access token is.
        self.oauth_refresh(client_id, &refresh)
            .unwrap_or_else(|()| (String::new(), String::new(), 0))
    }

    pub(crate) fn deny(&mut self, user_id: u64, channel: &str) {
        self.denied.insert((user_id, channel.to_owned()));
    }
}
