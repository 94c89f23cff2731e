//! The wanted channels: subscribe and unsubscribe, their replies and the
//! server's unsubscribe pushes, resubscribes after backoff, and the
//! per-channel timers (retry, token refresh, a fill-in's hold and retry).

use std::cmp::Reverse;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::state::Pending;
use super::{Action, Purpose, Session, valid_channel_name};
use crate::connection::channel::{Channel, Position, Status};
use crate::connection::command::Command;
use crate::connection::policy;
use crate::delivery::{Event, Payload, Recovery};
use crate::protocol::{self, Reply, codes};

impl Session {
    // --- inputs: the caller -------------------------------------------

    pub(crate) fn handle_command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Subscribe { channel, chat_slug } => {
                if let Some(name) = self.want(&channel, chat_slug.as_deref())
                    && self.has_link()
                {
                    self.request_tokens(vec![name], Purpose::Subscribe);
                }
            }
            Command::Follow { slug, skip } => self.follow(slug, skip),
            Command::Unsubscribe(channel) => self.unsubscribe(now, &channel),
            Command::Close => self.close(now),
        }
    }

    /// Subscribes a burst of channels with one token request.
    pub(crate) fn handle_subscribe_burst(&mut self, burst: Vec<(String, Option<String>)>) {
        let names: Vec<Arc<str>> = burst
            .into_iter()
            .filter_map(|(channel, slug)| self.want(&channel, slug.as_deref()))
            .collect();
        if self.has_link() {
            self.request_tokens(names, Purpose::Subscribe);
        }
    }

    pub(super) fn next_channel_timer(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, name))) = self.timers.peek() {
            let current = self.channels.get(name).and_then(Channel::next_timer);
            if current == Some(*at) {
                return Some(*at);
            }
            self.timers.pop();
        }
        None
    }

    /// Registers the channel's next timer.
    pub(super) fn arm(&mut self, name: &Arc<str>) {
        if let Some(at) = self.channels.get(name).and_then(Channel::next_timer) {
            self.timers.push(Reverse((at, name.clone())));
        }
    }

    /// Adds `channel` to the wanted set; returns its name if it is new.
    pub(super) fn want(&mut self, channel: &str, chat_slug: Option<&str>) -> Option<Arc<str>> {
        if !valid_channel_name(channel) {
            // A comma would split the name in the token request's list.
            self.push_event(Event::SubscriptionFailed {
                channel: channel.to_owned(),
                code: codes::BAD_REQUEST,
                reason: "invalid channel name".into(),
            });
            return None;
        }
        if self.channels.contains_key(channel) {
            return None;
        }
        let name: Arc<str> = channel.into();
        let mut channel = Channel::new(chat_slug.filter(|slug| !slug.is_empty()).map(Arc::from));
        if let Some(position) = self.config.resume_from.get(&*name) {
            // Taken over from elsewhere: recover from where that left off.
            // Offset 0 in no epoch is no position (a server without history):
            // whatever came in between is then missed, filled in from REST
            // for a chat or reported as a gap.
            let known = position.offset > 0 || !position.epoch.is_empty();
            channel.position = known.then(|| position.clone());
            channel.was_subscribed = true;
        }
        if let (Some(chat), Some(key)) =
            (channel.chat.as_mut(), self.config.resume_chat.get(&*name))
        {
            // A fill-in continues after the message the earlier reader
            // delivered last, which is not delivered again.
            chat.delivered(*key);
        }
        self.channels.insert(name.clone(), channel);
        Some(name)
    }

    pub(super) fn unsubscribe(&mut self, now: Instant, channel: &str) {
        let Some((name, state)) = self.channels.get_key_value(channel) else {
            return;
        };
        let name = name.clone();
        if matches!(state.status, Status::Subscribed | Status::Subscribing(_)) && self.is_open() {
            self.send_unsubscribe(now, &name);
        }
        self.remove_channel(&name);
        self.push_event(Event::Unsubscribed {
            channel: channel.to_owned(),
            code: 0,
            reason: "unsubscribe called".into(),
        });
    }

    /// Forgets a channel, delivering what it held back first.
    pub(super) fn remove_channel(&mut self, name: &Arc<str>) {
        self.release_all_held(name);
        self.channels.remove(name);
    }

    /// Gives up on a channel and tells the caller why.
    pub(super) fn fail_channel(&mut self, name: &str, code: u32, reason: String) {
        let Some((name, _)) = self.channels.get_key_value(name) else {
            return;
        };
        let name = name.clone();
        self.remove_channel(&name);
        self.push_event(Event::SubscriptionFailed {
            channel: name.to_string(),
            code,
            reason,
        });
    }

    pub(super) fn send_subscribe(&mut self, now: Instant, name: &Arc<str>) {
        let Some(channel) = self.channels.get(name) else {
            return;
        };
        let mut request = protocol::SubscribeRequest {
            channel: name.to_string(),
            token: channel.token.clone(),
            ..Default::default()
        };
        if let Some(position) = &channel.position {
            request.recover = true;
            request.epoch = position.epoch.clone();
            request.offset = position.offset;
        }
        let command = protocol::Command {
            subscribe: Some(request),
            ..Default::default()
        };
        let id = self.send_command(now, command, Pending::Subscribe(name.clone()));
        if let Some(channel) = self.channels.get_mut(name) {
            channel.status = Status::Subscribing(id);
        }
    }

    pub(super) fn send_unsubscribe(&mut self, now: Instant, name: &str) {
        let command = protocol::Command {
            unsubscribe: Some(protocol::UnsubscribeRequest {
                channel: name.to_owned(),
            }),
            ..Default::default()
        };
        self.send_command(now, command, Pending::Unsubscribe);
    }

    /// Resubscribes a channel after its own backoff (at least what the server
    /// asked for), with a fresh token if asked.
    pub(super) fn schedule_resubscribe(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        fresh_token: bool,
        server_asked: Option<Duration>,
    ) {
        let Some(failures) = self.channels.get(name).map(|c| c.failures) else {
            return;
        };
        let delay = self.backoff(failures, server_asked);
        if let Some(channel) = self.channels.get_mut(name) {
            channel.failures = failures.saturating_add(1);
            channel.status = Status::Idle;
            channel.needs_token |= fresh_token;
            channel.refresh_at = None;
            channel.retry_at = Some(now + delay);
        }
        self.arm(name);
    }

    pub(super) fn fire_channel_timers(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(at) = self.next_channel_timer() {
            if at > now {
                break;
            }
            if let Some(Reverse((_, name))) = self.timers.pop() {
                due.push(name);
            }
        }
        let mut to_subscribe = Vec::new();
        let mut need_tokens = Vec::new();
        let mut to_refresh = Vec::new();
        for name in due {
            let Some(channel) = self.channels.get_mut(&name) else {
                continue;
            };
            if channel.retry_at.is_some_and(|at| at <= now) && self.link.is_some() {
                channel.retry_at = None;
                if channel.needs_token {
                    need_tokens.push(name.clone());
                } else {
                    channel.status = Status::AwaitingToken;
                    to_subscribe.push(name.clone());
                }
            }
            if channel.refresh_at.is_some_and(|at| at <= now) {
                channel.refresh_at = None;
                to_refresh.push(name.clone());
            }
            let (hold_due, retry_due) = channel
                .chat
                .as_ref()
                .and_then(|chat| chat.backfill.as_ref())
                .map_or((false, false), |backfill| {
                    (
                        backfill.hold_until.is_some_and(|at| at <= now),
                        backfill.retry_at.is_some_and(|at| at <= now),
                    )
                });
            if hold_due {
                self.release_held(&name);
            }
            if retry_due {
                self.retry_backfill(&name);
            }
            self.arm(&name);
        }
        for name in to_subscribe {
            self.send_subscribe(now, &name);
        }
        self.request_tokens(need_tokens, Purpose::Resubscribe);
        self.request_tokens(to_refresh, Purpose::Refresh);
    }

    pub(super) fn on_subscribe_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(channel) = self.channels.get_mut(name) else {
            // Unsubscribed while the subscribe was in flight.
            if reply.subscribe.is_some() {
                self.send_unsubscribe(now, name);
            }
            return;
        };
        if !matches!(channel.status, Status::Subscribing(id) if id == reply.id) {
            return;
        }
        if let Some(error) = reply.error {
            return self.on_subscribe_error(now, name, error);
        }
        let result = reply.subscribe.unwrap_or_default();
        let resubscribed = channel.was_subscribed;
        channel.status = Status::Subscribed;
        channel.was_subscribed = true;
        channel.failures = 0;
        channel.refresh_at = policy::refresh_deadline(now, result.expires, result.ttl);
        let recovery = match (result.was_recovering, result.recovered) {
            (true, true) => Recovery::Recovered,
            (true, false) => Recovery::Failed,
            // A server without history: a resubscription may have missed some.
            (false, _) if resubscribed => Recovery::Failed,
            (false, _) => Recovery::NotRequested,
        };
        // A position given without its epoch (`ClientBuilder::resume` by a
        // process that never saw it) is taken to be in the server's epoch.
        if let Some(ours) = channel.position.as_mut()
            && ours.epoch.is_empty()
        {
            ours.epoch.clone_from(&result.epoch);
        }
        let missed = match (recovery, &channel.position) {
            (Recovery::Failed, Some(ours)) => {
                policy::missed_publications(&ours.epoch, ours.offset, &result.epoch, result.offset)
            }
            (Recovery::Failed, None) => None,
            _ => Some(0),
        };
        let ours = channel.position.clone();
        // After a successful recovery the reply's offset is the one we asked
        // for and the publications bring us to the top; otherwise adopt the
        // server's current position.
        if recovery != Recovery::Recovered {
            channel.position = (result.recoverable || !result.epoch.is_empty()).then(|| Position {
                epoch: result.epoch.clone(),
                offset: result.offset,
            });
        }
        self.arm(name);
        tracing::debug!(channel = %name, ?recovery, recovered = result.publications.len(), "subscribed");
        self.push_event(Event::Subscribed {
            channel: name.to_string(),
            recovery,
            epoch: result.epoch.clone(),
            offset: result.offset,
        });
        match (missed, ours) {
            (Some(0), _) => {}
            // Offsets tell what is missing: ask the server's history for it.
            (Some(_), Some(ours)) => self.start_catch_up(now, name, ours, result.offset),
            (missed, _) => self.report_loss(now, name, missed, Vec::new()),
        }
        for publication in result.publications {
            let payload = Payload::Owned(publication.data.into());
            self.on_publication(name, publication.offset, payload);
        }
    }

    pub(super) fn on_subscribe_error(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        error: protocol::ErrorReply,
    ) {
        let action = codes::error_action(error.code, error.temporary);
        tracing::debug!(channel = %name, code = error.code, ?action, "subscribe refused");
        if error.code == codes::LIMIT_EXCEEDED {
            // This connection is full: the pool places the channel elsewhere.
            let chat_slug = self
                .channels
                .get(name)
                .and_then(|c| c.chat.as_ref())
                .map(|chat| chat.slug.to_string());
            self.remove_channel(name);
            self.actions.push_back(Action::Refused {
                channel: name.to_string(),
                chat_slug,
            });
            return;
        }
        match action {
            codes::ErrorAction::RefreshToken => self.schedule_resubscribe(now, name, true, None),
            codes::ErrorAction::Retry => self.schedule_resubscribe(now, name, false, None),
            codes::ErrorAction::Fail => self.fail_channel(name, error.code, error.message),
        }
    }

    pub(super) fn on_unsubscribe_push(
        &mut self,
        now: Instant,
        channel: &str,
        push: protocol::UnsubscribePush,
    ) {
        let Some((name, _)) = self.channels.get_key_value(channel) else {
            return;
        };
        let name = name.clone();
        if codes::unsubscribe_resubscribes(push.code) {
            tracing::debug!(
                channel,
                code = push.code,
                "server unsubscribed; resubscribing"
            );
            if let Some(chat) = self.channels.get_mut(&name).and_then(|c| c.chat.as_mut()) {
                chat.lost_at_millis = Some(self.clock.millis(now));
            }
            let fresh_token = push.code == codes::UNSUBSCRIBE_EXPIRED;
            self.schedule_resubscribe(now, &name, fresh_token, None);
        } else {
            self.remove_channel(&name);
            self.push_event(Event::Unsubscribed {
                channel: channel.to_owned(),
                code: push.code,
                reason: push.reason,
            });
        }
    }
}
