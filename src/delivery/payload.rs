//! What travels from the actor to the caller, one delivery at a time, and
//! what each is counted as against the budget.

use std::ops::Range;
use std::sync::Arc;

use super::vocabulary::{Event, Publication};
use crate::event::VkEvent;
use crate::protocol::Frame;

/// What travels from the connection actor to [`Events`](crate::Events): a
/// ready event, or a publication whose payload is decoded in the caller's
/// task.
///
/// Why the caller's task: a typed event is a tree of `String`s and `Vec`s
/// (about nine allocations for a chat message). Built in the actor's task
/// and dropped in the caller's, on another thread of a multi-threaded
/// runtime, every one of them is freed on a thread that did not allocate
/// it, which the system allocator serializes on a lock shared with the
/// allocating thread. Decoded where it is dropped, nothing crosses threads
/// but a reference to the received frame.
#[derive(Debug)]
pub(crate) enum Delivery {
    Event(Box<Event>),
    Publication(RawPublication),
}

impl From<Event> for Delivery {
    fn from(event: Event) -> Self {
        Delivery::Event(Box::new(event))
    }
}

/// What one queued delivery is counted as, besides its payload: the slot,
/// the channel's reference count, and the decoded event's boxes.
pub(super) const DELIVERY_OVERHEAD: usize = 128;

impl Delivery {
    pub(crate) fn into_event(self) -> Event {
        match self {
            Delivery::Event(event) => *event,
            Delivery::Publication(raw) => Event::Publication(raw.decode()),
        }
    }

    /// Bytes this delivery is counted as against the budget.
    pub(crate) fn cost(&self) -> usize {
        match self {
            Delivery::Publication(raw) => DELIVERY_OVERHEAD + raw.data.text().len(),
            Delivery::Event(event) => match &**event {
                // Only chat filled in from REST travels decoded: a chat
                // message's usual size.
                Event::Publication(_) => DELIVERY_OVERHEAD + 1024,
                _ => DELIVERY_OVERHEAD,
            },
        }
    }

    pub(super) fn is_publication(&self) -> bool {
        match self {
            Delivery::Publication(_) => true,
            Delivery::Event(event) => matches!(**event, Event::Publication(_)),
        }
    }
}

/// A publication the actor accepted (subscribed channel, new offset, a
/// line that decodes), with its payload still in the received frame.
#[derive(Debug)]
pub(crate) struct RawPublication {
    pub(crate) channel: Arc<str>,
    pub(crate) offset: u64,
    pub(crate) data: Payload,
}

impl RawPublication {
    pub(super) fn decode(self) -> Publication {
        Publication::new(
            self.channel,
            self.offset,
            VkEvent::decode_json(self.data.text()),
        )
    }
}

/// A publication's payload (`pub.data`), one JSON value as received.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A place in the received frame, shared (a reference count, not a copy).
    Shared { frame: Frame, range: Range<usize> },
    /// A copy (see [`copy_out`](super::copy_out) for when).
    Owned(Box<str>),
}

impl Payload {
    pub(crate) fn text(&self) -> &str {
        match self {
            Payload::Shared { frame, range } => frame.slice(range),
            Payload::Owned(text) => text,
        }
    }
}
