//! What reaches the caller, and the road it travels.
//!
//! The caller's vocabulary ([`Event`], [`Publication`], [`Recovery`],
//! [`CloseReason`], [`State`]) and the queue from the connection actor to
//! the [`Events`](crate::Events) stream: unbounded in count, bounded in
//! bytes. Past its budget the queue does not drop: it tells the actor to
//! stop reading the socket ([`Sender::over_budget`]) until the caller has
//! taken half of it ([`Sender::room`]). Dropping is an explicit choice
//! ([`Overflow::Drop`]).
//!
//! This module imports nothing else of the crate but the leaf types it
//! carries (`event`, `error`), so every other module may use it.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::Error;
use crate::event::{ChatSummary, VkEvent};

/// Something that happened on the connection: a publication, or a lifecycle
/// change. The stream ends after [`Event::Closed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A publication in a subscribed channel, in order.
    Publication(Publication),
    /// The connection is up (after the first connect and after every reconnect).
    Connected {
        /// Client id the server assigned.
        client: String,
    },
    /// The connection was lost; the connector reconnects with backoff.
    Disconnected {
        /// WebSocket close code, when the server sent one.
        code: Option<u16>,
        /// What happened.
        reason: String,
    },
    /// A channel is subscribed (again).
    Subscribed {
        /// The channel.
        channel: String,
        /// Whether publications missed while away were recovered.
        recovery: Recovery,
    },
    /// Publications of `channel` may have been missed and could not be
    /// recovered (from the server's history, or for chat from the REST
    /// API). It stands where the loss happened: before the publications that
    /// follow it. See `docs/reliability.md`.
    Gap {
        /// The channel.
        channel: String,
        /// How many were missed, when stream offsets tell it; `None` when the
        /// server keeps no positions (the count is unknown and may be zero).
        missed: Option<u64>,
    },
    /// The server refused to subscribe a channel; it will not be retried.
    SubscriptionFailed {
        /// The channel.
        channel: String,
        /// Centrifugo error code (103 permission denied, 106 limit exceeded,
        /// 107 for an invalid name), or 0 when the API refused its token request.
        code: u32,
        /// The server's message.
        reason: String,
    },
    /// A subscription ended: the server unsubscribed us with a terminal code,
    /// or [`Client::unsubscribe`](crate::Client::unsubscribe) was called (code 0).
    Unsubscribed {
        /// The channel.
        channel: String,
        /// Unsubscribe code (0 when asked for by this client).
        code: u32,
        /// The reason.
        reason: String,
    },
    /// Only with [`Overflow::Drop`]: the caller read too slowly and this many
    /// publications were dropped to keep memory within the budget.
    Lagged {
        /// Publications dropped since the last delivered event.
        dropped: u64,
    },
    /// The connection ended for good; nothing follows.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// A publication: where it came from and the decoded VK event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Publication {
    /// The channel it was published in.
    pub channel: Arc<str>,
    /// Its position in the channel's stream (0 when the channel keeps none,
    /// and for chat filled in from the REST API).
    pub offset: u64,
    /// The decoded event.
    pub event: VkEvent,
    /// Filled in from the REST API (`GET /v1/chat/messages`) after the
    /// link was down and the server could not recover the chat: it was not
    /// received live. Its order among the others is by message time and id.
    pub backfilled: bool,
}

impl Publication {
    /// A publication received live or recovered from the server's history.
    pub fn new(channel: Arc<str>, offset: u64, event: VkEvent) -> Publication {
        Publication {
            channel,
            offset,
            event,
            backfilled: false,
        }
    }
}

/// The recovery outcome of a (re)subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A first subscription: nothing to recover.
    NotRequested,
    /// Every publication missed while away was delivered (right after this event).
    Recovered,
    /// A resubscription after the link was down, and the server could not
    /// recover what was missed (or keeps no history at all). An
    /// [`Event::Gap`] follows unless the chat could be filled in from REST.
    Failed,
}

/// Why the connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Client::close`](crate::Client::close) was called, or the
    /// [`Events`](crate::Events) stream was dropped.
    Requested,
    /// A permanent failure: a rejected token, a terminal close code, a
    /// non-temporary connect error.
    Failed(Error),
}

/// The connection's state, as seen from a [`Client`](crate::Client).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Fetching tokens, dialing, or waiting to retry.
    Connecting,
    /// Connected.
    Connected,
    /// Ended; see the final [`Event::Closed`].
    Closed,
}

/// The pool of connections behind a [`Client`](crate::Client), as
/// [`Client::pool_state`](crate::Client::pool_state) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolState {
    /// Every open or opening connection, oldest first.
    pub connections: Vec<ConnectionState>,
}

/// One connection of the pool.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionState {
    /// Its number (as in the `connection` span of its log lines).
    pub id: u64,
    /// Connecting or connected.
    pub state: State,
    /// Channels placed on it.
    pub channels_wanted: usize,
    /// Of those, the ones the server confirmed.
    pub channels_subscribed: usize,
    /// Channels it may carry (the configured limit, or less after a 106).
    pub limit: usize,
}

/// What to do when the caller reads more slowly than events arrive and the
/// delivery budget is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Stop reading the socket until the caller catches up (the default):
    /// nothing is dropped. If the server then gives up on the connection,
    /// the connector reconnects once there is room and recovers what the
    /// server still has; anything else is reported as [`Event::Gap`].
    #[default]
    Wait,
    /// Drop new publications and report their count as [`Event::Lagged`]:
    /// for callers who prefer fresh events to complete ones.
    Drop,
}

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
const DELIVERY_OVERHEAD: usize = 128;

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

    fn is_publication(&self) -> bool {
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

/// A publication's payload (`pub.data`), one JSON value as received.
#[derive(Debug)]
pub(crate) enum Payload {
    /// A place in the received frame, shared (a reference count, not a copy).
    Shared {
        frame: Utf8Bytes,
        range: Range<usize>,
    },
    /// A copy, for a frame mostly made of something else: a queued publication
    /// must not keep a large frame alive.
    Owned(Box<str>),
}

/// The text of a payload shared with its frame (`null` for a range that
/// does not fall on the frame's characters, which the cut never makes).
fn slice_text<'f>(frame: &'f Utf8Bytes, range: &Range<usize>) -> &'f str {
    frame.as_str().get(range.clone()).unwrap_or("null")
}

impl Payload {
    pub(crate) fn text(&self) -> &str {
        match self {
            Payload::Shared { frame, range } => slice_text(frame, range),
            Payload::Owned(text) => text,
        }
    }

    /// Points a shared payload at `compact`, a copy of its frame made by
    /// [`Compactor`], so that it no longer keeps the received frame alive.
    fn compact(&mut self, compactor: &mut Compactor) {
        if let Payload::Shared { frame, .. } = self {
            *frame = compactor.copy_of(frame);
        }
    }

    /// Turns a shared payload into a copy.
    pub(crate) fn unshare(&mut self) {
        if let Payload::Shared { .. } = self {
            *self = Payload::Owned(self.text().into());
        }
    }
}

/// Copies frames once each, exactly sized, for the publications that share
/// them: a received frame is a slice of the socket's read buffer and keeps
/// all of it alive, which the byte count does not see; a copy is only what it
/// holds. One allocation a frame, not one a publication.
#[derive(Default)]
struct Compactor {
    /// The last frame copied: (its text's address and length, the copy).
    last: Option<((usize, usize), Utf8Bytes)>,
}

impl Compactor {
    fn copy_of(&mut self, frame: &Utf8Bytes) -> Utf8Bytes {
        let identity = (frame.as_str().as_ptr() as usize, frame.len());
        match &self.last {
            Some((seen, copy)) if *seen == identity => copy.clone(),
            _ => {
                let copy = Utf8Bytes::from(frame.as_str().to_owned());
                self.last = Some((identity, copy.clone()));
                copy
            }
        }
    }
}

/// A publication whose payload is not decoded yet, from
/// [`Events::next_lazy`](crate::Events::next_lazy): for callers that read
/// a few fields ([`LazyPublication::chat_summary`]), route by channel
/// before decoding, or forward the payload as it came.
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use vklive_pubsub::emulator::{demo_chat_message, Emulator, EmulatorConfig};
/// use vklive_pubsub::{Client, Event, LazyEvent};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 1, "viewer");
/// let (client, mut events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url())
///     .ws_url(emulator.ws_url())
///     .channel("api-channel-chat:1")
///     .connect()
///     .await?;
/// while let Some(event) = events.next_lazy().await {
///     match event {
///         LazyEvent::Other(Event::Subscribed { .. }) => {
///             emulator.publish("api-channel-chat:1", demo_chat_message(1, "hello"));
///         }
///         LazyEvent::Publication(publication) => {
///             let summary = publication.chat_summary().expect("a chat message");
///             assert_eq!(summary.text, "hello");
///             client.close().await?;
///         }
///         LazyEvent::Other(Event::Closed { .. }) => break,
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct LazyPublication(RawPublication);

impl LazyPublication {
    /// The channel it was published in.
    pub fn channel(&self) -> &Arc<str> {
        &self.0.channel
    }

    /// Its position in the channel's stream (0 when the channel keeps none).
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The payload (`pub.data`) as received: one JSON value, normally; a
    /// line whose payload is not JSON is delivered too (see
    /// `docs/reliability.md`).
    pub fn payload(&self) -> &str {
        self.0.data.text()
    }

    /// The few fields of a chat message most callers read, without building
    /// the whole message; `None` if it is not a chat message.
    pub fn chat_summary(&self) -> Option<ChatSummary<'_>> {
        ChatSummary::decode(self.payload())
    }

    /// Decodes it into what [`Events`](crate::Events) would have handed out.
    pub fn decode(self) -> Publication {
        self.0.decode()
    }
}

/// What [`Events::next_lazy`](crate::Events::next_lazy) hands out: a
/// publication received live or recovered, undecoded, or any other event
/// (chat filled in from REST arrives decoded, as
/// `Other(Event::Publication(_))`).
#[derive(Debug)]
#[non_exhaustive]
pub enum LazyEvent {
    /// A publication whose payload is not decoded yet.
    Publication(LazyPublication),
    /// Everything else, as [`Events`](crate::Events) hands it out.
    Other(Event),
}

impl Delivery {
    pub(crate) fn into_lazy(self) -> LazyEvent {
        match self {
            Delivery::Event(event) => LazyEvent::Other(*event),
            Delivery::Publication(raw) => LazyEvent::Publication(LazyPublication(raw)),
        }
    }
}

/// What the queue holds: a delivery, or the publications of one channel
/// that arrived together in one frame, handed over as one. A frame of a
/// hundred publications then costs the caller one slot to read and the
/// actor one reference to the frame and to the channel's name, instead of a
/// hundred of each bouncing between the two threads.
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

/// What [`Receiver`] takes next: a delivery of its own, or a publication of
/// the batch being handed out.
enum Popped<'b> {
    One(Delivery),
    InBatch(&'b Batch, usize),
}

/// Publications of one channel sharing one frame, in order.
#[derive(Debug)]
pub(crate) struct Batch {
    /// A name of its own (not the session's), so that the caller's clones
    /// never touch a count the actor is using.
    channel: Arc<str>,
    frame: Utf8Bytes,
    /// Offset and payload range of each publication.
    items: Vec<(u64, Range<usize>)>,
}

/// `raw`'s payload range, if it is a slice of `frame` published in `channel`.
fn slice_of<'r>(
    raw: &'r RawPublication,
    channel: &str,
    frame: &Utf8Bytes,
) -> Option<&'r Range<usize>> {
    let Payload::Shared {
        frame: other,
        range,
    } = &raw.data
    else {
        return None;
    };
    (same_frame(other, frame) && *raw.channel == *channel).then_some(range)
}

/// Whether `a` and `b` are the same received frame (not merely equal text).
fn same_frame(a: &Utf8Bytes, b: &Utf8Bytes) -> bool {
    a.as_str().as_ptr() == b.as_str().as_ptr() && a.len() == b.len()
}

impl Batch {
    /// A batch of one publication, the `range` of `frame`, published in
    /// `channel` at `offset`.
    pub(crate) fn new(channel: &str, frame: &Utf8Bytes, offset: u64, range: Range<usize>) -> Batch {
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
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether a publication of `channel` cut from `frame` belongs here.
    pub(crate) fn holds(&self, channel: &str, frame: &Utf8Bytes) -> bool {
        same_frame(&self.frame, frame) && *self.channel == *channel
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
    fn total_cost(&self) -> usize {
        (0..self.items.len()).map(|index| self.cost(index)).sum()
    }

    /// Its publication number `index`, undecoded, for the caller.
    fn publication(&self, index: usize) -> Option<RawPublication> {
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
    fn decoded(&self, index: usize) -> Option<Publication> {
        let (offset, range) = self.items.get(index)?;
        Some(Publication::new(
            self.channel.clone(),
            *offset,
            VkEvent::decode_json(slice_text(&self.frame, range)),
        ))
    }

    /// What its publication number `index` is counted as (see [`Delivery::cost`]).
    fn cost(&self, index: usize) -> usize {
        self.items
            .get(index)
            .map_or(0, |(_, range)| DELIVERY_OVERHEAD + range.len())
    }

    /// Adds `raw` if it is a slice of the batch's frame for its channel;
    /// whether it did.
    fn push(&mut self, raw: &RawPublication) -> bool {
        let Some(range) = slice_of(raw, &self.channel, &self.frame) else {
            return false;
        };
        self.add(raw.offset, range.clone());
        true
    }
}

/// Queues `delivery`, joining it to the batch of its frame and channel at
/// the back of the queue, or making one with the publication there.
fn push_queued(queue: &mut VecDeque<Queued>, delivery: Delivery) {
    let Delivery::Publication(raw) = delivery else {
        queue.push_back(Queued::One(delivery));
        return;
    };
    let joined = match queue.back_mut() {
        Some(Queued::Batch(batch)) => batch.push(&raw),
        Some(back) => start_batch(back, &raw),
        None => false,
    };
    if !joined {
        queue.push_back(Queued::One(Delivery::Publication(raw)));
    }
}

/// Queues `batch`, joining it to the batch of its frame and channel at the
/// back of the queue if there is one.
fn push_batch(queue: &mut VecDeque<Queued>, batch: Box<Batch>) {
    if let Some(Queued::Batch(back)) = queue.back_mut()
        && back.holds(&batch.channel, &batch.frame)
    {
        back.items.extend(batch.items);
        return;
    }
    queue.push_back(Queued::Batch(batch));
}

/// Turns the publication at the back of the queue into a batch holding
/// `raw` too, if `raw` comes from the same frame and channel; whether it did.
fn start_batch(back: &mut Queued, raw: &RawPublication) -> bool {
    let Queued::One(Delivery::Publication(previous)) = back else {
        return false;
    };
    let Payload::Shared { frame, range } = &previous.data else {
        return false;
    };
    let Some(next) = slice_of(raw, &previous.channel, frame) else {
        return false;
    };
    let mut batch = Batch::new(&previous.channel, frame, previous.offset, range.clone());
    batch.add(raw.offset, next.clone());
    *back = Queued::Batch(Box::new(batch));
    true
}

impl RawPublication {
    fn decode(self) -> Publication {
        Publication::new(
            self.channel,
            self.offset,
            VkEvent::decode_json(self.data.text()),
        )
    }
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
    pub(crate) fn send_all<Q: Into<Queued>>(&mut self, batch: impl IntoIterator<Item = Q>) {
        if self.shared.receiver_gone.load(Ordering::Acquire) {
            return;
        }
        let mut added = 0;
        // A queue that is backing up holds its publications as copies: a
        // shared payload keeps its whole received frame (and the read buffer
        // the frame was cut from) alive, which the byte count does not see.
        let copy = self.shared.bytes.load(Ordering::Acquire) > self.budget / 4;
        let mut compactor = Compactor::default();
        {
            // Its own handle: `queue_one` borrows the sender mutably.
            let shared = Arc::clone(&self.shared);
            let mut queue = lock(&shared.queue);
            for queued in batch {
                match queued.into() {
                    // Dropping goes publication by publication.
                    Queued::Batch(batch) if self.overflow == Overflow::Drop => {
                        for delivery in batch.into_publications() {
                            added +=
                                self.queue_one(&mut queue, delivery, copy, &mut compactor, added);
                        }
                    }
                    Queued::Batch(mut batch) => {
                        // Nothing is dropped outside `Overflow::Drop`: no lag
                        // marker can be pending here.
                        if copy {
                            batch.frame = compactor.copy_of(&batch.frame);
                        }
                        added += batch.total_cost();
                        push_batch(&mut queue, batch);
                    }
                    Queued::One(delivery) => {
                        added += self.queue_one(&mut queue, delivery, copy, &mut compactor, added);
                    }
                }
            }
        }
        if added > 0 {
            self.shared.bytes.fetch_add(added, Ordering::AcqRel);
            self.shared.receiver_waker.wake();
        }
    }

    /// Queues one delivery for [`Sender::send_all`], which has `added` bytes
    /// queued so far; returns the bytes it queued.
    fn queue_one(
        &mut self,
        queue: &mut VecDeque<Queued>,
        mut delivery: Delivery,
        copy: bool,
        compactor: &mut Compactor,
        added: usize,
    ) -> usize {
        if copy && let Delivery::Publication(raw) = &mut delivery {
            raw.data.compact(compactor);
        }
        if self.overflow == Overflow::Drop && delivery.is_publication() {
            let queued = self.shared.bytes.load(Ordering::Acquire) + added;
            if queued >= self.budget {
                self.dropped += 1;
                return 0;
            }
        }
        let lagged = self.report_dropped(queue);
        let cost = delivery.cost();
        push_queued(queue, delivery);
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
                if index < batch.items.len() {
                    *next += 1;
                    let last = *next == batch.items.len();
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
    fn batch_of(frame: &Utf8Bytes, first: u64, count: u64) -> Queued {
        let mut batch = Batch::new("c", frame, first, 0..2);
        for offset in first + 1..first + count {
            batch.add(offset, 0..2);
        }
        Queued::Batch(Box::new(batch))
    }

    #[test]
    fn a_batch_arrives_whole_and_joins_the_batch_of_its_frame_before_it() {
        let (mut sender, mut receiver) = queue(1 << 20, Overflow::Wait);
        let frame = Utf8Bytes::from("{}".repeat(10));
        sender.send_all([batch_of(&frame, 1, 3), batch_of(&frame, 4, 2)]);
        assert_eq!(sender.queued_bytes(), 5 * (DELIVERY_OVERHEAD + 2));
        assert_eq!(lock(&sender.shared.queue).len(), 1, "one batch");
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
        let frame = Utf8Bytes::from("{}".repeat(10));
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
    fn from_frame(frame: &Utf8Bytes, channel: &Arc<str>, first_offset: u64) -> Vec<Delivery> {
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
        let frame = Utf8Bytes::from("1 2 3 4 5".to_owned());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let mut batch = from_frame(&frame, &a, 10);
        batch.insert(
            3,
            from_frame(&Utf8Bytes::from("x".to_owned()), &b, 7).remove(0),
        );
        batch.push(Event::Lagged { dropped: 1 }.into());
        batch.extend(from_frame(&frame, &a, 20));
        let cost: usize = batch.iter().map(Delivery::cost).sum();
        sender.send_all(batch);
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
        let frame = Utf8Bytes::from(r#"{"type":"x","data":{}} 2 "three" [4] 5"#.to_owned());
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let deliveries = || {
            let mut batch = from_frame(&frame, &a, 10);
            batch.insert(2, from_frame(&frame, &b, 3).remove(0));
            batch.push(Event::Lagged { dropped: 1 }.into());
            batch
        };
        let (mut in_place_sender, mut in_place) = queue(1 << 20, Overflow::Wait);
        let (mut one_by_one_sender, mut one_by_one) = queue(1 << 20, Overflow::Wait);
        in_place_sender.send_all(deliveries());
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
