//! Publications handed over undecoded ([`Events::next_lazy`](crate::Events::next_lazy)).

use std::sync::Arc;

use super::payload::{Delivery, RawPublication};
use super::vocabulary::{Event, Publication};
use crate::event::ChatSummary;

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
