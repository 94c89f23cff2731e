//! The publisher: reads the VK connections of the channels this relay owns
//! and publishes each publication into JetStream, with its acks pipelined
//! in a bounded window. Past the window it stops reading, so the
//! connector's delivery budget fills and it stops reading the socket.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, publish::PublishAck};
use futures::stream::{BoxStream, FuturesOrdered, SelectAll};
use futures::{Future, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ids::{self, Resume};
use super::leases::{Change, Leases};
use super::{RelayChannel, RelayError, VkBuilder, subject};
use crate::client::Client;
use crate::delivery::{CloseReason, Event, Publication};
use crate::ndjson;

/// A message on its way into the stream (kept until acked, to publish again).
struct Outgoing {
    channel: String,
    subject: String,
    id: String,
    headers: HeaderMap,
    body: bytes::Bytes,
}

type Acked = Pin<Box<dyn Future<Output = (Outgoing, Result<PublishAck, PublishError>)> + Send>>;

/// A channel this relay publishes for.
#[derive(Debug, PartialEq, Eq)]
struct Owned {
    client: u64,
    /// Where the stream stood when this relay took the channel (what is
    /// already in it is not published again).
    resume: Resume,
    /// The highest offset relayed.
    position: u64,
    /// The VK stream's epoch, as the last `Subscribed` reported it (before
    /// it, the one read back from the stream; empty while unknown).
    epoch: String,
}

impl Owned {
    fn new(client: u64, resume: Resume) -> Owned {
        Owned {
            client,
            position: resume.offset,
            epoch: resume.epoch.clone(),
            resume,
        }
    }

    /// The channel was subscribed in `epoch`, the server's stream at
    /// `offset`. An epoch learnt where none was known is adopted: the
    /// position given without one was taken in the server's epoch. Another
    /// epoch than the known one means the VK stream restarted: its offsets
    /// count from 1 again and none of them is in the stream yet (the
    /// connector reports the loss as a gap), so the position restarts at
    /// the server's.
    fn subscribed(&mut self, epoch: String, offset: u64) {
        if epoch == self.epoch {
            return;
        }
        if !self.epoch.is_empty() {
            self.resume = Resume {
                epoch: epoch.clone(),
                offset: 0,
                ..Resume::default()
            };
            self.position = offset;
        }
        self.epoch = epoch;
    }
}

/// One VK connection and how many owned channels it carries.
struct Connection {
    client: Client,
    channels: usize,
}

pub(crate) struct Publisher {
    id: String,
    context: jetstream::Context,
    vk: VkBuilder,
    leases: Leases,
    cap: usize,
    owned: HashMap<String, Owned>,
    connections: HashMap<u64, Connection>,
    next_connection: u64,
    /// The events of every VK connection, each tagged with its number.
    events: SelectAll<BoxStream<'static, (u64, Event)>>,
    window: FuturesOrdered<Acked>,
    /// A publish failed or NATS is away: publish one at a time, each
    /// waiting for its ack, until NATS is back and the window is empty, so
    /// that what failed is stored before what follows.
    degraded: bool,
    gaps: u64,
}

impl Publisher {
    pub(crate) fn new(
        id: String,
        context: jetstream::Context,
        vk: VkBuilder,
        leases: Leases,
        cap: usize,
    ) -> Publisher {
        Publisher {
            id,
            context,
            vk,
            leases,
            cap,
            owned: HashMap::new(),
            connections: HashMap::new(),
            next_connection: 0,
            events: SelectAll::new(),
            window: FuturesOrdered::new(),
            degraded: false,
            gaps: 0,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut changes: mpsc::Receiver<Change>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RelayError> {
        tokio::pin!(shutdown);
        let outcome = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                change = changes.recv() => match change {
                    Some(change) => {
                        if let Err(error) = self.apply(change).await {
                            break Err(error);
                        }
                    }
                    None => break Ok(()),
                },
                Some((outgoing, result)) = self.window.next(), if !self.window.is_empty() => {
                    self.acked(outgoing, result).await;
                }
                Some((connection, event)) = self.events.next(),
                    if self.window.len() < self.cap && !self.events.is_empty() => {
                    if let Err(error) = self.on_event(connection, event).await {
                        break Err(error);
                    }
                }
            }
        };
        // What was sent is waited for (bounded); then the connections close.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.drain()).await;
        for connection in self.connections.values() {
            let _ = tokio::time::timeout(Duration::from_secs(2), connection.client.close()).await;
        }
        outcome
    }

    async fn apply(&mut self, change: Change) -> Result<(), RelayError> {
        match change {
            Change::Acquired(channels) => self.follow(channels),
            Change::Lost(channels) => {
                self.drop_channels(&channels).await;
                Ok(())
            }
            Change::Release(channels, done) => {
                self.drop_channels(&channels).await;
                self.drain().await;
                let _ = done.send(());
                Ok(())
            }
        }
    }

    /// Opens one VK connection for channels just taken, each resumed from
    /// where the stream ends.
    fn follow(&mut self, channels: Vec<(RelayChannel, Resume)>) -> Result<(), RelayError> {
        let number = self.next_connection;
        self.next_connection += 1;
        let mut builder = (self.vk)();
        for (channel, resume) in &channels {
            builder = match &channel.chat_slug {
                Some(slug) => builder.chat_channel(channel.name.clone(), slug.clone()),
                None => builder.channel(channel.name.clone()),
            };
            // Something of the channel is in the stream: what came in
            // between is recovered, filled in, or reported, never skipped
            // silently (with offset 0 the position is unknown: no history).
            if resume.relayed {
                builder = builder.resume(channel.name.clone(), resume.epoch.clone(), resume.offset);
            }
            if let Some(last) = resume.last_chat {
                builder = builder.resume_chat(channel.name.clone(), last);
            }
        }
        let (client, events) = builder
            .spawn()
            .map_err(|error| RelayError::Vk(error.to_string()))?;
        self.events
            .push(events.map(move |event| (number, event)).boxed());
        for (channel, resume) in channels {
            self.owned.insert(channel.name, Owned::new(number, resume));
        }
        let count = self.owned.values().filter(|o| o.client == number).count();
        self.connections.insert(
            number,
            Connection {
                client,
                channels: count,
            },
        );
        Ok(())
    }

    /// Stops following `channels`; a connection left with none is closed.
    async fn drop_channels(&mut self, channels: &[String]) {
        for name in channels {
            let Some(owned) = self.owned.remove(name) else {
                continue;
            };
            let Some(connection) = self.connections.get_mut(&owned.client) else {
                continue;
            };
            connection.channels = connection.channels.saturating_sub(1);
            let client = connection.client.clone();
            if connection.channels == 0 {
                self.connections.remove(&owned.client);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(2), client.close()).await;
                });
            } else {
                let name = name.clone();
                tokio::spawn(async move {
                    let _ = client.unsubscribe(name).await;
                });
            }
        }
    }

    async fn on_event(&mut self, connection: u64, event: Event) -> Result<(), RelayError> {
        match event {
            Event::Publication(publication) => {
                if self.carries(connection, &publication.channel) {
                    self.publish_publication(publication).await;
                }
            }
            Event::Subscribed {
                channel,
                epoch,
                offset,
                ..
            } => {
                if self.carries(connection, &channel)
                    && let Some(owned) = self.owned.get_mut(&channel)
                {
                    owned.subscribed(epoch, offset);
                }
            }
            Event::Gap { channel, missed } => {
                if self.carries(connection, &channel) {
                    self.publish_gap(channel, missed).await;
                }
            }
            Event::Closed {
                reason: CloseReason::Failed(error),
            } => {
                return Err(RelayError::Vk(format!("the VK connection failed: {error}")));
            }
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => {
                tracing::warn!(%channel, code, %reason, connection, "VK refused the channel");
            }
            other => tracing::debug!(?other, connection, "VK connection"),
        }
        Ok(())
    }

    /// Whether `connection` is the one that follows `channel` for this relay
    /// now: a connection the channel left (lost, then taken again) may still
    /// have events of it on their way, which its new connection recovers.
    fn carries(&self, connection: u64, channel: &str) -> bool {
        self.owned
            .get(channel)
            .is_some_and(|owned| owned.client == connection)
    }

    async fn publish_publication(&mut self, publication: Publication) {
        let channel = publication.channel.to_string();
        let Some(owned) = self.owned.get_mut(&channel) else {
            return; // given up meanwhile: its new owner resumes it
        };
        if owned.resume.covers(publication.offset) {
            tracing::debug!(%channel, offset = publication.offset, "already in the stream");
            return;
        }
        owned.position = owned.position.max(publication.offset);
        let body = ndjson::publication_line(&publication);
        let kind = publication.event.kind().to_owned();
        let id = ids::message_id(&publication, &owned.epoch, &body);
        let mut headers = HeaderMap::new();
        headers.insert(ids::CHANNEL_HEADER, header_text(&channel).as_str());
        headers.insert(ids::KIND_HEADER, header_text(&kind).as_str());
        headers.insert(ids::OFFSET_HEADER, publication.offset.to_string().as_str());
        headers.insert(ids::POSITION_HEADER, owned.position.to_string().as_str());
        headers.insert(ids::RELAY_HEADER, self.id.as_str());
        if !owned.epoch.is_empty() {
            headers.insert(ids::EPOCH_HEADER, header_text(&owned.epoch).as_str());
        }
        let outgoing = Outgoing {
            subject: subject::subject(&channel, &kind),
            channel,
            id,
            headers,
            body: body.into(),
        };
        self.send(outgoing).await;
    }

    async fn publish_gap(&mut self, channel: String, missed: Option<u64>) {
        let Some(owned) = self.owned.get(&channel) else {
            return;
        };
        self.gaps += 1;
        let mut headers = HeaderMap::new();
        headers.insert(ids::CHANNEL_HEADER, header_text(&channel).as_str());
        headers.insert(ids::KIND_HEADER, subject::GAP_KIND);
        headers.insert(ids::OFFSET_HEADER, "0");
        headers.insert(ids::POSITION_HEADER, owned.position.to_string().as_str());
        headers.insert(ids::RELAY_HEADER, self.id.as_str());
        if !owned.epoch.is_empty() {
            headers.insert(ids::EPOCH_HEADER, header_text(&owned.epoch).as_str());
        }
        tracing::warn!(%channel, ?missed, "publishing a loss the relay could not recover");
        let outgoing = Outgoing {
            subject: subject::subject(&channel, subject::GAP_KIND),
            id: format!("{channel}/gap/{}/{}", self.id, self.gaps),
            body: ndjson::gap_json(&channel, missed).to_string().into(),
            channel,
            headers,
        };
        self.send(outgoing).await;
    }

    /// Publishes `outgoing` if the channel's lease still holds (the fence),
    /// its ack joining the window; while degraded, one at a time.
    async fn send(&mut self, outgoing: Outgoing) {
        if !self.leases.valid(&outgoing.channel, Instant::now()) {
            tracing::debug!(channel = %outgoing.channel, "lease not valid: not publishing");
            return;
        }
        if self.degraded || !self.connected() {
            self.degraded = true;
            self.drain().await;
            self.publish_until_acked(outgoing).await;
            if self.connected() && self.window.is_empty() {
                tracing::info!("NATS answers again: publishing pipelined");
                self.degraded = false;
            }
            return;
        }
        match self
            .context
            .send_publish(outgoing.subject.clone(), message(&outgoing))
            .await
        {
            Ok(ack) => self.window.push_back(in_window(outgoing, ack)),
            Err(error) => self.acked(outgoing, Err(error)).await,
        }
    }

    fn connected(&self) -> bool {
        self.context.client().connection_state() == async_nats::connection::State::Connected
    }

    /// An ack came back; a failure turns publishing one at a time and the
    /// message is published again (same id, so a copy that did land is
    /// dropped as a duplicate) until it lands or the lease is gone.
    async fn acked(&mut self, outgoing: Outgoing, result: Result<PublishAck, PublishError>) {
        match result {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(id = %outgoing.id, "duplicate dropped by JetStream");
                }
            }
            Err(error) => {
                tracing::debug!(id = %outgoing.id, %error, "publish failed; again, one at a time");
                self.degraded = true;
                self.publish_until_acked(outgoing).await;
            }
        }
    }

    /// Publishes `outgoing` and waits for its ack, again with backoff until
    /// it lands or the channel's lease is gone.
    async fn publish_until_acked(&mut self, outgoing: Outgoing) {
        let mut delay = Duration::from_millis(20);
        loop {
            if !self.leases.valid(&outgoing.channel, Instant::now()) {
                tracing::warn!(channel = %outgoing.channel, "not published, lease gone: its new owner resumes it");
                return;
            }
            let sent = self
                .context
                .send_publish(outgoing.subject.clone(), message(&outgoing))
                .await;
            let error = match sent {
                Ok(ack) => match ack.await {
                    Ok(_) => return,
                    Err(error) => error,
                },
                Err(error) => error,
            };
            tracing::debug!(id = %outgoing.id, %error, "publish failed; again");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// Waits for every ack in the window.
    async fn drain(&mut self) {
        while let Some((outgoing, result)) = self.window.next().await {
            self.acked(outgoing, result).await;
        }
    }
}

fn message(outgoing: &Outgoing) -> PublishMessage {
    PublishMessage::build()
        .payload(outgoing.body.clone())
        .headers(outgoing.headers.clone())
        .message_id(&outgoing.id)
}

fn in_window(outgoing: Outgoing, ack: PublishAckFuture) -> Acked {
    Box::pin(async move {
        let result = ack.await;
        (outgoing, result)
    })
}

/// Text fit for a header value: no control characters.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resumed(epoch: &str, offset: u64) -> Owned {
        Owned::new(
            1,
            Resume {
                epoch: epoch.into(),
                offset,
                ..Resume::default()
            },
        )
    }

    #[test]
    fn an_epoch_learnt_where_none_was_known_keeps_the_position() {
        let mut fresh = resumed("", 0);
        fresh.subscribed("e1".into(), 40);
        assert_eq!((fresh.epoch.as_str(), fresh.position), ("e1", 0));
        // Written by a relay that knew no epoch: the offset was taken in
        // the server's epoch.
        let mut legacy = resumed("", 41);
        legacy.subscribed("e1".into(), 41);
        assert_eq!(legacy.epoch, "e1");
        assert_eq!((legacy.position, legacy.resume.offset), (41, 41));
        assert!(legacy.resume.covers(41));
    }

    #[test]
    fn the_same_epoch_again_changes_nothing() {
        let mut owned = resumed("e1", 41);
        owned.position = 50;
        owned.subscribed("e1".into(), 45);
        assert_eq!(owned, {
            let mut same = resumed("e1", 41);
            same.position = 50;
            same
        });
    }

    #[test]
    fn a_restarted_vk_stream_restarts_the_position_and_skips_nothing_of_it() {
        let mut owned = resumed("e1", 41);
        owned.position = 50;
        owned.subscribed("e2".into(), 3);
        assert_eq!(owned.epoch, "e2");
        assert_eq!(owned.position, 3);
        assert!(!owned.resume.covers(1), "offset 1 of e2 is new");
        assert_eq!(owned.resume.epoch, "e2");
    }
}
