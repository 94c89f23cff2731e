//! The lease task: keeps this relay's presence and its channel leases in
//! the KV bucket, takes free channels up to its fair share, gives back what
//! is above it, and tells the publisher which channels it may publish for.
//! Every decision is [`super::lease`]'s; this task only talks to NATS.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::stream;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::RelayChannel;
use super::ids::Resume;
use super::lease::{self, Board, Timing};
use super::subject;
use crate::delivery::Event;
use crate::event::{ChatKey, EventKind, VkEvent};
use crate::ndjson;

/// What the publisher learns from the lease task.
#[derive(Debug)]
pub(crate) enum Change {
    /// These channels are ours now: follow them from these positions.
    Acquired(Vec<(RelayChannel, Resume)>),
    /// These channels are no longer ours (a renewal failed): stop at once.
    Lost(Vec<String>),
    /// These channels are being given back: stop, and answer once nothing
    /// of theirs is waiting for an ack.
    Release(Vec<String>, oneshot::Sender<()>),
}

/// An attempt to take a channel: the channel, the lease's revision and when
/// its write was sent (if taken), where the stream ends (if it could be read).
type Attempt = (String, Option<(u64, Instant)>, Option<Resume>);

/// A lease this relay holds.
#[derive(Debug, Clone)]
struct Held {
    key: String,
    revision: u64,
    renewed_at: Instant,
    valid_until: Instant,
}

/// The publisher's view of the leases: may it publish for a channel now?
#[derive(Debug, Clone)]
pub(crate) struct Leases {
    held: Arc<Mutex<HashMap<String, Held>>>,
    stop: Arc<watch::Sender<bool>>,
    done: Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Leases {
    /// Whether this relay holds `channel`'s lease and may still trust it:
    /// the fence checked before every publish.
    pub(crate) fn valid(&self, channel: &str, now: Instant) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(channel)
            .is_some_and(|lease| now < lease.valid_until)
    }

    /// Stops the task, which gives every lease back.
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.done.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

/// The task's state.
pub(crate) struct LeaseTask {
    id: String,
    timing: Timing,
    store: kv::Store,
    stream: stream::Stream,
    channels: Vec<RelayChannel>,
    board: Board,
    held: Arc<Mutex<HashMap<String, Held>>>,
    presence_at: Option<Instant>,
}

impl LeaseTask {
    pub(crate) fn new(
        id: String,
        timing: Timing,
        store: kv::Store,
        stream: stream::Stream,
        channels: Vec<RelayChannel>,
    ) -> LeaseTask {
        let mut channels = channels;
        channels.sort_by_key(|c| c.name.clone());
        channels.dedup_by(|a, b| a.name == b.name);
        LeaseTask {
            id,
            timing,
            store,
            stream,
            channels,
            board: Board::default(),
            held: Arc::default(),
            presence_at: None,
        }
    }

    fn op_timeout(&self) -> Duration {
        self.timing.renew_every().min(Duration::from_secs(2))
    }

    /// The channels held now.
    fn held_channels(&self) -> HashMap<String, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn run(mut self, changes: mpsc::Sender<Change>, mut stop: watch::Receiver<bool>) {
        let started = Instant::now();
        // Relays started together see each other before taking anything.
        let settle_at = started + self.timing.renew_every().min(Duration::from_secs(1));
        let mut ticker = tokio::time::interval(self.timing.tick());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watcher: Option<kv::Watch> = None;
        loop {
            if watcher.is_none() {
                // Bounded: with NATS away this must not hold up the renewals.
                let watch = tokio::time::timeout(self.op_timeout(), self.store.watch_all()).await;
                watcher = watch.ok().and_then(Result::ok);
            }
            tokio::select! {
                _ = stop.changed() => break,
                entry = next_entry(&mut watcher) => match entry {
                    Some(Ok(entry)) => self.saw(&entry),
                    _ => watcher = None,
                },
                _ = ticker.tick() => {
                    let now = Instant::now();
                    if self.tick(now, now >= settle_at, &changes).await.is_err() {
                        break; // the publisher is gone
                    }
                }
            }
        }
        self.release_all(&changes).await;
    }

    fn saw(&mut self, entry: &kv::Entry) {
        match entry.operation {
            Operation::Put => {
                let owner = String::from_utf8_lossy(&entry.value);
                self.board
                    .written(&entry.key, &owner, entry.revision, Instant::now());
            }
            Operation::Delete | Operation::Purge => self.board.removed(&entry.key),
        }
    }

    async fn tick(
        &mut self,
        now: Instant,
        settled: bool,
        changes: &mpsc::Sender<Change>,
    ) -> Result<(), ()> {
        self.keep_presence(now).await;
        self.renew(now, changes).await?;
        if !settled {
            return Ok(());
        }
        let relays = self.board.live_relays(&self.id, self.timing, now);
        let share = lease::fair_share(self.channels.len(), relays);
        let held = self.held_channels();
        let mut free: Vec<&RelayChannel> = self
            .channels
            .iter()
            .filter(|c| {
                !held.contains_key(&c.name)
                    && self
                        .board
                        .looks_free(&subject::lease_key(&c.name), self.timing, now)
            })
            .collect();
        free.sort_by_key(|c| lease::rank(&self.id, &c.name));
        let free_names: Vec<String> = free.iter().map(|c| c.name.clone()).collect();
        let plan = lease::plan(held.len(), share, &free_names);
        if plan.release > 0 {
            let mut mine: Vec<String> = held.keys().cloned().collect();
            mine.sort_by_key(|name| std::cmp::Reverse(lease::rank(&self.id, name)));
            mine.truncate(plan.release);
            self.release(mine, changes).await?;
            return Ok(());
        }
        let mut wanted = plan.acquire;
        if held.len() + wanted.len() < share {
            wanted.extend(self.reclaimable(&held, share - held.len() - wanted.len()));
        }
        if !wanted.is_empty() {
            self.acquire(wanted, changes).await?;
        }
        Ok(())
    }

    /// Channels whose key this relay wrote last though it lost them (NATS
    /// went away while it held them): `update` on that revision takes them
    /// back unless someone wrote since.
    fn reclaimable(&self, held: &HashMap<String, Held>, at_most: usize) -> Vec<String> {
        let held_keys: HashSet<String> = held.values().map(|h| h.key.clone()).collect();
        let keys: HashSet<&str> = self
            .board
            .still_mine(&self.id, &held_keys)
            .map(|(key, _)| key)
            .collect();
        self.channels
            .iter()
            .filter(|c| keys.contains(subject::lease_key(&c.name).as_str()))
            .map(|c| c.name.clone())
            .take(at_most)
            .collect()
    }

    async fn keep_presence(&mut self, now: Instant) {
        if self
            .presence_at
            .is_some_and(|at| now < at + self.timing.renew_every())
        {
            return;
        }
        let key = subject::presence_key(&self.id);
        let put = self.store.put(key, self.id.clone().into_bytes().into());
        if let Ok(Ok(_)) = tokio::time::timeout(self.op_timeout(), put).await {
            self.presence_at = Some(now);
        }
    }

    /// Renews every lease due; a lease whose renewal fails is dropped at
    /// once and the publisher told.
    async fn renew(&mut self, now: Instant, changes: &mpsc::Sender<Change>) -> Result<(), ()> {
        let due: Vec<(String, Held)> = self
            .held_channels()
            .into_iter()
            .filter(|(_, lease)| now >= lease.renewed_at + self.timing.renew_every())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let id = &self.id;
        let timeout = self.op_timeout();
        let results: Vec<(String, Held, Option<u64>)> = futures::stream::iter(due)
            .map(|(channel, lease)| async move {
                let update =
                    store.update(&lease.key, id.clone().into_bytes().into(), lease.revision);
                let revision = match tokio::time::timeout(timeout, update).await {
                    Ok(Ok(revision)) => Some(revision),
                    _ => None,
                };
                (channel, lease, revision)
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut lost = Vec::new();
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for (channel, lease, revision) in results {
                match revision {
                    Some(revision) => {
                        if let Some(entry) = held.get_mut(&channel) {
                            entry.revision = revision;
                            entry.renewed_at = now;
                            entry.valid_until = self.timing.valid_until(now);
                        }
                    }
                    None => {
                        held.remove(&channel);
                        tracing::warn!(%channel, key = %lease.key, "lease renewal failed: no longer publishing for it");
                        lost.push(channel);
                    }
                }
            }
        }
        if !lost.is_empty() {
            changes.send(Change::Lost(lost)).await.map_err(|_| ())?;
        }
        Ok(())
    }

    /// Tries to take `wanted` (by `create`, or `update` of a key this relay
    /// wrote last), reads where each channel's messages end, and hands the
    /// ones taken to the publisher.
    async fn acquire(
        &mut self,
        wanted: Vec<String>,
        changes: &mpsc::Sender<Change>,
    ) -> Result<(), ()> {
        let store = &self.store;
        let stream = &self.stream;
        let id = &self.id;
        let timeout = self.op_timeout();
        let board = &self.board;
        let results: Vec<Attempt> = futures::stream::iter(wanted)
            .map(|channel| async move {
                let key = subject::lease_key(&channel);
                let sent_at = Instant::now();
                let value: bytes::Bytes = id.clone().into_bytes().into();
                let taken = match board.get(&key).filter(|seen| seen.owner == *id) {
                    Some(seen) => {
                        let update = store.update(&key, value, seen.revision);
                        tokio::time::timeout(timeout, update)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                    None => tokio::time::timeout(timeout, store.create(&key, value))
                        .await
                        .ok()
                        .and_then(Result::ok),
                };
                let Some(revision) = taken else {
                    return (channel, None, None);
                };
                let resume = last_position(stream, &channel, timeout).await;
                (channel, Some((revision, sent_at)), resume)
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut acquired = Vec::new();
        let mut unreadable = Vec::new();
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            for (name, taken, resume) in results {
                let Some((revision, sent_at)) = taken else {
                    continue;
                };
                let key = subject::lease_key(&name);
                let Some(resume) = resume else {
                    // Where the stream ends is unknown: publishing now could
                    // double what is there. Give it back and try later.
                    unreadable.push((key, revision));
                    continue;
                };
                held.insert(
                    name.clone(),
                    Held {
                        key,
                        revision,
                        renewed_at: sent_at,
                        valid_until: self.timing.valid_until(sent_at),
                    },
                );
                if let Some(channel) = self.channels.iter().find(|c| c.name == name) {
                    tracing::info!(channel = %name, resume = resume.offset, "lease acquired");
                    acquired.push((channel.clone(), resume));
                }
            }
        }
        for (key, revision) in unreadable {
            let _ = tokio::time::timeout(
                timeout,
                self.store.delete_expect_revision(&key, Some(revision)),
            )
            .await;
        }
        if !acquired.is_empty() {
            changes
                .send(Change::Acquired(acquired))
                .await
                .map_err(|_| ())?;
        }
        Ok(())
    }

    /// Gives `channels` back: the publisher stops and drains them first,
    /// then the keys are deleted so that another relay takes them at once.
    async fn release(
        &mut self,
        channels: Vec<String>,
        changes: &mpsc::Sender<Change>,
    ) -> Result<(), ()> {
        let released: Vec<Held> = {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            channels.iter().filter_map(|c| held.remove(c)).collect()
        };
        tracing::info!(
            count = channels.len(),
            "giving channels back (above the fair share, or stopping)"
        );
        let (done_tx, done_rx) = oneshot::channel();
        // A publisher that is gone (the relay is stopping) published its
        // last already: give the keys back all the same.
        let publisher = changes.send(Change::Release(channels, done_tx)).await;
        if publisher.is_ok() {
            let _ = tokio::time::timeout(self.timing.ttl, done_rx).await;
        }
        let timeout = self.op_timeout();
        let store = &self.store;
        futures::stream::iter(released)
            .for_each_concurrent(64, |lease| async move {
                let delete = store.delete_expect_revision(&lease.key, Some(lease.revision));
                let _ = tokio::time::timeout(timeout, delete).await;
            })
            .await;
        publisher.map_err(|_| ())
    }

    async fn release_all(&mut self, changes: &mpsc::Sender<Change>) {
        let all: Vec<String> = self.held_channels().into_keys().collect();
        if !all.is_empty() {
            let _ = self.release(all, changes).await;
        }
        let presence = subject::presence_key(&self.id);
        let _ = tokio::time::timeout(self.op_timeout(), self.store.delete(presence)).await;
    }
}

/// Where `channel`'s messages in the stream end (a default position when it
/// has none); `None` when the stream could not be read.
async fn last_position(
    stream: &stream::Stream,
    channel: &str,
    timeout: Duration,
) -> Option<Resume> {
    let filter = subject::channel_filter(channel);
    let last = tokio::time::timeout(timeout, stream.get_last_raw_message_by_subject(&filter)).await;
    match last {
        Ok(Ok(message)) => {
            let mut resume =
                Resume::from_headers(|name| message.headers.get(name).map(|value| value.as_str()));
            resume.last_chat = last_chat(stream, channel, timeout).await;
            Some(resume)
        }
        Ok(Err(error))
            if error.kind()
                == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Some(Resume::default())
        }
        Ok(Err(error)) => {
            tracing::warn!(%channel, %error, "cannot read the channel's last message");
            None
        }
        Err(_) => None,
    }
}

/// The key of `channel`'s newest chat message in the stream, if it has one.
async fn last_chat(stream: &stream::Stream, channel: &str, timeout: Duration) -> Option<ChatKey> {
    let chat = subject::subject(channel, EventKind::ChatMessage.wire_types()[0]);
    let message = tokio::time::timeout(timeout, stream.get_last_raw_message_by_subject(&chat))
        .await
        .ok()?
        .ok()?;
    let body = std::str::from_utf8(&message.payload).ok()?;
    match ndjson::event_from_str(body)? {
        Event::Publication(publication) => match &publication.event {
            VkEvent::ChatMessage(message) => Some(message.key()),
            _ => None,
        },
        _ => None,
    }
}

/// The next entry of the watcher, or never when there is none.
async fn next_entry(
    watcher: &mut Option<kv::Watch>,
) -> Option<Result<kv::Entry, kv::WatcherError>> {
    match watcher.as_mut() {
        Some(watch) => watch.next().await,
        None => std::future::pending().await,
    }
}

/// Starts the lease task.
pub(crate) fn spawn(task: LeaseTask) -> (Leases, mpsc::Receiver<Change>) {
    let (changes_tx, changes_rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let held = task.held.clone();
    let handle = tokio::spawn(task.run(changes_tx, stop_rx));
    (
        Leases {
            held,
            stop: Arc::new(stop_tx),
            done: Arc::new(tokio::sync::Mutex::new(Some(handle))),
        },
        changes_rx,
    )
}
