//! The bounded road from the actor to the caller, with the slow-consumer rule.

use std::collections::VecDeque;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Permit, Sender};

use crate::client::{Delivery, Event};

/// What the outbox carries: an [`Event`], or something that stands for one
/// ([`Delivery`], whose publications the caller's task decodes).
pub(crate) trait Item: From<Event> {
    /// The count of an `Event::Lagged`, to add dropped publications to.
    fn lagged(&mut self) -> Option<&mut u64>;

    /// Stops sharing the received frame, if it does.
    fn unshare(&mut self) {}
}

impl Item for Event {
    fn lagged(&mut self) -> Option<&mut u64> {
        match self {
            Event::Lagged { dropped } => Some(dropped),
            _ => None,
        }
    }
}

impl Item for Delivery {
    fn lagged(&mut self) -> Option<&mut u64> {
        match self {
            Delivery::Event(event) => event.lagged(),
            Delivery::Publication(_) => None,
        }
    }

    fn unshare(&mut self) {
        if let Delivery::Publication(publication) = self {
            publication.data.unshare();
        }
    }
}

/// Lifecycle events kept while the caller is not reading. They are rare, so
/// reaching this limit means the caller stopped reading for good.
const BACKLOG_LIMIT: usize = 1024;

/// Delivers events without ever blocking the actor, so pings are answered
/// whatever the caller does.
///
/// Policy (see `docs/reliability.md`): the channel to the caller is bounded.
/// When it is full, a publication is dropped and counted; the count reaches
/// the caller as one [`Event::Lagged`] in the place where the publications
/// were lost. Lifecycle events are never dropped while fewer than
/// `BACKLOG_LIMIT` wait. Memory therefore stays bounded by the channel's
/// capacity plus the small backlog.
pub(crate) struct Outbox<T: Item = Delivery> {
    tx: Sender<T>,
    backlog: VecDeque<T>,
    /// Publications from the frame being read, not yet offered.
    held: Vec<T>,
}

/// Most publications held before they are offered anyway.
const HOLD_LIMIT: usize = 128;

impl<T: Item> Outbox<T> {
    pub(crate) fn new(tx: Sender<T>) -> Self {
        Outbox {
            tx,
            backlog: VecDeque::new(),
            held: Vec::new(),
        }
    }

    /// Holds a publication until [`Outbox::release`] (or until
    /// `HOLD_LIMIT` wait), then offers it as [`Outbox::publication`] does.
    ///
    /// Why: offered one by one while a frame is decoded, each publication
    /// finds the caller's task parked (it drained the previous one at once)
    /// and wakes it again, a futex wake and a context switch per event.
    /// Offered together, a frame's publications cost one wake-up.
    pub(crate) fn hold(&mut self, event: T) {
        self.held.push(event);
        if self.held.len() >= HOLD_LIMIT {
            self.release();
        }
    }

    /// Copies the payloads of the held publications out of their frame.
    pub(crate) fn unshare_held(&mut self) {
        self.held.iter_mut().for_each(Item::unshare);
    }

    /// Offers the held publications, in order, under the slow-consumer rule.
    pub(crate) fn release(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        for event in held.drain(..) {
            self.publication(event);
        }
        // Keep the allocation for the next frame.
        self.held = held;
    }

    /// Whether the channel is more than half full.
    pub(crate) fn backing_up(&self) -> bool {
        self.tx.capacity() < self.tx.max_capacity() / 2
    }

    pub(crate) fn sender(&self) -> &Sender<T> {
        &self.tx
    }

    /// Whether events wait for room in the channel.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Hands over a publication, or drops and counts it if the caller lags.
    pub(crate) fn publication(&mut self, event: T) {
        self.flush_ready();
        if self.backlog.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(_)) => {}
            }
        }
        self.count_dropped();
    }

    /// Hands over a lifecycle event, keeping it in the backlog if the caller
    /// lags. Held publications go first: they happened before it.
    pub(crate) fn lifecycle(&mut self, event: Event) {
        let event = T::from(event);
        self.release();
        self.flush_ready();
        if self.backlog.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(event)) => self.push_backlog(event),
            }
        } else {
            self.push_backlog(event);
        }
    }

    /// Uses a reserved slot for the oldest waiting event, then sends whatever
    /// else fits.
    pub(crate) fn flush(&mut self, permit: Permit<'_, T>) {
        match self.backlog.pop_front() {
            Some(event) => permit.send(event),
            None => drop(permit),
        }
        self.flush_ready();
    }

    /// Delivers the backlog and then `last`, waiting for the caller as long as
    /// it takes (or until it drops the stream).
    pub(crate) async fn finish(mut self, last: Event) {
        self.release();
        while let Some(event) = self.backlog.pop_front() {
            if self.tx.send(event).await.is_err() {
                return;
            }
        }
        let _ = self.tx.send(T::from(last)).await;
    }

    fn flush_ready(&mut self) {
        while let Some(event) = self.backlog.pop_front() {
            match self.tx.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.backlog.push_front(event);
                    return;
                }
                Err(TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    return;
                }
            }
        }
    }

    fn count_dropped(&mut self) {
        if let Some(dropped) = self.backlog.back_mut().and_then(Item::lagged) {
            *dropped += 1;
        } else {
            self.push_backlog(T::from(Event::Lagged { dropped: 1 }));
        }
    }

    fn push_backlog(&mut self, event: T) {
        if self.backlog.len() >= BACKLOG_LIMIT {
            self.backlog.pop_front();
        }
        self.backlog.push_back(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Publication;
    use crate::event::VkEvent;
    use tokio::sync::mpsc;

    fn publication(offset: u64) -> Event {
        let raw = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        Event::Publication(Publication {
            channel: "c".into(),
            offset,
            event: VkEvent::decode(&raw),
        })
    }

    fn offset_of(event: &Event) -> u64 {
        match event {
            Event::Publication(publication) => publication.offset,
            other => panic!("expected a publication, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_channel_drops_publications_and_reports_one_lag_in_place() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut outbox = Outbox::new(tx);
        for offset in 1..=10 {
            outbox.publication(publication(offset));
        }
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 1);
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 2);
        // Room again: the next publication first lets the lag marker through.
        outbox.publication(publication(11));
        assert!(matches!(
            rx.recv().await.unwrap(),
            Event::Lagged { dropped: 8 }
        ));
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 11);
        assert!(!outbox.has_backlog());
    }

    #[tokio::test]
    async fn lifecycle_events_wait_in_the_backlog_instead_of_being_dropped() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        outbox.publication(publication(1));
        outbox.lifecycle(Event::Connected { client: "a".into() });
        assert!(outbox.has_backlog());
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 1);
        let sender = outbox.sender().clone();
        let permit = sender.reserve().await.unwrap();
        outbox.flush(permit);
        assert!(matches!(rx.recv().await.unwrap(), Event::Connected { .. }));
    }

    #[tokio::test]
    async fn held_publications_arrive_on_release_in_order_with_lifecycle_events() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut outbox = Outbox::new(tx);
        outbox.hold(publication(1));
        outbox.hold(publication(2));
        assert!(rx.try_recv().is_err(), "held until released");
        // A lifecycle event comes after the publications held before it.
        outbox.lifecycle(Event::Connected { client: "a".into() });
        outbox.hold(publication(3));
        outbox.release();
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 1);
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 2);
        assert!(matches!(rx.recv().await.unwrap(), Event::Connected { .. }));
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 3);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn held_publications_follow_the_slow_consumer_rule_and_stay_bounded() {
        let (tx, mut rx) = mpsc::channel(2);
        let mut outbox = Outbox::new(tx);
        let last = HOLD_LIMIT as u64 + 1;
        for offset in 1..=last {
            outbox.hold(publication(offset));
        }
        // HOLD_LIMIT reached: the first ones were offered without a release,
        // two fitted, the rest were dropped and counted.
        assert_eq!(outbox.held.len(), 1);
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 1);
        assert_eq!(offset_of(&rx.recv().await.unwrap()), 2);
        outbox.release();
        assert!(matches!(
            rx.recv().await.unwrap(),
            Event::Lagged { dropped } if dropped == HOLD_LIMIT as u64 - 2
        ));
        assert_eq!(offset_of(&rx.recv().await.unwrap()), last);
    }

    #[tokio::test]
    async fn backing_up_once_the_channel_is_more_than_half_full() {
        let (tx, mut rx) = mpsc::channel::<Event>(4);
        let mut outbox = Outbox::new(tx);
        outbox.publication(publication(1));
        outbox.publication(publication(2));
        assert!(!outbox.backing_up());
        outbox.publication(publication(3));
        assert!(outbox.backing_up());
        rx.recv().await.unwrap();
        rx.recv().await.unwrap();
        assert!(!outbox.backing_up());
    }

    #[tokio::test]
    async fn unshared_payloads_no_longer_keep_the_frame_and_decode_the_same() {
        use crate::client::{Delivery, Events, Payload, RawPublication};
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Utf8Bytes;

        let payload = r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#;
        let frame = Utf8Bytes::from(format!("{{\"big\":\"{}\"}}\n{payload}", "x".repeat(1000)));
        let start = frame.as_str().find(payload).unwrap();
        let (tx, rx) = mpsc::channel::<Delivery>(4);
        let mut outbox = Outbox::new(tx);
        for offset in [1, 2] {
            outbox.hold(Delivery::Publication(RawPublication {
                channel: "c".into(),
                offset,
                data: Payload::Shared {
                    frame: frame.clone(),
                    range: start..start + payload.len(),
                },
            }));
        }
        outbox.unshare_held();
        assert!(outbox.held.iter().all(|held| matches!(
            held,
            Delivery::Publication(RawPublication {
                data: Payload::Owned(_),
                ..
            })
        )));
        outbox.release();
        let mut events = Events::from_receiver(rx);
        for offset in [1, 2] {
            let Some(Event::Publication(publication)) = events.next().await else {
                panic!("expected a publication");
            };
            assert_eq!(publication.offset, offset);
            assert!(matches!(publication.event, VkEvent::ChatMessageDelete(d) if d.id == 7));
        }
    }

    #[tokio::test]
    async fn backlog_stays_bounded_when_nobody_reads() {
        let (tx, _rx) = mpsc::channel(1);
        let mut outbox = Outbox::new(tx);
        for _ in 0..10_000 {
            outbox.lifecycle(Event::Connected { client: "a".into() });
            outbox.publication(publication(1));
        }
        assert!(outbox.backlog.len() <= BACKLOG_LIMIT);
    }
}
