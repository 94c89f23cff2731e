//! The link's life: attempts and their phases (tokens, dial, open,
//! closing), the connect and refresh replies, the watchdog and reply
//! deadlines, close, and what follows the end of a link (reconnect after
//! backoff, or stop).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::{Link, LinkEnd, Pending, Phase};
use super::{Action, Purpose, Session};
use crate::connection::channel::Status;
use crate::connection::policy::{self, AfterClose};
use crate::delivery::{CloseReason, Event, State};
use crate::error::{Error, ErrorKind};
use crate::protocol::{self, Reply, codes};
use crate::secret::Secret;

/// How long `close()` waits for the server's answering close frame.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(1);

impl Session {
    /// Reading the socket stops (the caller is behind) or starts again.
    /// Time spent paused does not count against the server.
    pub(crate) fn set_paused(&mut self, now: Instant, paused: bool) {
        let Some(link) = &mut self.link else {
            return;
        };
        if paused {
            link.paused_since.get_or_insert(now);
        } else if let Some(since) = link.paused_since.take() {
            let paused_for = now.saturating_duration_since(since);
            link.last_received = now;
            for (_, deadline) in &mut link.deadlines {
                *deadline += paused_for;
            }
        }
    }

    /// The caller dropped its stream: stop at once.
    pub(crate) fn handle_caller_gone(&mut self) {
        self.finish(CloseReason::Requested);
    }

    pub(super) fn close(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Open) {
            self.actions.push_back(Action::CloseSocket { linger: true });
            self.phase = Phase::Closing {
                until: now + CLOSE_LINGER,
            };
        } else if !matches!(self.phase, Phase::Closing { .. }) {
            self.finish(CloseReason::Requested);
        }
    }

    /// Whether a link is open (connected or waiting for the connect reply):
    /// a subscribe sent now follows `connect` on it, which the server handles
    /// in order.
    pub(super) fn has_link(&self) -> bool {
        matches!(self.phase, Phase::Open)
    }

    pub(crate) fn handle_connection_token(
        &mut self,
        now: Instant,
        attempt: u64,
        answer: Result<Secret, Error>,
    ) {
        if attempt != self.attempt {
            return;
        }
        match (&mut self.phase, answer) {
            (
                Phase::Fetching {
                    connection, asked, ..
                },
                Ok(token),
            ) => {
                *connection = Some(token);
                *asked = self.channels.keys().cloned().collect();
                self.actions.push_back(Action::FetchChannelTokens {
                    attempt,
                    purpose: Purpose::Subscribe,
                    channels: asked.clone(),
                });
            }
            (Phase::Fetching { .. }, Err(error)) => {
                self.end_link(now, LinkEnd::from_api_error(error));
            }
            (Phase::Open, Ok(token)) => {
                let command = protocol::Command {
                    refresh: Some(protocol::RefreshRequest { token: Some(token) }),
                    ..Default::default()
                };
                self.send_command(now, command, Pending::Refresh);
            }
            (Phase::Open, Err(error)) if error.is_retryable() => {
                tracing::warn!(%error, "connection token refresh failed; retrying");
                if let Some(link) = &mut self.link {
                    link.refresh_at = Some(now + policy::REFRESH_RETRY);
                }
            }
            (Phase::Open, Err(error)) => self.finish(CloseReason::Failed(error)),
            _ => {}
        }
    }

    pub(crate) fn handle_dialed(&mut self, now: Instant, attempt: u64, result: Result<(), String>) {
        if attempt != self.attempt {
            return;
        }
        let Phase::Dialing { .. } = self.phase else {
            return;
        };
        if let Err(reason) = result {
            self.end_link(now, LinkEnd::retry(reason));
            return;
        }
        let Phase::Dialing {
            connection,
            channels: tokens,
            asked,
        } = std::mem::replace(&mut self.phase, Phase::Open)
        else {
            unreachable!("checked above");
        };
        self.link = Some(Link::new(now));
        let connect = protocol::Command {
            connect: Some(protocol::ConnectRequest {
                token: Some(connection),
                name: "vklive-pubsub".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                data: None,
            }),
            ..Default::default()
        };
        self.send_command(now, connect, Pending::Connect);
        // Subscribes go in the same frames as connect (the server handles
        // them in order), so a thousand channels cost one round trip.
        let asked: HashSet<Arc<str>> = asked.into_iter().collect();
        let mut late = Vec::new();
        let names: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for name in names {
            if let Some(channel) = self.channels.get_mut(&name) {
                channel.status = Status::AwaitingToken;
            }
            if asked.contains(&name) {
                let token = tokens.get(name.as_ref()).cloned();
                self.subscribe_with_token(now, &name, token);
            } else {
                // Wanted while the tokens were being fetched.
                late.push(name);
            }
        }
        self.request_tokens(late, Purpose::Subscribe);
    }

    /// Any other inbound activity (a WebSocket ping, a binary frame): the
    /// link is alive.
    pub(crate) fn handle_activity(&mut self, now: Instant) {
        if let Some(link) = &mut self.link {
            link.last_received = now;
        }
    }

    /// The socket ended: a close frame with `code`, or an error or EOF
    /// (`code` is `None`).
    pub(crate) fn handle_closed(&mut self, now: Instant, code: Option<u16>, reason: String) {
        match self.phase {
            Phase::Closing { .. } => self.finish(CloseReason::Requested),
            Phase::Open => {
                let end = match code {
                    Some(code) => LinkEnd::ServerClosed { code, reason },
                    None => LinkEnd::retry(reason),
                };
                self.end_link(now, end);
            }
            _ => {}
        }
    }

    /// Fires the link's due timers (the next attempt, the close linger, the
    /// watchdog, reply deadlines, the token refresh); false if the link
    /// ended and nothing else is to fire.
    pub(super) fn fire_link_timers(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Waiting { until } if until <= now => self.start_attempt(),
            Phase::Closing { until } if until <= now => {
                self.actions
                    .push_back(Action::CloseSocket { linger: false });
                self.finish(CloseReason::Requested);
                return false;
            }
            _ => {}
        }
        if let Some(link) = &mut self.link {
            if link
                .watchdog(self.config.ping_margin)
                .is_some_and(|at| at <= now)
            {
                self.end_link(
                    now,
                    LinkEnd::retry("no ping from the server in time; the link is dead"),
                );
                return false;
            }
            if link.command_deadline().is_some_and(|at| at <= now) {
                self.end_link(now, LinkEnd::retry("a command got no reply in time"));
                return false;
            }
            if link.refresh_at.is_some_and(|at| at <= now) {
                link.refresh_at = None;
                self.actions.push_back(Action::FetchConnectionToken {
                    attempt: self.attempt,
                });
            }
        }
        true
    }

    pub(super) fn start_attempt(&mut self) {
        self.attempt += 1;
        // The connection token first: if the API refuses it, no channel
        // token is fetched in vain.
        self.actions.push_back(Action::FetchConnectionToken {
            attempt: self.attempt,
        });
        self.phase = Phase::Fetching {
            connection: None,
            channels: None,
            asked: Vec::new(),
        };
    }

    pub(super) fn dial_when_ready(&mut self) {
        let Phase::Fetching {
            connection: Some(_),
            channels: Some(_),
            ..
        } = &self.phase
        else {
            return;
        };
        let Phase::Fetching {
            connection: Some(connection),
            channels: Some(channels),
            asked,
        } = std::mem::replace(&mut self.phase, Phase::Finished)
        else {
            unreachable!("checked above");
        };
        self.phase = Phase::Dialing {
            connection,
            channels,
            asked,
        };
        self.actions.push_back(Action::Dial {
            attempt: self.attempt,
        });
    }

    /// A link, or an attempt at one, ended: reconnect after backoff, or stop.
    pub(super) fn end_link(&mut self, now: Instant, end: LinkEnd) {
        let link = self.link.take();
        if link.is_some() {
            self.actions
                .push_back(Action::CloseSocket { linger: false });
        }
        let connected_for = link
            .as_ref()
            .and_then(|link| link.connected_at)
            .map(|at| now.saturating_duration_since(at));
        if connected_for.is_some_and(|lived| lived >= policy::TOKEN_RETRY_RESET_AFTER) {
            self.token_retry_left = true;
        }
        // A catch-up cut short: what it did not bring is a loss.
        let catching_up: Vec<Arc<str>> = self
            .channels
            .iter()
            .filter(|(_, channel)| channel.catch_up.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        for name in catching_up {
            self.end_catch_up(now, &name);
        }
        self.idle_channels(now);
        let (code, reason, retry_after) = match end {
            LinkEnd::Stop(reason) => return self.finish(reason),
            LinkEnd::Retry {
                code,
                reason,
                retry_after,
            } => (code, reason, retry_after),
            LinkEnd::ServerClosed { code, reason } => {
                match policy::after_close(code, &reason, self.token_retry_left) {
                    AfterClose::Reconnect => {}
                    AfterClose::RetryWithFreshToken => self.token_retry_left = false,
                    AfterClose::Stop => {
                        return self.finish(CloseReason::Failed(Error::new(
                            ErrorKind::Rejected,
                            format!(
                                "the pubsub server closed the connection with code {code}: {reason}"
                            ),
                        )));
                    }
                }
                (Some(code), reason, None)
            }
        };
        self.failures =
            policy::failures_after_link(self.failures, connected_for, self.config.healthy_after);
        let delay = self.backoff(self.failures - 1, retry_after);
        tracing::info!(?code, %reason, delay_ms = delay.as_millis() as u64, "disconnected; will reconnect");
        self.push_event(Event::Disconnected { code, reason });
        self.state = State::Connecting;
        self.phase = Phase::Waiting { until: now + delay };
    }

    /// After a link ended, every wanted channel waits for the next one,
    /// keeping its position for recovery; chat remembers when it was lost.
    pub(super) fn idle_channels(&mut self, now: Instant) {
        let lost_at = self.clock.millis(now);
        for channel in self.channels.values_mut() {
            if channel.status == Status::Subscribed
                && let Some(chat) = &mut channel.chat
            {
                chat.lost_at_millis = Some(lost_at);
            }
            channel.status = Status::Idle;
            channel.retry_at = None;
            channel.refresh_at = None;
        }
    }

    pub(super) fn finish(&mut self, reason: CloseReason) {
        if self.is_finished() {
            return;
        }
        if self.link.take().is_some() {
            self.actions
                .push_back(Action::CloseSocket { linger: false });
        }
        match &reason {
            CloseReason::Failed(error) => tracing::debug!(%error, "connection ended"),
            CloseReason::Requested => tracing::debug!("connection closed as requested"),
        }
        // What was held back for a fill-in or a catch-up is delivered
        // rather than lost.
        let names: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for name in names {
            self.release_all_held(&name);
        }
        self.phase = Phase::Finished;
        self.state = State::Closed;
        self.actions.push_back(Action::Finish(reason));
    }

    pub(super) fn on_reply(&mut self, now: Instant, reply: Reply) {
        if reply.id == 0 {
            match reply.push {
                Some(push) => self.on_push(now, push),
                None => self
                    .malformed
                    .note(now, &"a line with neither id nor push that is not a ping"),
            }
            return;
        }
        let Some(pending) = self
            .link
            .as_mut()
            .and_then(|link| link.pending.remove(&reply.id))
        else {
            tracing::debug!(id = reply.id, "reply to an unknown command ignored");
            return;
        };
        match pending {
            Pending::Connect => self.on_connect_reply(now, reply),
            Pending::Subscribe(name) => self.on_subscribe_reply(now, &name, reply),
            Pending::Unsubscribe => {}
            Pending::Refresh => self.on_refresh_reply(now, reply),
            Pending::SubRefresh(name) => self.on_sub_refresh_reply(now, &name, reply),
            Pending::History(name) => self.on_history_reply(now, &name, reply),
        }
    }

    pub(super) fn on_connect_reply(&mut self, now: Instant, reply: Reply) {
        if let Some(error) = reply.error {
            let end = match codes::error_action(error.code, error.temporary) {
                // The next attempt fetches a fresh token anyway.
                codes::ErrorAction::RefreshToken | codes::ErrorAction::Retry => {
                    LinkEnd::retry(format!("connect refused: {} {}", error.code, error.message))
                }
                codes::ErrorAction::Fail => LinkEnd::Stop(CloseReason::Failed(Error::new(
                    ErrorKind::Rejected,
                    format!(
                        "connect refused by the pubsub server: {} {}",
                        error.code, error.message
                    ),
                ))),
            };
            return self.end_link(now, end);
        }
        let result = reply.connect.unwrap_or_default();
        let Some(link) = &mut self.link else {
            return;
        };
        link.ping = Some(policy::ping_interval(result.ping));
        link.pong = result.pong;
        link.connected_at = Some(now);
        link.refresh_at = policy::refresh_deadline(now, result.expires, result.ttl);
        self.state = State::Connected;
        tracing::info!(client = %result.client, ping = result.ping, "connected");
        self.push_event(Event::Connected {
            client: result.client,
        });
    }

    pub(super) fn on_refresh_reply(&mut self, now: Instant, reply: Reply) {
        let Some(link) = &mut self.link else {
            return;
        };
        if let Some(error) = reply.error {
            if error.temporary {
                link.refresh_at = Some(now + policy::REFRESH_RETRY);
                return;
            }
            let reason = format!("token refresh refused: {} {}", error.code, error.message);
            return self.end_link(now, LinkEnd::retry(reason));
        }
        let result = reply.refresh.unwrap_or_default();
        link.refresh_at = policy::refresh_deadline(now, result.expires, result.ttl);
        tracing::debug!(ttl = result.ttl, "connection token refreshed");
    }
}
