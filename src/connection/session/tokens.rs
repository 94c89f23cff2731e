//! The connection's answers for channel tokens: subscribe with them, or
//! refresh a subscription with them (`sub_refresh`). The tokens themselves
//! are fetched, and shared by the pool's connections, in
//! `connection::tokens`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::state::{LinkEnd, Pending, Phase};
use super::{Action, Purpose, Session};
use crate::connection::channel::Status;
use crate::connection::policy;
use crate::delivery::CloseReason;
use crate::error::{Error, ErrorKind};
use crate::protocol::{self, Reply};
use crate::secret::Secret;

impl Session {
    pub(crate) fn handle_channel_tokens(
        &mut self,
        now: Instant,
        attempt: u64,
        purpose: Purpose,
        channels: Vec<Arc<str>>,
        answer: Result<HashMap<String, Secret>, Error>,
    ) {
        if attempt != self.attempt {
            return;
        }
        if let Phase::Fetching {
            channels: fetched, ..
        } = &mut self.phase
        {
            match answer {
                Ok(tokens) => {
                    *fetched = Some(tokens);
                    self.dial_when_ready();
                }
                Err(error) => self.end_link(now, LinkEnd::from_api_error(error)),
            }
            return;
        }
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        match answer {
            Ok(tokens) => {
                for name in channels {
                    let token = tokens.get(name.as_ref()).cloned();
                    match purpose {
                        Purpose::Subscribe | Purpose::Resubscribe => {
                            self.subscribe_with_token(now, &name, token)
                        }
                        Purpose::Refresh => self.refresh_with_token(now, &name, token),
                    }
                }
            }
            Err(error) if error.kind() == ErrorKind::Unauthorized => {
                self.finish(CloseReason::Failed(error));
            }
            Err(error) if !error.is_retryable() => {
                // The API refused this batch for good: those channels fail,
                // the connection and its other channels go on.
                for name in channels {
                    self.fail_channel(&name, 0, error.to_string());
                }
            }
            Err(error) => {
                tracing::warn!(%error, "subscription token request failed; retrying");
                for name in channels {
                    match purpose {
                        Purpose::Subscribe | Purpose::Resubscribe => {
                            self.schedule_resubscribe(now, &name, true, error.retry_after())
                        }
                        Purpose::Refresh => {
                            if let Some(channel) = self.channels.get_mut(&name) {
                                channel.refresh_at = Some(now + policy::REFRESH_RETRY);
                                self.arm(&name);
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn request_tokens(&mut self, channels: Vec<Arc<str>>, purpose: Purpose) {
        if channels.is_empty() {
            return;
        }
        if purpose != Purpose::Refresh {
            for name in &channels {
                if let Some(channel) = self.channels.get_mut(name) {
                    channel.status = Status::AwaitingToken;
                }
            }
        }
        self.actions.push_back(Action::FetchChannelTokens {
            attempt: self.attempt,
            purpose,
            channels,
        });
    }

    pub(super) fn subscribe_with_token(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        token: Option<Secret>,
    ) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        if channel.status != Status::AwaitingToken {
            return;
        }
        channel.token = token;
        channel.needs_token = false;
        self.send_subscribe(now, name);
    }

    pub(super) fn refresh_with_token(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        token: Option<Secret>,
    ) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        if channel.status != Status::Subscribed {
            return;
        }
        let Some(token) = token else {
            // No token any more: the server will end the subscription at expiry.
            tracing::warn!(channel = %name, "no fresh subscription token granted");
            return;
        };
        channel.token = Some(token.clone());
        let command = protocol::Command {
            sub_refresh: Some(protocol::SubRefreshRequest {
                channel: name.to_string(),
                token: Some(token),
            }),
            ..Default::default()
        };
        self.send_command(now, command, Pending::SubRefresh(name.clone()));
    }

    pub(super) fn on_sub_refresh_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        match (reply.error, reply.sub_refresh) {
            (Some(error), _) if error.temporary => {
                channel.refresh_at = Some(now + policy::REFRESH_RETRY);
                self.arm(name);
            }
            (Some(error), _) => {
                tracing::debug!(channel = %name, code = error.code, "sub_refresh refused; resubscribing");
                self.send_unsubscribe(now, name);
                self.schedule_resubscribe(now, name, true, None);
            }
            (None, result) => {
                let result = result.unwrap_or_default();
                channel.refresh_at = policy::refresh_deadline(now, result.expires, result.ttl);
                self.arm(name);
            }
        }
    }
}
