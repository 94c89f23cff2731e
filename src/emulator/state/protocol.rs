//! The Centrifugo commands a connection sends, each decided under the lock:
//! connect, subscribe, unsubscribe, refresh, sub_refresh, history.

use serde_json::value::RawValue;
use tokio::time::Instant;

use super::wire::{error_line, error_message, expired, line, ttl_secs};
use super::{Out, Outcome, RECOVERY_LIMIT, State, Stream, Subject};
use crate::emulator::names::namespace_privacy;
use crate::emulator::random::random_uuid;
use crate::protocol::{
    ConnectResult, Empty, HistoryResult, RefreshResult, Reply, SubscribeRequest, SubscribeResult,
    codes,
};

/// Why a subscription token does not do.
pub(super) enum SubTokenProblem {
    Invalid,
    Expired,
    Mismatch,
}

impl State {
    pub(crate) fn connect(
        &mut self,
        id: u64,
        command_id: u32,
        token: Option<&str>,
        ping_secs: u32,
    ) -> Outcome {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("connect without a token"),
            );
        };
        let now = Instant::now();
        let (subject, expires_at) = match self.conn_tokens.get(token) {
            None => {
                return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None);
            }
            Some(t) if self.is_revoked(&t.issued_by) => {
                return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None);
            }
            Some(t) => (t.subject.clone(), t.expires_at),
        };
        if expired(expires_at, now) {
            let reply = error_line(command_id, codes::TOKEN_EXPIRED, "token expired");
            self.deliver(id, Out::Line(reply));
            return Outcome::ConnectFailed;
        }
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subject = Some(subject);
        }
        let reply = line(&Reply {
            id: command_id,
            connect: Some(ConnectResult {
                client: random_uuid(),
                version: String::from("4.1.0-emulator"),
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
                ping: ping_secs,
                pong: ping_secs > 0,
                ..ConnectResult::default()
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    pub(crate) fn subscribe(
        &mut self,
        id: u64,
        command_id: u32,
        request: &SubscribeRequest,
    ) -> Outcome {
        let channel = request.channel.as_str();
        if channel.is_empty() {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("subscribe without a channel"),
            );
        }
        let Some(private) = namespace_privacy(channel) else {
            return self.reply_error(id, command_id, codes::UNKNOWN_CHANNEL);
        };
        if let Some(error) = self.take_subscribe_failure() {
            let reply = Reply {
                id: command_id,
                error: Some(error),
                ..Reply::default()
            };
            self.deliver(id, Out::Line(line(&reply)));
            return Outcome::Done;
        }
        let Some(entry) = self.connections.get(&id) else {
            return Outcome::Done;
        };
        if entry.subs.contains(channel) {
            return self.reply_error(id, command_id, codes::ALREADY_SUBSCRIBED);
        }
        if self
            .config
            .channel_limit
            .is_some_and(|limit| entry.subs.len() >= limit)
        {
            return self.reply_error(id, command_id, codes::LIMIT_EXCEEDED);
        }
        let subject = entry.subject.clone();
        let now = Instant::now();
        let token = request
            .token
            .as_ref()
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty());
        let expires_at = match token {
            None if private => {
                return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
            }
            None => None,
            Some(token) => match self.check_sub_token(token, channel, subject.as_ref(), now) {
                Ok(expires_at) => expires_at,
                Err(outcome) => return self.fail_sub_token(id, command_id, outcome),
            },
        };

        let stream = self
            .streams
            .entry(channel.to_owned())
            .or_insert_with(Stream::new);
        let history = self.config.history;
        let mut result = SubscribeResult {
            expires: expires_at.is_some(),
            ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            ..SubscribeResult::default()
        };
        // As centrifuge's `client.go`: `was_recovering` echoes the request
        // whether or not the channel can recover; stream fields and the
        // recovery attempt only exist with history (recovery) on.
        result.was_recovering = request.recover;
        if history {
            result.recoverable = true;
            result.positioned = true;
            result.epoch = stream.epoch.clone();
            result.offset = stream.top;
        }
        if history && request.recover {
            let epoch_matches = request.epoch.is_empty() || request.epoch == stream.epoch;
            let from = request.offset;
            let missed = stream.top.saturating_sub(from);
            let oldest_kept = stream.history.front().map_or(stream.top + 1, |p| p.offset);
            let recoverable = epoch_matches
                && from <= stream.top
                && missed <= RECOVERY_LIMIT
                && (missed == 0 || oldest_kept <= from + 1);
            if recoverable {
                result.recovered = true;
                result.offset = from;
                result.publications = stream
                    .history
                    .iter()
                    .filter(|p| p.offset > from)
                    .cloned()
                    .collect();
            }
        }
        stream.subscribers.insert(id);
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subs.insert(channel.to_owned());
        }
        let reply = line(&Reply {
            id: command_id,
            subscribe: Some(result),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    /// Validates a subscription token for `channel` and the connection's
    /// subject: `Ok(expiry)` or `Err(what to answer)`.
    pub(super) fn check_sub_token(
        &self,
        token: &str,
        channel: &str,
        subject: Option<&Subject>,
        now: Instant,
    ) -> Result<Option<Instant>, SubTokenProblem> {
        let Some(record) = self.sub_tokens.get(token) else {
            return Err(SubTokenProblem::Invalid);
        };
        if self.is_revoked(&record.issued_by) {
            return Err(SubTokenProblem::Invalid);
        }
        if record.channel != channel || subject != Some(&Subject::User(record.user_id)) {
            return Err(SubTokenProblem::Mismatch);
        }
        if expired(record.expires_at, now) {
            return Err(SubTokenProblem::Expired);
        }
        Ok(record.expires_at)
    }

    pub(super) fn fail_sub_token(
        &mut self,
        id: u64,
        command_id: u32,
        problem: SubTokenProblem,
    ) -> Outcome {
        match problem {
            SubTokenProblem::Invalid => self.reply_error(id, command_id, codes::PERMISSION_DENIED),
            SubTokenProblem::Expired => self.reply_error(id, command_id, codes::TOKEN_EXPIRED),
            SubTokenProblem::Mismatch => Outcome::close(
                codes::CLOSE_INVALID_TOKEN,
                "invalid token",
                String::from("subscription token of another channel or user"),
            ),
        }
    }

    /// `history` from a subscriber of the channel, when allowed (see
    /// `EmulatorConfig::history_for_subscribers`): the kept publications
    /// after `since`, at most `limit` (all with a negative limit, none with
    /// 0, as Centrifugo), and the stream's position.
    pub(crate) fn history(
        &mut self,
        id: u64,
        command_id: u32,
        request: Option<&RawValue>,
    ) -> Outcome {
        #[derive(serde::Deserialize)]
        struct Since {
            #[serde(default)]
            offset: u64,
            #[serde(default)]
            epoch: String,
        }
        #[derive(serde::Deserialize)]
        struct HistoryRequest {
            channel: String,
            #[serde(default)]
            limit: i64,
            #[serde(default)]
            since: Option<Since>,
        }
        if !self.config.history_for_subscribers {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        let Some(request) =
            request.and_then(|raw| serde_json::from_str::<HistoryRequest>(raw.get()).ok())
        else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("history without a channel"),
            );
        };
        let subscribed = self
            .connections
            .get(&id)
            .is_some_and(|entry| entry.subs.contains(&request.channel));
        if !subscribed {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        if !self.config.history {
            return self.reply_error(id, command_id, codes::NOT_AVAILABLE);
        }
        let stream = self
            .streams
            .entry(request.channel.clone())
            .or_insert_with(Stream::new);
        let after = match &request.since {
            Some(since) if !since.epoch.is_empty() && since.epoch != stream.epoch => {
                return self.reply_error(id, command_id, codes::UNRECOVERABLE_POSITION);
            }
            Some(since) => since.offset,
            None => 0,
        };
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let result = HistoryResult {
            publications: stream
                .history
                .iter()
                .filter(|p| p.offset > after)
                .take(limit)
                .cloned()
                .collect(),
            epoch: stream.epoch.clone(),
            offset: stream.top,
        };
        let reply = line(&Reply {
            id: command_id,
            history: Some(result),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        Outcome::Done
    }

    pub(crate) fn reply_error(&mut self, id: u64, command_id: u32, code: u32) -> Outcome {
        self.deliver(
            id,
            Out::Line(error_line(command_id, code, error_message(code))),
        );
        Outcome::Done
    }

    pub(crate) fn unsubscribe(&mut self, id: u64, command_id: u32, channel: &str) -> Outcome {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.subs.remove(channel);
        }
        if let Some(stream) = self.streams.get_mut(channel) {
            stream.subscribers.remove(&id);
        }
        let reply = line(&Reply {
            id: command_id,
            unsubscribe: Some(Empty {}),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        Outcome::Done
    }

    pub(crate) fn refresh(&mut self, id: u64, command_id: u32, token: Option<&str>) -> Outcome {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("refresh without a token"),
            );
        };
        let now = Instant::now();
        let current = self.connections.get(&id).and_then(|e| e.subject.clone());
        let expires_at = match self.conn_tokens.get(token) {
            Some(t) if !self.is_revoked(&t.issued_by) && Some(&t.subject) == current.as_ref() => {
                t.expires_at
            }
            _ => return Outcome::close(codes::CLOSE_INVALID_TOKEN, "invalid token", None),
        };
        if expired(expires_at, now) {
            return Outcome::close(codes::CLOSE_CONNECTION_EXPIRED, "connection expired", None);
        }
        let reply = line(&Reply {
            id: command_id,
            refresh: Some(RefreshResult {
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }

    pub(crate) fn sub_refresh(
        &mut self,
        id: u64,
        command_id: u32,
        channel: &str,
        token: Option<&str>,
    ) -> Outcome {
        if channel.is_empty() {
            return Outcome::close(
                codes::CLOSE_BAD_REQUEST,
                "bad request",
                String::from("sub_refresh without a channel"),
            );
        }
        let Some(entry) = self.connections.get(&id) else {
            return Outcome::Done;
        };
        if !entry.subs.contains(channel) {
            return self.reply_error(id, command_id, codes::PERMISSION_DENIED);
        }
        let subject = entry.subject.clone();
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return self.reply_error(id, command_id, codes::BAD_REQUEST);
        };
        let now = Instant::now();
        let expires_at = match self.check_sub_token(token, channel, subject.as_ref(), now) {
            Ok(expires_at) => expires_at,
            Err(SubTokenProblem::Expired) => {
                return Outcome::close(
                    codes::CLOSE_SUBSCRIPTION_EXPIRED,
                    "subscription expired",
                    None,
                );
            }
            Err(problem) => return self.fail_sub_token(id, command_id, problem),
        };
        let reply = line(&Reply {
            id: command_id,
            sub_refresh: Some(RefreshResult {
                expires: expires_at.is_some(),
                ttl: expires_at.map_or(0, |at| ttl_secs(at, now)),
            }),
            ..Reply::default()
        });
        self.deliver(id, Out::Line(reply));
        let grace = self.config.expiry_grace;
        Outcome::Deadline(expires_at.map(|at| at + grace))
    }
}
