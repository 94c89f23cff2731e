//! Reading the relay's stream back as [`Event`]s.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{Stream, StreamExt};

use super::{RelayError, subject};
use crate::delivery::Event;
use crate::ndjson;

/// Where a [`Subscriber`] starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// Only what is published from now on.
    New,
    /// Everything the stream still keeps.
    All,
    /// From this stream sequence on ([`Subscriber::last_sequence`] + 1
    /// continues where a subscriber stopped).
    Sequence(u64),
    /// From the first message stored at or after this time.
    Time(SystemTime),
}

impl Start {
    /// From `ago` before now (`vklive tail --nats URL --since 1h`).
    pub fn since(ago: Duration) -> Start {
        Start::Time(SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH))
    }

    fn policy(self) -> DeliverPolicy {
        match self {
            Start::New => DeliverPolicy::New,
            Start::All => DeliverPolicy::All,
            Start::Sequence(sequence) => DeliverPolicy::ByStartSequence {
                start_sequence: sequence.max(1),
            },
            Start::Time(time) => {
                let nanos = time
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos() as i128);
                match async_nats::datetime::from_nanos(nanos) {
                    Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
                    Err(_) => DeliverPolicy::All,
                }
            }
        }
    }
}

type Messages = Pin<Box<dyn Stream<Item = Option<(u64, Event)>> + Send>>;

/// The relay's stream read back: the same [`Event`]s a
/// [`Client`](crate::Client) yields (publications with their typed
/// [`VkEvent`](crate::VkEvent), losses as [`Event::Gap`]), in stream order.
///
/// ```no_run
/// # async fn run() -> Result<(), vklive_pubsub::relay::RelayError> {
/// use futures::StreamExt;
/// use vklive_pubsub::relay::{Start, Subscriber};
/// use vklive_pubsub::{Event, VkEvent};
///
/// let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
/// let mut events = Subscriber::ordered(nats, "VKLIVE", Start::New, &[]).await?;
/// while let Some(event) = events.next().await {
///     if let Event::Publication(publication) = event {
///         if let VkEvent::ChatMessage(message) = &publication.event {
///             println!("{}: {}", publication.channel, message.plain_text());
///         }
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Subscriber {
    messages: Messages,
    last_sequence: u64,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("last_sequence", &self.last_sequence)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// Reads every message of `channels` (all channels when empty) from
    /// `start`, in order, through an ordered consumer of its own: for a
    /// tail, an overlay, a replay.
    pub async fn ordered(
        nats: async_nats::Client,
        stream: &str,
        start: Start,
        channels: &[String],
    ) -> Result<Subscriber, RelayError> {
        let stream = get_stream(nats, stream).await?;
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subjects: filters(channels),
                deliver_policy: start.policy(),
                ..Default::default()
            })
            .await
            .map_err(|error| RelayError::Nats(format!("cannot create a consumer: {error}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|error| RelayError::Nats(format!("cannot read the stream: {error}")))?;
        let messages = messages.map(|message| match message {
            Ok(message) => decode(&message),
            Err(error) => {
                tracing::warn!(%error, "reading the stream");
                None
            }
        });
        Ok(Subscriber {
            messages: Box::pin(messages),
            last_sequence: 0,
        })
    }

    /// Joins the durable consumer `name` (created when missing, starting at
    /// `start`): every process that joins the same name gets its share of
    /// the messages and each message goes to one of them, so that a fleet
    /// of bot replicas answers each command once. A message is acknowledged
    /// as it is handed out; one a process took but did not acknowledge (it
    /// died) goes to another after 30 s.
    pub async fn shared(
        nats: async_nats::Client,
        stream: &str,
        name: &str,
        start: Start,
        channels: &[String],
    ) -> Result<Subscriber, RelayError> {
        let stream = get_stream(nats, stream).await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_owned()),
                    filter_subjects: filters(channels),
                    deliver_policy: start.policy(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| RelayError::Nats(format!("cannot join consumer {name}: {error}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|error| RelayError::Nats(format!("cannot read the stream: {error}")))?;
        let messages = messages.then(|message| async move {
            match message {
                Ok(message) => {
                    if let Err(error) = message.ack().await {
                        tracing::warn!(%error, "cannot acknowledge a message");
                    }
                    decode(&message)
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the consumer");
                    None
                }
            }
        });
        Ok(Subscriber {
            messages: Box::pin(messages),
            last_sequence: 0,
        })
    }

    /// The stream sequence of the last event handed out (0 before any).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }
}

impl Stream for Subscriber {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match self.messages.as_mut().poll_next(cx) {
                Poll::Ready(Some(Some((sequence, event)))) => {
                    self.last_sequence = sequence;
                    return Poll::Ready(Some(event));
                }
                // An error or a message that is not one of the relay's: skip.
                Poll::Ready(Some(None)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn get_stream(
    nats: async_nats::Client,
    name: &str,
) -> Result<async_nats::jetstream::stream::Stream, RelayError> {
    async_nats::jetstream::new(nats)
        .get_stream(name)
        .await
        .map_err(|error| RelayError::Nats(format!("stream {name}: {error}")))
}

fn filters(channels: &[String]) -> Vec<String> {
    if channels.is_empty() {
        vec![subject::all_filter()]
    } else {
        channels
            .iter()
            .map(|c| subject::channel_filter(c))
            .collect()
    }
}

/// The event in a message, with its stream sequence.
fn decode(message: &async_nats::jetstream::Message) -> Option<(u64, Event)> {
    let sequence = message.info().map_or(0, |info| info.stream_sequence);
    let text = std::str::from_utf8(&message.payload).ok()?;
    match ndjson::event_from_str(text) {
        Some(event) => Some((sequence, event)),
        None => {
            tracing::debug!(subject = %message.subject, "not a relay message: skipped");
            None
        }
    }
}
