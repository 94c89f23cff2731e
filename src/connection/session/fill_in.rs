//! Chat filled in from REST: after a loss the server could not recover, a
//! chat followed by slug asks `GET /v1/chat/messages` for what was missed,
//! holds live chat until the answer (or a deadline), and delivers what it
//! brings in order and once.

use std::sync::Arc;
use std::time::Instant;

use super::{Action, Session};
use crate::connection::backfill;
use crate::connection::channel::{Backfill, Held};
use crate::delivery::{Event, Publication};
use crate::error::Error;
use crate::event::{ChatMessage, VkEvent};

/// Failed chat fill-in requests before the loss is reported as a gap.
const BACKFILL_ATTEMPTS: u32 = 8;

impl Session {
    pub(crate) fn handle_chat_history(
        &mut self,
        now: Instant,
        name: &str,
        backfill_id: u64,
        answer: Result<Vec<ChatMessage>, Error>,
    ) {
        let Some((name, channel)) = self.channels.get_key_value(name) else {
            return;
        };
        let name = name.clone();
        let Some(backfill) = channel
            .chat
            .as_ref()
            .and_then(|chat| chat.backfill.as_ref())
        else {
            return;
        };
        if backfill.id != backfill_id {
            return;
        }
        match answer {
            Ok(messages) => self.complete_backfill(&name, messages),
            Err(error) if error.is_retryable() && backfill.failures + 1 < BACKFILL_ATTEMPTS => {
                tracing::warn!(channel = %name, %error, "chat history request failed; retrying");
                let failures = backfill.failures;
                let delay = self.backoff(failures, error.retry_after());
                if let Some(backfill) = self.backfill_mut(&name) {
                    backfill.failures += 1;
                    backfill.retry_at = Some(now + delay);
                }
                self.arm(&name);
            }
            Err(error) => {
                tracing::warn!(channel = %name, %error, "chat history unavailable; reporting a gap");
                let missed = backfill.missed;
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed,
                });
                self.end_backfill(&name);
            }
        }
    }

    /// A loss the server could not recover: filled in from REST for a chat
    /// followed by slug, else reported as a gap. `held` follows it.
    pub(super) fn report_loss(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        missed: Option<u64>,
        mut held: Vec<Held>,
    ) {
        if self.start_backfill(now, name, missed, &mut held) {
            return;
        }
        self.push_event(Event::Gap {
            channel: name.to_string(),
            missed,
        });
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    /// Starts filling a chat in from REST, holding `held` until it is done;
    /// false if it cannot be (not a chat followed by slug, or no point to
    /// resume from), and `held` is left as it was.
    pub(super) fn start_backfill(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        missed: Option<u64>,
        held: &mut Vec<Held>,
    ) -> bool {
        self.backfills += 1;
        let id = self.backfills;
        let hold = self.config.backfill_hold;
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return false;
        };
        let Some(after) = chat.resume_point() else {
            return false;
        };
        // A fill-in still under way is overtaken: what it held goes first.
        let mut all_held = chat.backfill.take().map(|old| old.held).unwrap_or_default();
        all_held.append(held);
        let held = all_held;
        chat.backfill = Some(Backfill {
            id,
            after,
            missed,
            failures: 0,
            retry_at: None,
            held,
            hold_until: Some(now + hold),
        });
        let slug = chat.slug.clone();
        self.actions.push_back(Action::FetchChatHistory {
            channel: name.clone(),
            slug,
            backfill: id,
        });
        self.arm(name);
        true
    }

    pub(super) fn backfill_mut(&mut self, name: &str) -> Option<&mut Backfill> {
        self.channels
            .get_mut(name)?
            .chat
            .as_mut()?
            .backfill
            .as_mut()
    }

    pub(super) fn complete_backfill(&mut self, name: &Arc<str>, answer: Vec<ChatMessage>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let Some(backfill) = &chat.backfill else {
            return;
        };
        let mut fill_in = backfill::select(
            answer,
            backfill.after,
            |id| chat.seen(id),
            backfill::LIMIT as usize,
        );
        let missed = backfill.missed;
        // Live chat was released before this answer came: what is older
        // than the newest message delivered can no longer come in order.
        let too_late = if backfill.hold_until.is_none() {
            chat.last
        } else {
            None
        };
        let in_time = fill_in
            .messages
            .iter()
            .position(|message| too_late.is_none_or(|last| message.key() > last))
            .unwrap_or(fill_in.messages.len());
        let late = fill_in.messages.drain(..in_time).count();
        if !fill_in.complete || late > 0 {
            let found = fill_in.messages.len() as u64;
            self.push_event(Event::Gap {
                channel: name.to_string(),
                missed: missed.map(|missed| missed.saturating_sub(found)),
            });
        }
        tracing::debug!(channel = %name, filled = fill_in.messages.len(), complete = fill_in.complete, "chat filled in from REST");
        for message in fill_in.messages {
            if let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) {
                chat.delivered(message.key());
            }
            self.push_event(Event::Publication(Publication {
                backfilled: true,
                ..Publication::new(name.clone(), 0, VkEvent::ChatMessage(Box::new(message)))
            }));
        }
        self.end_backfill(name);
    }

    /// Ends the fill-in and delivers the chat it held back.
    pub(super) fn end_backfill(&mut self, name: &Arc<str>) {
        self.release_held(name);
        if let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) {
            chat.backfill = None;
        }
    }

    /// Delivers the chat held back for a fill-in, skipping what the fill-in
    /// brought already; later chat is not held any more.
    pub(super) fn release_held(&mut self, name: &Arc<str>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let Some(backfill) = &mut chat.backfill else {
            return;
        };
        backfill.hold_until = None;
        let held = std::mem::take(&mut backfill.held);
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    /// Delivers everything held back for a fill-in or a catch-up.
    pub(super) fn release_all_held(&mut self, name: &Arc<str>) {
        self.release_held(name);
        let held = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.take())
            .map(|catch_up| catch_up.held)
            .unwrap_or_default();
        for (key, delivery) in held {
            self.deliver_now(name, key, delivery);
        }
    }

    pub(super) fn retry_backfill(&mut self, name: &Arc<str>) {
        let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut()) else {
            return;
        };
        let slug = chat.slug.clone();
        let Some(backfill) = &mut chat.backfill else {
            return;
        };
        backfill.retry_at = None;
        self.actions.push_back(Action::FetchChatHistory {
            channel: name.clone(),
            slug,
            backfill: backfill.id,
        });
    }
}
