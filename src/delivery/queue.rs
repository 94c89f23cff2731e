//! The queue from the connection actor to the [`Events`](crate::Events)
//! stream: unbounded in count, bounded in bytes. Past its budget it does not
//! drop: it tells the actor to stop reading the socket
//! ([`Sender::over_budget`]) until the caller has taken half of it
//! ([`Watcher::room`]). Dropping is an explicit choice ([`Overflow::Drop`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;

use super::batch::{Batch, Queued};
use super::copy_out::{self, Compactor};
use super::payload::{DELIVERY_OVERHEAD, Delivery};
use super::vocabulary::{Event, Overflow};

/// What [`Receiver`] takes next: a delivery of its own, or a publication of
/// the batch being handed out.
enum Popped<'b> {
    One(Delivery),
    InBatch(&'b Batch, usize),
}

/// The state both ends of the queue share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Queued>>,
    /// Bytes queued, as counted by [`Delivery::cost`].
    bytes: AtomicUsize,
    /// Wakes the [`Receiver`] when something was queued.
    receiver_waker: AtomicWaker,
    /// Wakes the actor when the queue fell to half its budget, or the
    /// receiver was dropped.
    room: Notify,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

/// Creates the queue between the actor and the caller.
pub(crate) fn queue(budget: usize, overflow: Overflow) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(VecDeque::new()),
        bytes: AtomicUsize::new(0),
        receiver_waker: AtomicWaker::new(),
        room: Notify::new(),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    let sender = Sender {
        shared: shared.clone(),
        budget,
        overflow,
        dropped: 0,
    };
    let receiver = Receiver {
        shared,
        local: VecDeque::new(),
        batch: None,
        budget,
        taken: 0,
    };
    (sender, receiver)
}

/// The actor's end.
#[derive(Debug)]
pub(crate) struct Sender {
    shared: Arc<Shared>,
    budget: usize,
    overflow: Overflow,
    /// Publications dropped under [`Overflow::Drop`] and not reported yet.
    dropped: u64,
}

impl Sender {
    /// Queues everything in `batch`, in order, with one wake-up of the
    /// caller. Under [`Overflow::Drop`], publications past the budget are
    /// dropped and counted instead.
    pub(crate) fn send_all<Q: Into<Queued>>(&mut self, deliveries: impl IntoIterator<Item = Q>) {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return;
        }
        let mut added = 0;
        let copy = copy_out::backing_up(self.shared.bytes.load(Ordering::Acquire), self.budget);
        let mut compactor = Compactor::default();
        {
            // Its own handle: queueing borrows the sender mutably.
            let shared = Arc::clone(&self.shared);
            let mut queue = lock(&shared.queue);
            for queued in deliveries {
                let mut queued: Queued = queued.into();
                if copy {
                    queued.compact(&mut compactor);
                }
                added += match queued {
                    Queued::Batch(batch) => self.queue_batch(&mut queue, batch, added),
                    Queued::One(delivery) => self.queue_one(&mut queue, delivery, added),
                };
            }
        }
        if added > 0 {
            self.shared.bytes.fetch_add(added, Ordering::AcqRel);
            self.shared.receiver_waker.wake();
        }
    }

    /// Queues a batch for [`Sender::send_all`], which has `added` bytes
    /// queued so far; returns the bytes it queued. Under [`Overflow::Drop`]
    /// it keeps the publications that fit and counts the rest.
    fn queue_batch(
        &mut self,
        queue: &mut VecDeque<Queued>,
        mut batch: Box<Batch>,
        added: usize,
    ) -> usize {
        let mut dropped = 0;
        if self.overflow == Overflow::Drop {
            let budget = self.budget;
            let mut queued = self.shared.bytes.load(Ordering::Acquire) + added;
            // The lag marker that goes ahead of the first one kept (an
            // event) counts too.
            let mut marker = if self.dropped > 0 {
                DELIVERY_OVERHEAD
            } else {
                0
            };
            dropped = batch.keep_while(|cost| {
                let fits = queued < budget;
                queued += cost + std::mem::take(&mut marker);
                fits
            });
            if batch.len() == 0 {
                self.dropped += dropped;
                return 0;
            }
        }
        let lagged = self.report_dropped(queue);
        self.dropped += dropped;
        let cost = batch.total_cost();
        queue.push_back(Queued::Batch(batch));
        lagged + cost
    }

    /// Queues one delivery for [`Sender::send_all`], which has `added` bytes
    /// queued so far; returns the bytes it queued.
    fn queue_one(
        &mut self,
        queue: &mut VecDeque<Queued>,
        delivery: Delivery,
        added: usize,
    ) -> usize {
        if self.overflow == Overflow::Drop && delivery.is_publication() {
            let queued = self.shared.bytes.load(Ordering::Acquire) + added;
            if queued >= self.budget {
                self.dropped += 1;
                return 0;
            }
        }
        let lagged = self.report_dropped(queue);
        let cost = delivery.cost();
        queue.push_back(Queued::One(delivery));
        lagged + cost
    }

    /// Queues the [`Event::Lagged`] of the publications dropped so far, if
    /// any, ahead of what comes next; returns the bytes it queued.
    fn report_dropped(&mut self, queue: &mut VecDeque<Queued>) -> usize {
        if self.dropped == 0 {
            return 0;
        }
        let lagged = Delivery::from(Event::Lagged {
            dropped: std::mem::take(&mut self.dropped),
        });
        let cost = lagged.cost();
        queue.push_back(Queued::One(lagged));
        cost
    }

    /// Queues one delivery (see [`Sender::send_all`]).
    #[cfg(test)]
    pub(crate) fn send(&mut self, delivery: Delivery) {
        self.send_all(std::iter::once(Queued::One(delivery)));
    }

    /// Whether publications were dropped ([`Overflow::Drop`]) and their
    /// [`Event::Lagged`] still waits for room.
    pub(crate) fn has_unreported_drops(&self) -> bool {
        self.dropped > 0
    }

    /// Queues the pending [`Event::Lagged`] once the queue is within its
    /// budget again, so the caller learns of the loss without waiting for
    /// the next publication.
    pub(crate) fn report_drops(&mut self) {
        if self.dropped > 0 && self.shared.bytes.load(Ordering::Acquire) < self.budget {
            let dropped = std::mem::take(&mut self.dropped);
            self.force(Event::Lagged { dropped }.into());
        }
    }

    /// Queues the final event: it always goes, whatever the budget.
    pub(crate) fn finish(mut self, last: Event) {
        if self.dropped > 0 {
            let dropped = std::mem::take(&mut self.dropped);
            self.force(Event::Lagged { dropped }.into());
        }
        self.force(last.into());
    }

    fn force(&mut self, delivery: Delivery) {
        let cost = delivery.cost();
        lock(&self.shared.queue).push_back(Queued::One(delivery));
        self.shared.bytes.fetch_add(cost, Ordering::AcqRel);
        self.shared.receiver_waker.wake();
    }

    /// Whether the queue holds more than its budget: time to stop reading
    /// the socket (always false under [`Overflow::Drop`]).
    pub(crate) fn over_budget(&self) -> bool {
        self.watcher().over_budget()
    }

    /// Bytes queued now.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.bytes.load(Ordering::Acquire)
    }

    /// Whether the caller dropped its end.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.receiver_gone.load(Ordering::Acquire)
    }

    /// A handle that waits for room or for the caller's end, owned by
    /// whoever waits (a dial waits for room before reconnecting).
    pub(crate) fn watcher(&self) -> Watcher {
        Watcher {
            shared: self.shared.clone(),
            budget: self.budget,
            overflow: self.overflow,
        }
    }
}

/// Watches the queue's room from outside the actor's borrow of the [`Sender`].
#[derive(Debug, Clone)]
pub(crate) struct Watcher {
    shared: Arc<Shared>,
    budget: usize,
    overflow: Overflow,
}

impl Watcher {
    /// Whether the queue holds more than its budget (see [`Sender::over_budget`]).
    pub(crate) fn over_budget(&self) -> bool {
        self.overflow == Overflow::Wait
            && self.shared.bytes.load(Ordering::Acquire) > self.budget
            && !self.shared.receiver_gone.load(Ordering::Acquire)
    }

    /// Waits until the queue is back to half its budget (or the caller is gone).
    pub(crate) async fn room(&self) {
        let low_water = self.budget / 2;
        self.wait_until(|shared| {
            shared.bytes.load(Ordering::Acquire) <= low_water
                || shared.receiver_gone.load(Ordering::Acquire)
        })
        .await;
    }

    /// Waits until the caller drops its end.
    pub(crate) async fn closed(&self) {
        self.wait_until(|shared| shared.receiver_gone.load(Ordering::Acquire))
            .await;
    }

    async fn wait_until(&self, done: impl Fn(&Shared) -> bool) {
        loop {
            // Registered before the check, so a wake-up between the two is
            // not missed.
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.shared) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.sender_gone.store(true, Ordering::Release);
        self.shared.receiver_waker.wake();
    }
}

/// The caller's end, inside [`Events`](crate::Events).
#[derive(Debug)]
pub(crate) struct Receiver {
    shared: Arc<Shared>,
    /// Taken from the shared queue in one go, so that a burst costs one lock.
    local: VecDeque<Queued>,
    /// The batch being handed out, and the index of its next publication.
    batch: Option<(Box<Batch>, usize)>,
    budget: usize,
    /// Bytes read from `local` and not yet counted off the shared count.
    taken: usize,
}

impl Receiver {
    /// The next delivery, publications undecoded.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        self.poll_popped(cx, |popped| match popped {
            Popped::One(delivery) => Some(delivery),
            Popped::InBatch(batch, index) => batch.publication(index).map(Delivery::Publication),
        })
    }

    /// The next event, publications decoded (from their frame in place when
    /// they came in a batch).
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.poll_popped(cx, |popped| match popped {
            Popped::One(delivery) => Some(delivery.into_event()),
            Popped::InBatch(batch, index) => batch.decoded(index).map(Event::Publication),
        })
    }

    fn poll_popped<T>(
        &mut self,
        cx: &mut Context<'_>,
        make: impl FnOnce(Popped<'_>) -> Option<T>,
    ) -> Poll<Option<T>> {
        if self.drained() {
            self.take_shared();
            if self.local.is_empty() {
                self.shared.receiver_waker.register(cx.waker());
                // Anything queued (or a sender gone) after the first look?
                self.take_shared();
                if self.local.is_empty() {
                    return if self.shared.sender_gone.load(Ordering::Acquire) {
                        // A final look: the sender may have queued and then gone.
                        self.take_shared();
                        Poll::Ready(self.pop(make))
                    } else {
                        Poll::Pending
                    };
                }
            }
        }
        Poll::Ready(self.pop(make))
    }

    /// Waits for the next delivery.
    pub(crate) async fn recv(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn take_shared(&mut self) {
        let mut shared = lock(&self.shared.queue);
        std::mem::swap(&mut *shared, &mut self.local);
    }

    /// Whether nothing taken from the shared queue is left to hand out.
    fn drained(&self) -> bool {
        self.local.is_empty() && self.batch.is_none()
    }

    /// What `make` makes of the next delivery, or of the next publication of
    /// the batch being handed out.
    fn pop<T>(&mut self, make: impl FnOnce(Popped<'_>) -> Option<T>) -> Option<T> {
        let (made, cost) = loop {
            if let Some((batch, next)) = &mut self.batch {
                let index = *next;
                if index < batch.len() {
                    *next += 1;
                    let last = *next == batch.len();
                    let cost = batch.cost(index);
                    let made = if last {
                        let (batch, _) = self.batch.take()?;
                        make(Popped::InBatch(&batch, index))
                    } else {
                        make(Popped::InBatch(batch, index))
                    };
                    break (made, cost);
                }
                self.batch = None;
            }
            match self.local.pop_front()? {
                Queued::One(delivery) => {
                    let cost = delivery.cost();
                    break (make(Popped::One(delivery)), cost);
                }
                Queued::Batch(batch) => self.batch = Some((batch, 0)),
            }
        };
        self.taken += cost;
        // What was taken is counted off in bulk, not with an atomic operation
        // on a line the actor writes to for every delivery: once the local
        // batch is read, or a sixteenth of the budget was.
        if self.drained() || self.taken >= self.budget / 16 {
            self.count_off_taken();
        }
        made
    }

    fn count_off_taken(&mut self) {
        let taken = std::mem::take(&mut self.taken);
        if taken == 0 {
            return;
        }
        let before = self.shared.bytes.fetch_sub(taken, Ordering::AcqRel);
        let low_water = self.budget / 2;
        if before > low_water && before - taken <= low_water {
            self.shared.room.notify_waiters();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.receiver_gone.store(true, Ordering::Release);
        self.shared.room.notify_waiters();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding the lock; recover the data if it ever does.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::{CloseReason, Outbox, Payload, RawPublication};
    use crate::protocol::Frame;

    fn publication(offset: u64, payload: &str) -> Delivery {
        Delivery::Publication(RawPublication {
            channel: "c".into(),
            offset,
            data: Payload::Owned(payload.into()),
        })
    }

    fn offset_of(delivery: Delivery) -> u64 {
        match delivery.into_event() {
            Event::Publication(publication) => publication.offset,
            other => panic!("expected a publication, got {other:?}"),
        }
    }

    fn poll(receiver: &mut Receiver) -> Poll<Option<Delivery>> {
        let waker = futures::task::noop_waker();
        receiver.poll_recv(&mut Context::from_waker(&waker))
    }

    #[test]
    fn everything_arrives_in_order_past_the_budget_when_waiting() {
        let (mut sender, mut receiver) = queue(1000, Overflow::Wait);
        sender.send_all((1..=100).map(|offset| publication(offset, "{}")));
        assert!(sender.over_budget(), "100 deliveries are past 1000 bytes");
        for offset in 1..=100 {
            let Poll::Ready(Some(delivery)) = poll(&mut receiver) else {
                panic!("delivery {offset} missing");
            };
            assert_eq!(offset_of(delivery), offset);
        }
        assert!(poll(&mut receiver).is_pending());
        assert!(!sender.over_budget());
        assert_eq!(sender.queued_bytes(), 0);
    }

    #[test]
    fn dropping_counts_what_did_not_fit_and_reports_it_in_place() {
        let (mut sender, mut receiver) = queue(3 * (DELIVERY_OVERHEAD + 2), Overflow::Drop);
        sender.send_all((1..=10).map(|offset| publication(offset, "{}")));
        assert!(!sender.over_budget(), "dropping never pushes back");
        let mut offsets = Vec::new();
        while let Poll::Ready(Some(delivery)) = poll(&mut receiver) {
            offsets.push(offset_of(delivery));
        }
        assert_eq!(offsets, [1, 2, 3]);
        assert!(sender.has_unreported_drops());
        sender.report_drops();
        sender.send(publication(11, "{}"));
        let Poll::Ready(Some(lagged)) = poll(&mut receiver) else {
            panic!("lag marker missing")
        };
        assert!(matches!(lagged.into_event(), Event::Lagged { dropped: 7 }));
        let Poll::Ready(Some(next)) = poll(&mut receiver) else {
            panic!("publication missing")
        };
        assert_eq!(offset_of(next), 11);
    }

    /// A batch of `count` publications of channel "c", offsets from
    /// `first`, each payload two bytes of one frame.
    fn batch_of(frame: &Frame, first: u64, count: u64) -> Queued {
        let mut batch = Batch::new("c", frame, first, 0..2);
        for offset in first + 1..first + count {
            batch.add(offset, 0..2);
        }
        Queued::Batch(Box::new(batch))
    }

    #[test]
    fn batches_arrive_whole_and_in_order_one_slot_each() {
        let (mut sender, mut receiver) = queue(1 << 20, Overflow::Wait);
        let frame = Frame::from("{}".repeat(10));
        sender.send_all([batch_of(&frame, 1, 3), batch_of(&frame, 4, 2)]);
        assert_eq!(sender.queued_bytes(), 5 * (DELIVERY_OVERHEAD + 2));
        assert_eq!(lock(&sender.shared.queue).len(), 2, "one slot a batch");
        let mut offsets = Vec::new();
        while let Poll::Ready(Some(delivery)) = poll(&mut receiver) {
            offsets.push(offset_of(delivery));
        }
        assert_eq!(offsets, [1, 2, 3, 4, 5]);
        assert_eq!(sender.queued_bytes(), 0);
    }

    #[test]
    fn dropping_goes_publication_by_publication_through_a_batch() {
        let (mut sender, mut receiver) = queue(3 * (DELIVERY_OVERHEAD + 2), Overflow::Drop);
        let frame = Frame::from("{}".repeat(10));
        sender.send_all([batch_of(&frame, 1, 10)]);
        let mut offsets = Vec::new();
        while let Poll::Ready(Some(delivery)) = poll(&mut receiver) {
            offsets.push(offset_of(delivery));
        }
        assert_eq!(offsets, [1, 2, 3]);
        sender.report_drops();
        let Poll::Ready(Some(lagged)) = poll(&mut receiver) else {
            panic!("lag marker missing")
        };
        assert!(matches!(lagged.into_event(), Event::Lagged { dropped: 7 }));
    }

    #[test]
    fn lifecycle_events_are_never_dropped() {
        let (mut sender, mut receiver) = queue(0, Overflow::Drop);
        sender.send(Event::Connected { client: "a".into() }.into());
        let Poll::Ready(Some(delivery)) = poll(&mut receiver) else {
            panic!("event missing")
        };
        assert!(matches!(delivery.into_event(), Event::Connected { .. }));
    }

    #[test]
    fn the_stream_ends_after_the_final_event_once_the_sender_is_gone() {
        let (mut sender, mut receiver) = queue(10, Overflow::Wait);
        sender.send(publication(1, "{}"));
        sender.finish(Event::Closed {
            reason: CloseReason::Requested,
        });
        let Poll::Ready(Some(first)) = poll(&mut receiver) else {
            panic!()
        };
        assert_eq!(offset_of(first), 1);
        let Poll::Ready(Some(last)) = poll(&mut receiver) else {
            panic!()
        };
        assert!(matches!(last.into_event(), Event::Closed { .. }));
        assert!(matches!(poll(&mut receiver), Poll::Ready(None)));
    }

    /// Publications of `channel` whose payloads are the words of `frame`.
    fn from_frame(frame: &Frame, channel: &Arc<str>, first_offset: u64) -> Vec<Delivery> {
        let mut start = 0;
        frame
            .as_str()
            .split(' ')
            .enumerate()
            .map(|(index, word)| {
                let range = start..start + word.len();
                start += word.len() + 1;
                Delivery::Publication(RawPublication {
                    channel: channel.clone(),
                    offset: first_offset + index as u64,
                    data: Payload::Shared {
                        frame: frame.clone(),
                        range,
                    },
                })
            })
            .collect()
    }

    /// `deliveries` as the session hands them over: joined into batches.
    fn outbox(deliveries: Vec<Delivery>) -> Outbox {
        let mut outbox = Outbox::default();
        for delivery in deliveries {
            outbox.push(delivery);
        }
        outbox
    }

    fn received(receiver: &mut Receiver) -> Vec<(String, u64, String)> {
        let mut out = Vec::new();
        while let Poll::Ready(Some(delivery)) = poll(receiver) {
            out.push(match delivery {
                Delivery::Publication(raw) => (
                    raw.channel.to_string(),
                    raw.offset,
                    raw.data.text().to_owned(),
                ),
                Delivery::Event(event) => (format!("{event:?}"), 0, String::new()),
            });
        }
        out
    }

    #[test]
    fn a_frames_publications_travel_as_one_batch_and_come_out_one_by_one_in_order() {
        let (mut sender, mut receiver) = queue(1 << 20, Overflow::Wait);
        let frame = Frame::from("1 2 3 4 5".to_owned());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut batch = from_frame(&frame, &a, 10);
        batch.insert(3, from_frame(&Frame::from("x".to_owned()), &b, 7).remove(0));
        batch.push(Event::Lagged { dropped: 1 }.into());
        batch.extend(from_frame(&frame, &a, 20));
        let cost: usize = batch.iter().map(Delivery::cost).sum();
        sender.send_all(outbox(batch).drain());
        assert_eq!(sender.queued_bytes(), cost);
        {
            let queue = lock(&sender.shared.queue);
            let batches = queue
                .iter()
                .filter(|q| matches!(q, Queued::Batch(_)))
                .count();
            assert_eq!(
                (queue.len(), batches),
                (5, 3),
                "a a a | b | a a | lag | a×5"
            );
        }
        let got = received(&mut receiver);
        let expected: Vec<(String, u64, String)> = [
            ("a", 10, "1"),
            ("a", 11, "2"),
            ("a", 12, "3"),
            ("b", 7, "x"),
            ("a", 13, "4"),
            ("a", 14, "5"),
        ]
        .iter()
        .map(|(c, o, t)| (c.to_string(), *o, t.to_string()))
        .collect();
        assert_eq!(got[..6], expected[..]);
        assert_eq!(got[6].0, "Lagged { dropped: 1 }");
        let offsets: Vec<u64> = got[7..].iter().map(|p| p.1).collect();
        assert_eq!(offsets, [20, 21, 22, 23, 24]);
        assert_eq!(sender.queued_bytes(), 0, "every publication counted off");
    }

    #[test]
    fn events_decoded_in_place_equal_the_deliveries_decoded_one_by_one() {
        let frame = Frame::from(r#"{"type":"x","data":{}} 2 "three" [4] 5"#.to_owned());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let deliveries = || {
            let mut batch = from_frame(&frame, &a, 10);
            batch.insert(2, from_frame(&frame, &b, 3).remove(0));
            batch.push(Event::Lagged { dropped: 1 }.into());
            batch
        };
        let (mut in_place_sender, mut in_place) = queue(1 << 20, Overflow::Wait);
        let (mut one_by_one_sender, mut one_by_one) = queue(1 << 20, Overflow::Wait);
        in_place_sender.send_all(outbox(deliveries()).drain());
        one_by_one_sender.send_all(deliveries());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut got = Vec::new();
        while let Poll::Ready(Some(event)) = in_place.poll_event(&mut cx) {
            got.push(format!("{event:?}"));
        }
        let mut expected = Vec::new();
        while let Poll::Ready(Some(delivery)) = poll(&mut one_by_one) {
            expected.push(format!("{:?}", delivery.into_event()));
        }
        assert_eq!(got.len(), 7, "six publications and the lag: {got:?}");
        assert_eq!(got, expected);
        assert_eq!(
            in_place_sender.queued_bytes(),
            0,
            "every publication counted off"
        );
    }

    #[tokio::test]
    async fn reads_counted_off_in_bulk_still_make_room_and_never_lose_count() {
        let cost = DELIVERY_OVERHEAD + 2;
        let (mut sender, mut receiver) = queue(64 * cost, Overflow::Wait);
        sender.send_all((1..=80).map(|offset| publication(offset, "{}")));
        assert!(sender.over_budget());
        let reader = tokio::spawn(async move {
            for _ in 0..60 {
                receiver.recv().await.unwrap();
            }
            receiver
        });
        let watcher = sender.watcher();
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher.room())
            .await
            .expect("room once more than half the budget was read");
        let mut receiver = reader.await.unwrap();
        // Counted off at most a sixteenth of the budget late.
        assert!(sender.queued_bytes() <= 20 * cost + 64 * cost / 16);
        while let Poll::Ready(Some(_)) = poll(&mut receiver) {}
        assert_eq!(sender.queued_bytes(), 0, "everything read is counted off");
    }

    #[tokio::test]
    async fn room_wakes_the_actor_once_half_the_budget_was_read() {
        let cost = DELIVERY_OVERHEAD + 2;
        let (mut sender, mut receiver) = queue(4 * cost, Overflow::Wait);
        sender.send_all((1..=6).map(|offset| publication(offset, "{}")));
        assert!(sender.over_budget());
        let reader = tokio::spawn(async move {
            for _ in 0..4 {
                receiver.recv().await.unwrap();
            }
            receiver
        });
        let watcher = sender.watcher();
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher.room())
            .await
            .expect("room after the reader took four");
        assert!(sender.queued_bytes() <= 2 * cost);
        drop(reader.await.unwrap());
        assert!(sender.is_closed());
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher.closed())
            .await
            .expect("closed once the receiver is gone");
    }
}
