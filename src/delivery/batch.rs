//! Publications of one frame travel together: the one place they join
//! batches.
//!
//! A frame of a hundred publications of one channel then costs the caller
//! one slot to read and the actor one reference to the frame and to the
//! channel's name, instead of a hundred of each bouncing between the two
//! threads.

use std::ops::Range;
use std::sync::Arc;

use super::copy_out::{self, Compactor};
use super::payload::{DELIVERY_OVERHEAD, Delivery, Payload, RawPublication};
use super::vocabulary::{Event, Publication};
use crate::event::VkEvent;
use crate::protocol::Frame;

/// What the queue holds: a delivery, or the publications of one channel
/// that arrived together in one frame, handed over as one.
#[derive(Debug)]
pub(crate) enum Queued {
    One(Delivery),
    Batch(Box<Batch>),
}

impl From<Delivery> for Queued {
    fn from(delivery: Delivery) -> Queued {
        Queued::One(delivery)
    }
}

impl Queued {
    /// Its deliveries one by one (a batch's publications each sharing the
    /// frame).
    pub(crate) fn into_deliveries(self) -> Vec<Delivery> {
        match self {
            Queued::One(delivery) => vec![delivery],
            Queued::Batch(batch) => batch.into_publications().collect(),
        }
    }

    /// What the caller would get from it, decoded (for tests of the session).
    #[cfg(test)]
    pub(crate) fn into_events(self) -> Vec<Event> {
        let deliveries = self.into_deliveries();
        deliveries.into_iter().map(Delivery::into_event).collect()
    }
}

/// Deliveries on their way to the queue, in order, as the session makes
/// them: the one place where publications join batches (the queue takes
/// them as they come), and where a frame's publications are copied out of
/// it when they are not most of it (see [`copy_out`]).
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    items: Vec<Queued>,
    /// Where the frame being read started in `items`.
    frame_start: usize,
    /// Bytes of payload the frame being read shares with its publications.
    shared: usize,
}

impl Outbox {
    /// Adds a delivery: a publication that shares its frame joins the batch
    /// of its frame and channel at the back.
    pub(crate) fn push(&mut self, delivery: Delivery) {
        if let Delivery::Publication(raw) = &delivery
            && let Payload::Shared { frame, range } = &raw.data
        {
            self.shared += range.len();
            if self.join(&raw.channel, frame, raw.offset, range) {
                return;
            }
        }
        self.items.push(Queued::One(delivery));
    }

    /// Adds an event.
    pub(crate) fn push_event(&mut self, event: Event) {
        self.items.push(Queued::One(event.into()));
    }

    /// Adds the publication of `channel` at `offset` whose payload is
    /// `range` of `frame`: [`Outbox::push`] without a reference taken to the
    /// frame or to the channel's name (the common case of a busy channel).
    pub(crate) fn push_slice(
        &mut self,
        channel: &str,
        frame: &Frame,
        offset: u64,
        range: &Range<usize>,
    ) {
        self.shared += range.len();
        if !self.join(channel, frame, offset, range) {
            let batch = Batch::new(channel, frame, offset, range.clone());
            self.items.push(Queued::Batch(Box::new(batch)));
        }
    }

    /// Adds the publication to the batch of its frame and channel at the
    /// back, or makes one with the lone publication there; whether it did.
    fn join(&mut self, channel: &str, frame: &Frame, offset: u64, range: &Range<usize>) -> bool {
        let Some(back) = self.items.last_mut() else {
            return false;
        };
        match back {
            Queued::Batch(batch) if batch.holds(channel, frame) => {
                batch.add(offset, range.clone());
                true
            }
            Queued::One(Delivery::Publication(previous)) => {
                let Payload::Shared {
                    frame: theirs,
                    range: first,
                } = &previous.data
                else {
                    return false;
                };
                if !theirs.is_same(frame) || *previous.channel != *channel {
                    return false;
                }
                let mut batch = Batch::new(channel, frame, previous.offset, first.clone());
                batch.add(offset, range.clone());
                *back = Queued::Batch(Box::new(batch));
                true
            }
            _ => false,
        }
    }

    /// A frame is read from here on.
    pub(crate) fn begin_frame(&mut self) {
        self.frame_start = self.items.len();
        self.shared = 0;
    }

    /// The frame is read: its publications are copied out of it if they are
    /// not most of it (see [`copy_out`]).
    pub(crate) fn end_frame(&mut self, frame: &Frame) {
        if copy_out::worth_sharing(self.shared, frame.len()) {
            return;
        }
        let new: Vec<Queued> = self.items.drain(self.frame_start..).collect();
        for mut delivery in new.into_iter().flat_map(Queued::into_deliveries) {
            delivery.copy_out();
            self.items.push(Queued::One(delivery));
        }
    }

    /// Everything added, in order.
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Queued> {
        self.frame_start = 0;
        self.items.drain(..)
    }
}

/// Publications of one channel sharing one frame, in order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// A name of its own (not the session's), so that the caller's clones
    /// never touch a count the actor is using.
    channel: Arc<str>,
    pub(super) frame: Frame,
    /// Offset and payload range of each publication.
    items: Vec<(u64, Range<usize>)>,
}

impl Batch {
    /// A batch of one publication, the `range` of `frame`, published in
    /// `channel` at `offset`.
    pub(crate) fn new(channel: &str, frame: &Frame, offset: u64, range: Range<usize>) -> Batch {
        let mut items = Vec::with_capacity(16);
        items.push((offset, range));
        Batch {
            // A name of its own, see `Batch::channel`.
            channel: Arc::from(channel),
            frame: frame.clone(),
            items,
        }
    }

    /// How many publications it holds.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether a publication of `channel` cut from `frame` belongs here.
    fn holds(&self, channel: &str, frame: &Frame) -> bool {
        self.frame.is_same(frame) && *self.channel == *channel
    }

    /// Adds the publication at `offset` whose payload is `range` of the frame.
    pub(crate) fn add(&mut self, offset: u64, range: Range<usize>) {
        self.items.push((offset, range));
    }

    /// Its publications one by one, each sharing the frame.
    pub(crate) fn into_publications(self) -> impl Iterator<Item = Delivery> {
        (0..self.items.len())
            .filter_map(move |index| self.publication(index).map(Delivery::Publication))
    }

    /// What all its publications are counted as (see [`Delivery::cost`]).
    pub(super) fn total_cost(&self) -> usize {
        (0..self.items.len()).map(|index| self.cost(index)).sum()
    }

    /// Keeps its first publications, as long as `fits` accepts each one's
    /// cost; returns how many it dropped after them.
    pub(super) fn keep_while(&mut self, mut fits: impl FnMut(usize) -> bool) -> u64 {
        let kept = self
            .items
            .iter()
            .take_while(|(_, range)| fits(DELIVERY_OVERHEAD + range.len()))
            .count();
        let dropped = self.items.len() - kept;
        self.items.truncate(kept);
        dropped as u64
    }

    /// Its publication number `index`, undecoded, for the caller.
    pub(super) fn publication(&self, index: usize) -> Option<RawPublication> {
        let (offset, range) = self.items.get(index)?;
        Some(RawPublication {
            channel: self.channel.clone(),
            offset: *offset,
            data: Payload::Shared {
                frame: self.frame.clone(),
                range: range.clone(),
            },
        })
    }

    /// Its publication number `index`, decoded from the frame in place:
    /// no reference to the frame is taken, so the caller does not write to
    /// the frame's reference count (a line the actor writes to while it
    /// cuts the next frame from the same read buffer) once per publication.
    pub(super) fn decoded(&self, index: usize) -> Option<Publication> {
        let (offset, range) = self.items.get(index)?;
        Some(Publication::new(
            self.channel.clone(),
            *offset,
            VkEvent::decode_json(self.frame.slice(range)),
        ))
    }

    /// What its publication number `index` is counted as (see [`Delivery::cost`]).
    pub(super) fn cost(&self, index: usize) -> usize {
        self.items
            .get(index)
            .map_or(0, |(_, range)| DELIVERY_OVERHEAD + range.len())
    }
}

// What a queue backing up does to what it takes (see `copy_out`).

impl Queued {
    /// Points its publications at a copy of their frame.
    pub(super) fn compact(&mut self, compactor: &mut Compactor) {
        match self {
            Queued::One(delivery) => delivery.compact(compactor),
            Queued::Batch(batch) => batch.compact(compactor),
        }
    }
}

impl Batch {
    /// Points the batch at a copy of its frame.
    pub(super) fn compact(&mut self, compactor: &mut Compactor) {
        self.frame = compactor.copy_of(&self.frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(channel: &str, frame: &Frame, offset: u64, range: Range<usize>) -> Delivery {
        Delivery::Publication(RawPublication {
            channel: channel.into(),
            offset,
            data: Payload::Shared {
                frame: frame.clone(),
                range,
            },
        })
    }

    fn shape(outbox: &mut Outbox) -> Vec<String> {
        outbox
            .drain()
            .map(|queued| match queued {
                Queued::Batch(batch) => format!("{}×{}", batch.channel, batch.len()),
                Queued::One(Delivery::Publication(raw)) => format!("{} alone", raw.channel),
                Queued::One(Delivery::Event(_)) => "event".to_owned(),
            })
            .collect()
    }

    #[test]
    fn publications_of_a_frame_join_one_batch_per_run_of_a_channel_whichever_way_they_come() {
        let frame = Frame::from("aabbccddee".to_owned());
        let other = Frame::from("aabbccddee".to_owned());
        let mut outbox = Outbox::default();
        outbox.push(shared("a", &frame, 1, 0..2));
        outbox.push_slice("a", &frame, 2, &(2..4));
        outbox.push(shared("a", &frame, 3, 4..6));
        outbox.push_slice("b", &frame, 1, &(6..8));
        outbox.push_event(Event::Lagged { dropped: 1 });
        outbox.push(shared("b", &frame, 2, 8..10));
        outbox.push_slice("b", &other, 3, &(0..2));
        outbox.push(Delivery::Publication(RawPublication {
            channel: "b".into(),
            offset: 4,
            data: Payload::Owned("{}".into()),
        }));
        assert_eq!(
            shape(&mut outbox),
            ["a×3", "b×1", "event", "b alone", "b×1", "b alone"],
            "a run joins, another channel, an event, another frame or a copy does not"
        );
    }

    #[test]
    fn a_frame_mostly_made_of_something_else_is_copied_out_publication_by_publication() {
        let mostly = Frame::from("{}{}{}".to_owned());
        let little = Frame::from(format!("{{}}{}", " ".repeat(100)));
        let mut outbox = Outbox::default();
        for frame in [&mostly, &little] {
            outbox.begin_frame();
            outbox.push_slice("a", frame, 1, &(0..2));
            outbox.push_slice("a", frame, 2, &(0..2));
            outbox.end_frame(frame);
        }
        let queued: Vec<Queued> = outbox.drain().collect();
        assert!(matches!(&queued[0], Queued::Batch(batch) if batch.frame.is_same(&mostly)));
        assert_eq!(queued.len(), 3, "{queued:?}");
        for copied in &queued[1..] {
            let Queued::One(Delivery::Publication(raw)) = copied else {
                panic!("{copied:?}");
            };
            assert!(matches!(&raw.data, Payload::Owned(text) if &**text == "{}"));
        }
    }
}
