//! Received frames: their lines (publications cut or decoded, pings,
//! replies, pushes), each publication delivered once and in order, joined to
//! its frame's batch, or held back behind a catch-up or a fill-in.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use super::Session;
use super::state::LinkEnd;
use crate::connection::channel::{Position, Status};
use crate::delivery::{Delivery, Event, Payload, RawPublication};
use crate::event::{ChatKey, skim_chat_key};
use crate::protocol::{self, Frame, Reply};

impl Session {
    /// A text frame: one or more lines.
    pub(crate) fn handle_frame(&mut self, now: Instant, frame: &Frame) {
        let Some(link) = &mut self.link else {
            return;
        };
        link.last_received = now;
        self.deliveries.begin_frame();
        for (number, line) in protocol::frame_lines(frame.as_str()) {
            if !self.is_open() {
                break;
            }
            // The common line, a publication push as Centrifugo writes it,
            // cut without parsing: its payload stays in the frame, and the
            // typed decode in `Events` is its only parse.
            if let Some(cut) = protocol::cut_publication(line) {
                let start = frame.offset_of(line);
                let data = start + cut.data.start..start + cut.data.end;
                self.on_raw_publication(frame, cut.channel, cut.offset, data);
                continue;
            }
            // Other publication pushes in one pass, their payload validated.
            let raw = std::marker::PhantomData::<&RawValue>;
            if let Some(publication) = protocol::decode_publication(line, raw) {
                let data = publication.data.get();
                let start = frame.offset_of(data);
                let range = start..start + data.len();
                self.on_raw_publication(frame, &publication.channel, publication.offset, range);
                continue;
            }
            // A ping is exactly `{}`: an unsolicited pong makes Centrifugo
            // close with the terminal 3501.
            if protocol::is_ping_line(line) {
                self.on_ping();
                continue;
            }
            match protocol::decode_line::<Reply>(number, line) {
                Ok(reply) => self.on_reply(now, reply),
                Err(error) => self.malformed.note(now, &error),
            }
        }
        // Queued publications keep their frame alive: only where they are
        // most of it (`delivery::copy_out`).
        self.deliveries.end_frame(frame);
    }

    pub(super) fn on_push(&mut self, now: Instant, push: protocol::Push) {
        if let Some(publication) = push.publication {
            if let Some(name) = self.subscribed(&push.channel) {
                let payload = Payload::Owned(publication.data.into());
                self.on_publication(&name, publication.offset, payload);
            }
        } else if let Some(unsubscribe) = push.unsubscribe {
            self.on_unsubscribe_push(now, &push.channel, unsubscribe);
        } else if let Some(disconnect) = push.disconnect {
            let code = u16::try_from(disconnect.code).unwrap_or(u16::MAX);
            self.end_link(
                now,
                LinkEnd::ServerClosed {
                    code,
                    reason: disconnect.reason,
                },
            );
        }
    }

    /// The name of `channel` if it is subscribed, else `None` (logged).
    pub(super) fn subscribed(&self, channel: &str) -> Option<Arc<str>> {
        let name = self
            .channels
            .get_key_value(channel)
            .and_then(|(name, c)| (c.status == Status::Subscribed).then(|| name.clone()));
        if name.is_none() {
            tracing::debug!(channel, "publication for a channel not subscribed dropped");
        }
        name
    }

    /// A publication whose payload is the `data` range of `frame`.
    fn on_raw_publication(
        &mut self,
        frame: &Frame,
        channel: &str,
        offset: u64,
        data: Range<usize>,
    ) {
        if self.add_to_batch(frame, channel, offset, &data) {
            return;
        }
        let Some(name) = self.subscribed(channel) else {
            return;
        };
        let payload = Payload::Shared {
            frame: frame.clone(),
            range: data,
        };
        self.on_publication(&name, offset, payload);
    }

    /// The common case of [`Session::on_raw_publication`], without a
    /// reference taken to the frame or the channel's name per publication:
    /// a new publication of a subscribed channel that nothing holds back or
    /// de-duplicates joins the batch of its frame at the back of the
    /// deliveries. Whether it did; anything else takes the general path.
    fn add_to_batch(
        &mut self,
        frame: &Frame,
        name: &str,
        offset: u64,
        data: &Range<usize>,
    ) -> bool {
        let Some(channel) = self.channels.get_mut(name) else {
            return false;
        };
        let plain = channel.status == Status::Subscribed
            && channel.chat.is_none()
            && channel.catch_up.is_none()
            && classify(&channel.position, offset) == Offset::New;
        if !plain {
            return false;
        }
        advance(&mut channel.position, offset);
        self.deliveries.push_slice(name, frame, offset, data);
        true
    }

    /// Delivers a publication exactly once and in order.
    pub(super) fn on_publication(&mut self, name: &Arc<str>, offset: u64, payload: Payload) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        match advance(&mut channel.position, offset) {
            Offset::New => {}
            Offset::Repeated => {
                tracing::debug!(channel = %name, offset, "duplicate publication dropped");
                return;
            }
            Offset::Reset => {
                tracing::warn!(channel = %name, offset, "the stream's offsets went back: a new stream");
                self.push_event(Event::Gap {
                    channel: name.to_string(),
                    missed: None,
                });
            }
        }
        let delivery = Delivery::Publication(RawPublication {
            channel: name.clone(),
            offset,
            data: payload,
        });
        self.deliver_live(name, delivery)
    }

    /// Hands a publication over, unless it is a chat message delivered
    /// already; holds it back while a catch-up or a chat fill-in it must
    /// follow is on its way.
    fn deliver_live(&mut self, name: &Arc<str>, mut delivery: Delivery) {
        let Some(channel) = self.channels.get_mut(name) else {
            return;
        };
        let key = match (&channel.chat, &delivery) {
            (Some(_), Delivery::Publication(raw)) => skim_chat_key(raw.data.text()),
            _ => None,
        };
        if let (Some(chat), Some(key)) = (&channel.chat, key)
            && chat.seen(key.id)
        {
            tracing::debug!(channel = %name, id = key.id, "chat message delivered already");
            return;
        }
        let holder = match &mut channel.catch_up {
            Some(catch_up) => Some(&mut catch_up.held),
            None => channel
                .chat
                .as_mut()
                .and_then(|chat| chat.backfill.as_mut())
                .filter(|backfill| backfill.hold_until.is_some())
                .map(|backfill| &mut backfill.held),
        };
        if let Some(held) = holder {
            // Held for a time the caller does not bound: a copy
            // (`delivery::copy_out`).
            delivery.copy_out();
            held.push((key, delivery));
            return;
        }
        self.deliver_now(name, key, delivery)
    }

    /// Hands a publication over now, once: a chat message is remembered, and
    /// skipped if it was delivered already.
    pub(super) fn deliver_now(&mut self, name: &str, key: Option<ChatKey>, delivery: Delivery) {
        if let Some(key) = key
            && let Some(chat) = self.channels.get_mut(name).and_then(|c| c.chat.as_mut())
        {
            if chat.seen(key.id) {
                return;
            }
            chat.delivered(key);
        }
        self.deliveries.push(delivery);
    }
}

/// How a publication's offset relates to the channel's position.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Offset {
    New,
    /// The offset of the last publication again: delivered already.
    Repeated,
    /// Lower than the last: the stream restarted (a new epoch).
    Reset,
}

/// How `offset` relates to the channel's `position` (every offset is new
/// to a channel that keeps none, and 0 is no offset).
pub(super) fn classify(position: &Option<Position>, offset: u64) -> Offset {
    let Some(position) = position.as_ref().filter(|_| offset > 0) else {
        return Offset::New;
    };
    match offset.cmp(&position.offset) {
        std::cmp::Ordering::Greater => Offset::New,
        std::cmp::Ordering::Equal => Offset::Repeated,
        std::cmp::Ordering::Less => Offset::Reset,
    }
}

/// Classifies `offset` and advances the position: before the publication
/// is handed over, so a slow caller can never move it backwards.
pub(super) fn advance(position: &mut Option<Position>, offset: u64) -> Offset {
    let class = classify(position, offset);
    if class != Offset::Repeated
        && offset > 0
        && let Some(position) = position
    {
        position.offset = offset;
    }
    class
}
