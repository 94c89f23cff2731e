//! A catch-up from the server's history: after a resubscription that
//! could not recover what was missed, pages of `history` from the old
//! position to the top the resubscribe found, live publications held until
//! it is over, and what it did not bring reported as a loss.

use std::sync::Arc;
use std::time::Instant;

use super::Session;
use super::state::Pending;
use crate::connection::channel::{CatchUp, Position};
use crate::delivery::{Delivery, Event, Payload, RawPublication};
use crate::event::skim_chat_key;
use crate::protocol::{self, Reply};

/// Publications asked for in one `history` page.
const HISTORY_PAGE: usize = 1000;

impl Session {
    pub(super) fn start_catch_up(
        &mut self,
        now: Instant,
        name: &Arc<str>,
        from: Position,
        top: u64,
    ) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        channel.catch_up = Some(CatchUp {
            epoch: from.epoch,
            cursor: from.offset,
            top,
            first_page: true,
            held: Vec::new(),
        });
        self.ask_history(now, name);
    }

    /// Asks for the next page of history after the catch-up's cursor.
    pub(super) fn ask_history(&mut self, now: Instant, name: &Arc<str>) {
        let Some(catch_up) = self.channels.get(name).and_then(|c| c.catch_up.as_ref()) else {
            return;
        };
        let request = serde_json::json!({
            "channel": &**name,
            "limit": HISTORY_PAGE,
            "since": {"offset": catch_up.cursor, "epoch": &catch_up.epoch},
        });
        let command = protocol::Command {
            history: serde_json::value::to_raw_value(&request).ok(),
            ..Default::default()
        };
        self.send_command(now, command, Pending::History(name.clone()));
    }

    pub(super) fn on_history_reply(&mut self, now: Instant, name: &Arc<str>, reply: Reply) {
        let Some(catch_up) = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.as_mut())
        else {
            return;
        };
        let result = match (reply.error, reply.history) {
            (None, Some(result)) if result.epoch == catch_up.epoch => result,
            (error, _) => {
                let code = error.map(|error| error.code);
                tracing::debug!(channel = %name, ?code, "history unavailable");
                return self.end_catch_up(now, name);
            }
        };
        let (cursor, top) = (catch_up.cursor, catch_up.top);
        let page: Vec<protocol::Publication> = result
            .publications
            .into_iter()
            .filter(|p| p.offset > cursor && p.offset <= top)
            .collect();
        let full = page.len() >= HISTORY_PAGE;
        if std::mem::take(&mut catch_up.first_page) {
            // What the server no longer keeps comes before what it has.
            let lost = page.first().map_or(top - cursor, |p| p.offset - cursor - 1);
            if lost > 0 {
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed: Some(lost),
                });
            }
        }
        let mut last = cursor;
        for publication in page {
            last = publication.offset;
            let text: Box<str> = publication.data.into();
            let delivery = Delivery::Publication(RawPublication {
                channel: name.clone(),
                offset: last,
                data: Payload::Owned(text),
            });
            let key = match &delivery {
                Delivery::Publication(raw) => skim_chat_key(raw.data.text()),
                Delivery::Event(_) => None,
            };
            self.deliver_now(name, key, delivery);
        }
        if let Some(catch_up) = self
            .channels
            .get_mut(name)
            .and_then(|c| c.catch_up.as_mut())
        {
            catch_up.cursor = last;
        }
        if full && last < top {
            self.ask_history(now, name);
        } else {
            self.end_catch_up(now, name);
        }
    }

    /// Ends a catch-up: what it did not bring is a loss; then the live
    /// publications it held.
    pub(super) fn end_catch_up(&mut self, now: Instant, name: &Arc<str>) {
        let Some(catch_up) = self.channels.get_mut(name).and_then(|c| c.catch_up.take()) else {
            return;
        };
        let remaining = catch_up.top.saturating_sub(catch_up.cursor);
        if remaining > 0 {
            self.report_loss(now, name, Some(remaining), catch_up.held);
        } else {
            for (key, delivery) in catch_up.held {
                self.deliver_now(name, key, delivery);
            }
        }
    }
}
