//! `soak`: the connector against the in-process emulator for a chosen time,
//! with faults injected at random moments regardless of the client's state,
//! and an honest account of every publication.
//!
//! ```text
//! cargo run --release --features emulator --example soak -- --seconds 120
//! cargo run --release --features emulator --example soak -- --seconds 1800 \
//!     --fault-every-ms 4000..6000 --rate 200 --channels 3 --seed 7
//! cargo run --release --features emulator --example soak -- --faults abort,close,silence
//! ```
//!
//! A publisher task publishes `--rate` chat messages a second, round-robin over
//! `--channels` channels (public and private chat channels alternately), each
//! with a message id that counts up per channel (`(channel index + 1) * 10⁹ + n`),
//! and records the offset [`Emulator::publish`] returned. A consumer reads the
//! client's `Events` and accounts for every publication against that record:
//!
//! - **duplicated**: a `(channel, message id)` delivered twice (a copy filled in
//!   from REST of a message already delivered counts too);
//! - **out of order**: a message id, or a live offset, below one already
//!   delivered on its channel;
//! - **lost by offset**: a publication the emulator published whose offset never
//!   arrived; **lost by id**: one whose message id never arrived (the same today;
//!   they differ once chat is filled in from REST, which has ids but no offsets);
//! - **unreported loss**: a publication lost (by id) with no report of a loss on
//!   its channel between the previous delivery on that channel and the next one
//!   (or the end). A report is `Event::Subscribed { recovery: Failed }` for the
//!   channel, or `Event::Lagged` (any channel); it covers publications made up
//!   to the moment the consumer reads it.
//!
//! Faults (`--faults`, comma-separated; all by default), one every
//! `--fault-every-ms MIN..MAX`, chosen at random with `--seed`:
//!
//! | fault | what the emulator (or the consumer) does |
//! |---|---|
//! | `abort` | drops every TCP connection, no close frame |
//! | `close` | closes every connection with a reconnect code (1001, 3001, 3004, 3005, 3008, 3012, 4000) |
//! | `silence` | sends nothing at all for ping + margin + 0.5–3 s |
//! | `token` | makes the next 1–3 pubsub tokens issued expired (a refresh or a connect with one gets error 109), or sets another lifetime for the next ones (2–10 s, grace 0.5–2 s); tokens expire from the start (`--token-ttl-ms`, grace 2 s) so that refreshes go on all the time |
//! | `unsubscribe` | an unsubscribe push 2500 or 2501 (resubscribe) on one channel |
//! | `garbage` | a frame of 1–3 malformed lines (not JSON, truncated JSON) |
//! | `odd-lines` | a line of valid JSON that is no Centrifugo message (`[]`, `{"foo":1}`, `{"push":null}`, …) |
//! | `rest` | the next 1–3 REST calls answer 500, or 429 with `Retry-After: 1` |
//! | `slow` | the consumer stops reading for `--slow-read-ms` |
//!
//! When `--seconds` are up the faults stop (a silence in progress runs to its
//! end: pushes it dropped on a connection that then went on would be a loss no
//! real network makes), the publisher goes on at a low rate until every
//! channel delivered a publication made after that moment, then stops, and
//! the last publications get their chance to arrive (all within
//! `--drain-seconds`); what is missing then is lost.
//!
//! The emulator pings every `--ping-interval-ms` (2 s) and the client's
//! `ping_margin` is `--ping-margin-ms` (1 s), so a silence (always longer than
//! both) is detected within seconds; pubsub tokens live `--token-ttl-ms`
//! (10 s) so refreshes go on all the time; history keeps `--history` (300)
//! publications per channel, about 4.5 s at the default rate: longer outages
//! lose publications, which must then be reported.
//!
//! A line of figures goes to stderr every `--report-every` seconds and at the
//! end; one JSON summary line goes to stdout. The exit status is 1 when the
//! client ended (`Event::Closed`) before the end, or anything was duplicated,
//! out of order, not ours, or lost without a report.

use std::collections::{BTreeMap, VecDeque};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use vklive_pubsub::emulator::{
    ChannelNames, DemoUser, Emulator, EmulatorConfig, chat_message_send, demo_users, mention_part,
    smile_part, text_part,
};
use vklive_pubsub::{Client, CloseReason, Event, Events, VkEvent};

const USER_TOKEN: &str = "soak-access-token";
const USER_ID: u64 = 42;
/// Message ids of channel `i` are `(i + 1) * ID_BASE + n`, `n` = 1, 2, 3, …
const ID_BASE: u64 = 1_000_000_000;

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "Run the connector against the emulator with random faults and account for every publication"
)]
struct Args {
    /// How long to run (faults and full-rate publishing), seconds.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Time between two faults, milliseconds: `MIN..MAX` (uniform) or `N`.
    #[arg(long, default_value = "4000..6000", value_parser = parse_range)]
    fault_every_ms: (u64, u64),
    /// Faults to choose from, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "abort,close,silence,token,unsubscribe,garbage,odd-lines,rest,slow"
    )]
    faults: Vec<Fault>,
    /// Seed of the fault schedule and of the payloads (default: from the clock;
    /// printed in the summary).
    #[arg(long)]
    seed: Option<u64>,
    /// Publications a second, over all channels.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Chat channels (public and private alternately).
    #[arg(long, default_value_t = 3)]
    channels: u64,
    /// The emulator's ping interval, milliseconds (announced in whole seconds).
    #[arg(long, default_value_t = 2000)]
    ping_interval_ms: u64,
    /// The client's ping margin, milliseconds.
    #[arg(long, default_value_t = 1000)]
    ping_margin_ms: u64,
    /// Lifetime of the pubsub tokens the emulator issues, milliseconds (0:
    /// they never expire). The client refreshes them at 80 % of it.
    #[arg(long, default_value_t = 10_000)]
    token_ttl_ms: u64,
    /// Publications the emulator keeps per channel for recovery.
    #[arg(long, default_value_t = 300)]
    history: usize,
    /// How long a `slow` fault stops the consumer, milliseconds: `MIN..MAX` or `N`.
    #[arg(long, default_value = "500..4000", value_parser = parse_range)]
    slow_read_ms: (u64, u64),
    /// The client's reconnect backoff, milliseconds: `MIN..MAX`.
    #[arg(long, default_value = "500..5000", value_parser = parse_range)]
    backoff_ms: (u64, u64),
    /// Seconds between two lines of figures on stderr.
    #[arg(long, default_value_t = 5.0)]
    report_every: f64,
    /// Longest wait, after the faults stop, for every channel to catch up.
    #[arg(long, default_value_t = 60.0)]
    drain_seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Fault {
    Abort,
    Close,
    Silence,
    Token,
    Unsubscribe,
    Garbage,
    OddLines,
    Rest,
    Slow,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Abort => "abort",
            Fault::Close => "close",
            Fault::Silence => "silence",
            Fault::Token => "token",
            Fault::Unsubscribe => "unsubscribe",
            Fault::Garbage => "garbage",
            Fault::OddLines => "odd-lines",
            Fault::Rest => "rest",
            Fault::Slow => "slow",
        }
    }
}

fn parse_range(text: &str) -> Result<(u64, u64), String> {
    let parse = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|error| format!("{part:?}: {error}"))
    };
    let (min, max) = match text.split_once("..") {
        Some((min, max)) => (parse(min)?, parse(max)?),
        None => {
            let value = parse(text)?;
            (value, value)
        }
    };
    if min > max {
        return Err(format!("{min} is above {max}"));
    }
    Ok((min, max))
}

fn pick_in(rng: &mut fastrand::Rng, (min, max): (u64, u64)) -> u64 {
    rng.u64(min..=max)
}

// ---------------------------------------------------------------------------
// The ledger: what was published, what arrived, what it adds up to
// ---------------------------------------------------------------------------

/// A growable set of small integers, one bit each.
#[derive(Default)]
struct BitSet(Vec<u64>);

impl BitSet {
    fn contains(&self, n: u64) -> bool {
        let (word, bit) = ((n / 64) as usize, n % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }
}

struct Channel {
    name: String,
    /// The next message number (1, 2, 3, …); only the publisher advances it.
    next_seq: u64,
    /// `(message number, offset)` published and not yet judged, in order.
    pending: VecDeque<(u64, u64)>,
    /// The offset of the latest publication.
    top_offset: u64,
    delivered_ids: BitSet,
    seen_offsets: BitSet,
    /// Highest message number and live offset delivered.
    max_seq: u64,
    max_offset: u64,
    /// Publications up to this offset are covered by a loss report read since
    /// the last delivery on this channel (0: none).
    covered: u64,
}

#[derive(Default, Clone)]
struct Figures {
    sent: u64,
    delivered: u64,
    lost_by_offset: u64,
    lost_by_id: u64,
    duplicated: u64,
    out_of_order: u64,
    reconnects: u64,
    gaps_reported: u64,
    unreported_loss: u64,
    lagged_dropped: u64,
    backfilled: u64,
    /// Publications that are not chat messages of ours.
    foreign: u64,
    connects: u64,
    closed: Option<String>,
    faults: BTreeMap<&'static str, u64>,
}

struct Ledger {
    channels: Vec<Channel>,
    figures: Figures,
}

impl Ledger {
    fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    /// One delivered publication.
    fn on_publication(&mut self, channel: &str, offset: u64, id: Option<i64>, backfilled: bool) {
        let figures = &mut self.figures;
        figures.delivered += 1;
        if backfilled {
            figures.backfilled += 1;
        }
        let Some(index) = self.channels.iter().position(|c| c.name == channel) else {
            figures.foreign += 1;
            return;
        };
        let c = &mut self.channels[index];
        let base = (index as u64 + 1) * ID_BASE;
        let seq = match id.and_then(|id| u64::try_from(id).ok()) {
            Some(id) if id > base && id - base < c.next_seq => id - base,
            _ => {
                figures.foreign += 1;
                return;
            }
        };
        if c.delivered_ids.contains(seq) {
            figures.duplicated += 1;
            return;
        }
        c.delivered_ids.insert(seq);
        let mut late = seq < c.max_seq;
        if offset > 0 && !backfilled {
            late |= offset < c.max_offset;
            c.seen_offsets.insert(offset);
            c.max_offset = c.max_offset.max(offset);
        }
        if late {
            figures.out_of_order += 1;
            return;
        }
        c.max_seq = seq;
        Self::judge(c, figures, seq);
        c.covered = 0;
    }

    /// Judges every pending publication numbered up to `upto`: delivered, or
    /// lost (reported or not).
    fn judge(c: &mut Channel, figures: &mut Figures, upto: u64) {
        // Offsets lost without a report, for one line on stderr.
        let mut unreported: Option<(u64, u64, u64)> = None;
        while let Some(&(seq, offset)) = c.pending.front() {
            if seq > upto {
                break;
            }
            c.pending.pop_front();
            if !c.seen_offsets.contains(offset) {
                figures.lost_by_offset += 1;
            }
            if !c.delivered_ids.contains(seq) {
                figures.lost_by_id += 1;
                if offset > c.covered {
                    figures.unreported_loss += 1;
                    let range = unreported.get_or_insert((offset, offset, 0));
                    range.1 = offset;
                    range.2 += 1;
                }
            }
        }
        if let Some((first, last, count)) = unreported {
            let next = if upto == u64::MAX {
                "the end".to_owned()
            } else {
                format!("message {upto}")
            };
            eprintln!(
                "soak: {count} lost on {} without a report: offsets {first}..={last} \
                 (last delivered offset {}, reports covered up to {}), before {next}",
                c.name, c.max_offset, c.covered
            );
        }
    }

    /// The channel signalled that publications may have been lost.
    fn on_loss_report(&mut self, channel: &str) {
        self.figures.gaps_reported += 1;
        if let Some(index) = self.channel_index(channel) {
            let c = &mut self.channels[index];
            c.covered = c.top_offset;
        }
    }

    /// The end: whatever is still pending was lost.
    fn finish(&mut self) {
        for c in &mut self.channels {
            Self::judge(c, &mut self.figures, u64::MAX);
        }
    }
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> MutexGuard<'_, Ledger> {
    ledger
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// ---------------------------------------------------------------------------
// The consumer
// ---------------------------------------------------------------------------

/// Reads every event and accounts for it; pauses when a `slow` fault asks.
async fn consume(
    mut events: Events,
    ledger: Shared,
    mut pauses: mpsc::Receiver<Duration>,
    mut faults_over: watch::Receiver<bool>,
    closed: watch::Sender<bool>,
) {
    loop {
        let event = tokio::select! {
            biased;
            Some(pause) = pauses.recv() => {
                // Slow reads end with the faults.
                if !*faults_over.borrow() {
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = faults_over.wait_for(|over| *over) => {}
                    }
                }
                continue;
            }
            event = events.next() => event,
        };
        let Some(event) = event else {
            let mut ledger = lock(&ledger);
            ledger
                .figures
                .closed
                .get_or_insert_with(|| "stream ended without Event::Closed".into());
            break;
        };
        let mut ledger = lock(&ledger);
        match event {
            Event::Publication(publication) => {
                let id = match &publication.event {
                    VkEvent::ChatMessage(message) => Some(message.id),
                    _ => None,
                };
                ledger.on_publication(
                    &publication.channel,
                    publication.offset,
                    id,
                    publication.backfilled,
                );
            }
            // A loss neither the server's history nor the REST chat history
            // could repair.
            Event::Gap { channel, .. } => ledger.on_loss_report(&channel),
            Event::Lagged { dropped } => {
                // Dropped for a slow caller, on any channel: a report for all.
                ledger.figures.lagged_dropped += dropped;
                ledger.figures.gaps_reported += 1;
                for c in &mut ledger.channels {
                    c.covered = c.top_offset;
                }
            }
            Event::Connected { .. } => ledger.figures.connects += 1,
            Event::Disconnected { .. } => ledger.figures.reconnects += 1,
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => {
                // The channel is given up: everything after is lost, unreported.
                eprintln!("soak: subscription of {channel} failed: {code} {reason}");
            }
            Event::Unsubscribed {
                channel,
                code,
                reason,
            } => {
                eprintln!("soak: {channel} unsubscribed for good: {code} {reason}");
            }
            Event::Closed { reason } => {
                let reason = match reason {
                    CloseReason::Requested => "requested".to_owned(),
                    CloseReason::Failed(error) => format!("failed: {error}"),
                    other => format!("{other:?}"),
                };
                ledger.figures.closed = Some(reason);
                drop(ledger);
                let _ = closed.send(true);
                return;
            }
            _ => {}
        }
    }
    let _ = closed.send(true);
}

// ---------------------------------------------------------------------------
// The publisher
// ---------------------------------------------------------------------------

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn payload(rng: &mut fastrand::Rng, users: &[DemoUser], id: u64) -> Value {
    const PHRASES: [&str; 8] = [
        "привет всем 👋",
        "GG 🔥🔥🔥",
        "когда следующий стрим?",
        "nice play!",
        "Ёлки-палки, вот это поворот",
        "chat is so fast today",
        "ставлю лайк 👍",
        "F",
    ];
    let author = &users[rng.usize(..users.len())];
    let phrase = PHRASES[rng.usize(..PHRASES.len())];
    let parts = match rng.u8(..4) {
        0 => {
            let target = &users[rng.usize(..users.len())];
            vec![
                mention_part(target.id, &target.nick),
                text_part(&format!(", {phrase}")),
            ]
        }
        1 => vec![
            text_part(&format!("{phrase} ")),
            smile_part("b7f2a1d4-0000-4000-8000-000000000001", "Kappa", false),
        ],
        _ => vec![text_part(phrase)],
    };
    chat_message_send(id as i64, unix_now(), author, parts)
}

/// Publishes until `stop`: `rate` a second while `full` holds, else a trickle
/// (one per channel every 200 ms) so that every channel keeps moving.
async fn publish(
    emulator: Emulator,
    ledger: Shared,
    seed: u64,
    rate: f64,
    full: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x9e37_79b9_7f4a_7c15);
    let users = demo_users();
    let channels = lock(&ledger).channels.len();
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut phase_start = Instant::now();
    let mut phase_sent = 0u64;
    let mut was_full = true;
    let mut next_channel = 0usize;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let full_now = *full.borrow();
        if full_now != was_full {
            was_full = full_now;
            phase_start = Instant::now();
            phase_sent = 0;
        }
        let phase_rate = if full_now {
            rate
        } else {
            5.0 * channels as f64
        };
        let due = (phase_start.elapsed().as_secs_f64() * phase_rate) as u64;
        while phase_sent < due {
            let index = next_channel;
            next_channel = (next_channel + 1) % channels;
            let (name, seq) = {
                let ledger = lock(&ledger);
                let c = &ledger.channels[index];
                (c.name.clone(), c.next_seq)
            };
            let data = payload(&mut rng, &users, (index as u64 + 1) * ID_BASE + seq);
            let mut ledger = lock(&ledger);
            // Published and recorded under one lock: the consumer never sees a
            // publication before its record.
            let offset = emulator.publish(&name, data);
            let c = &mut ledger.channels[index];
            c.pending.push_back((seq, offset));
            c.next_seq += 1;
            c.top_offset = offset;
            ledger.figures.sent += 1;
            phase_sent += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

const CLOSE_CODES: [u16; 7] = [1001, 3001, 3004, 3005, 3008, 3012, 4000];

const GARBAGE: [&str; 8] = [
    "not json at all",
    "{\"id\":",
    "{\"push\":{\"channel\":",
    "}{",
    "\u{1}\u{2}\u{3}",
    "{\"id\":1,\"result\":{\"client\":",
    "[1,2,",
    "ёлки\tпалки",
];

/// Valid JSON that is no Centrifugo message: neither a ping (`{}`), a reply
/// nor a push. Issue 9, item 3.
const ODD_LINES: [&str; 7] = [
    "[]",
    "{\"foo\":1}",
    "{\"push\":null}",
    "null",
    "42",
    "\"text\"",
    "{\"result\":{}}",
];

struct Faults {
    emulator: Emulator,
    ledger: Shared,
    pauses: mpsc::Sender<Duration>,
    rng: fastrand::Rng,
    kinds: Vec<Fault>,
    silence: Duration,
    slow_read_ms: (u64, u64),
    /// When the current silence ends (`None`: not silent).
    silent_until: Arc<Mutex<Option<tokio::time::Instant>>>,
}

fn lock_silence(
    end: &Mutex<Option<tokio::time::Instant>>,
) -> MutexGuard<'_, Option<tokio::time::Instant>> {
    end.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Faults {
    fn inject(&mut self) {
        let fault = self.kinds[self.rng.usize(..self.kinds.len())];
        *lock(&self.ledger)
            .figures
            .faults
            .entry(fault.name())
            .or_default() += 1;
        let rng = &mut self.rng;
        match fault {
            Fault::Abort => self.emulator.abort_all(),
            Fault::Close => {
                let code = CLOSE_CODES[rng.usize(..CLOSE_CODES.len())];
                self.emulator.close_all(code, "soak");
            }
            Fault::Silence => {
                let length = self.silence + Duration::from_millis(rng.u64(500..=3000));
                let until = tokio::time::Instant::now() + length;
                let mut end = lock_silence(&self.silent_until);
                *end = Some(end.map_or(until, |end| end.max(until)));
                drop(end);
                self.emulator.set_silent(true);
                let emulator = self.emulator.clone();
                let silent_until = Arc::clone(&self.silent_until);
                tokio::spawn(async move {
                    tokio::time::sleep_until(until).await;
                    // Overlapping silences end with the last one: never
                    // sooner, or pushes dropped on a connection that then
                    // goes on would be a loss no real network makes.
                    let mut end = lock_silence(&silent_until);
                    if end.is_some_and(|end| end <= tokio::time::Instant::now()) {
                        *end = None;
                        emulator.set_silent(false);
                    }
                });
            }
            // The tokens issued from now on: the next refresh or reconnect.
            Fault::Token => match rng.u8(..4) {
                0 => self.emulator.set_token_ttl(
                    Some(Duration::from_millis(rng.u64(2000..=10_000))),
                    Duration::from_millis(rng.u64(500..=2000)),
                ),
                _ => self.emulator.expire_next_tokens(rng.usize(1..=3)),
            },
            Fault::Unsubscribe => {
                let ledger = lock(&self.ledger);
                let channel = ledger.channels[rng.usize(..ledger.channels.len())]
                    .name
                    .clone();
                drop(ledger);
                let (code, reason) = if rng.bool() {
                    (2500, "insufficient state")
                } else {
                    (2501, "subscription expired")
                };
                self.emulator.unsubscribe_all(&channel, code, reason);
            }
            Fault::Garbage => {
                let lines: Vec<&str> = (0..rng.usize(1..=3))
                    .map(|_| GARBAGE[rng.usize(..GARBAGE.len())])
                    .collect();
                self.emulator.send_raw(&lines.join("\n"));
            }
            Fault::OddLines => {
                self.emulator
                    .send_raw(ODD_LINES[rng.usize(..ODD_LINES.len())]);
            }
            Fault::Rest => {
                let count = rng.usize(1..=3);
                if rng.bool() {
                    self.emulator.fail_next_rest(count, 500, None);
                } else {
                    self.emulator.fail_next_rest(count, 429, Some(1));
                }
            }
            Fault::Slow => {
                let pause = Duration::from_millis(pick_in(rng, self.slow_read_ms));
                let _ = self.pauses.try_send(pause);
            }
        }
    }
}

async fn inject_faults(mut faults: Faults, every: (u64, u64), mut stop: watch::Receiver<bool>) {
    if faults.kinds.is_empty() {
        return;
    }
    loop {
        let wait = Duration::from_millis(pick_in(&mut faults.rng, every));
        tokio::select! {
            _ = tokio::time::sleep(wait) => faults.inject(),
            _ = stop.changed() => return,
        }
    }
}

// ---------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------

/// Resident memory of this process, kB (`VmRSS` in `/proc/self/status`).
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

struct Memory {
    start: u64,
    max: u64,
}

fn line(elapsed: f64, f: &Figures, rss: u64) -> String {
    let faults: u64 = f.faults.values().sum();
    format!(
        "[{elapsed:7.1}s] sent {} delivered {} lost {}/{} (offset/id) dup {} ooo {} \
         reconnects {} gaps {} unreported {} lagged {} faults {} rss {} kB",
        f.sent,
        f.delivered,
        f.lost_by_offset,
        f.lost_by_id,
        f.duplicated,
        f.out_of_order,
        f.reconnects,
        f.gaps_reported,
        f.unreported_loss,
        f.lagged_dropped,
        faults,
        rss,
    )
}

async fn report(
    ledger: Shared,
    memory: Arc<Mutex<Memory>>,
    started: Instant,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut sample = tokio::time::interval(Duration::from_millis(250));
    let mut next_line = started + every;
    loop {
        tokio::select! {
            _ = sample.tick() => {}
            _ = stop.changed() => return,
        }
        let rss = rss_kb();
        {
            let mut memory = memory.lock().unwrap_or_else(|p| p.into_inner());
            memory.max = memory.max.max(rss);
        }
        if Instant::now() >= next_line {
            while next_line <= Instant::now() {
                next_line += every;
            }
            let figures = lock(&ledger).figures.clone();
            eprintln!("{}", line(started.elapsed().as_secs_f64(), &figures, rss));
        }
    }
}

/// Polls until `done` holds for every channel (given its index), the client
/// ended, or `deadline`.
async fn wait_until(
    ledger: &Shared,
    closed: &watch::Receiver<bool>,
    deadline: Instant,
    done: impl Fn(&Channel, usize) -> bool,
) {
    while !*closed.borrow() && Instant::now() < deadline {
        if lock(ledger)
            .channels
            .iter()
            .enumerate()
            .all(|(index, c)| done(c, index))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // RUST_LOG, else errors; lines that may carry a token never printed.
    vklive_pubsub::log::init("error");
    match run(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let finite = |x: f64| x.is_finite() && x >= 0.0;
    if args.channels == 0 || !finite(args.rate) || args.rate == 0.0 {
        return Err("--channels and --rate must be positive".into());
    }
    if !finite(args.seconds) || !finite(args.drain_seconds) || !finite(args.report_every) {
        return Err("--seconds, --drain-seconds and --report-every must be finite and >= 0".into());
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let ping_interval = Duration::from_millis(args.ping_interval_ms);
    let ping_margin = Duration::from_millis(args.ping_margin_ms);
    let emulator = Emulator::start(EmulatorConfig {
        ping_interval,
        history_size: args.history,
        // After a failed recovery the connector reads what the history
        // still keeps (Centrifugo's `allow_history_for_subscriber`).
        history_for_subscribers: true,
        token_ttl: (args.token_ttl_ms > 0).then(|| Duration::from_millis(args.token_ttl_ms)),
        expiry_grace: Duration::from_secs(2),
        ..Default::default()
    })
    .await
    .map_err(|error| format!("emulator: {error}"))?;
    emulator.add_user(USER_TOKEN, USER_ID, "soak");
    // (channel, slug of its VK channel when it is the public chat, which
    // the connector then fills in from REST after a loss).
    let followed: Vec<(String, Option<String>)> = (1..=args.channels)
        .map(|id| {
            let slug = format!("soak{id}");
            let names: ChannelNames = emulator.add_channel(&slug, id);
            // Private channels need subscription tokens: token expiry and
            // REST failures then reach subscriptions too.
            if id % 2 == 0 {
                (names.private_chat, None)
            } else {
                (names.chat, Some(slug))
            }
        })
        .collect();
    let names: Vec<String> = followed.iter().map(|(name, _)| name.clone()).collect();
    let ledger: Shared = Arc::new(Mutex::new(Ledger {
        channels: names
            .iter()
            .map(|name| Channel {
                name: name.clone(),
                next_seq: 1,
                pending: VecDeque::new(),
                top_offset: 0,
                delivered_ids: BitSet::default(),
                seen_offsets: BitSet::default(),
                max_seq: 0,
                max_offset: 0,
                covered: 0,
            })
            .collect(),
        figures: Figures::default(),
    }));

    let (backoff_min, backoff_max) = args.backoff_ms;
    let mut builder = Client::with_user_token(USER_TOKEN)
        .api_url(emulator.api_url())
        .ws_url(emulator.ws_url());
    for (name, slug) in &followed {
        builder = match slug {
            Some(slug) => builder.chat_channel(name, slug),
            None => builder.channel(name),
        };
    }
    let (client, events) = tokio::time::timeout(
        Duration::from_secs(30),
        builder
            .ping_margin(ping_margin)
            .backoff(
                Duration::from_millis(backoff_min),
                Duration::from_millis(backoff_max),
            )
            .connect(),
    )
    .await
    .map_err(|_| "the first connect took over 30 s".to_owned())?
    .map_err(|error| format!("connect: {error}"))?;
    let subscribed = emulator
        .wait_for(
            |e| names.iter().all(|name| e.subscriber_count(name) == 1),
            Duration::from_secs(30),
        )
        .await;
    if !subscribed {
        return Err("the channels were not subscribed within 30 s".into());
    }

    let started = Instant::now();
    let memory = Arc::new(Mutex::new(Memory {
        start: rss_kb(),
        max: 0,
    }));
    let (closed_tx, mut closed) = watch::channel(false);
    let (pause_tx, pause_rx) = mpsc::channel(4);
    let (full_tx, full_rx) = watch::channel(true);
    let (stop_publishing, stop_publishing_rx) = watch::channel(false);
    let (stop_faults, stop_faults_rx) = watch::channel(false);
    let (stop_report, stop_report_rx) = watch::channel(false);

    let consumer = tokio::spawn(consume(
        events,
        Arc::clone(&ledger),
        pause_rx,
        stop_faults_rx.clone(),
        closed_tx,
    ));
    let publisher = tokio::spawn(publish(
        emulator.clone(),
        Arc::clone(&ledger),
        seed,
        args.rate,
        full_rx,
        stop_publishing_rx,
    ));
    let mut kinds = args.faults.clone();
    kinds.sort();
    kinds.dedup();
    let silent_until = Arc::new(Mutex::new(None));
    let faults = Faults {
        emulator: emulator.clone(),
        ledger: Arc::clone(&ledger),
        pauses: pause_tx,
        rng: fastrand::Rng::with_seed(seed),
        kinds: kinds.clone(),
        silence: ping_interval + ping_margin,
        slow_read_ms: args.slow_read_ms,
        silent_until: Arc::clone(&silent_until),
    };
    let injector = tokio::spawn(inject_faults(faults, args.fault_every_ms, stop_faults_rx));
    let reporter = tokio::spawn(report(
        Arc::clone(&ledger),
        Arc::clone(&memory),
        started,
        Duration::from_secs_f64(args.report_every.max(0.1)),
        stop_report_rx,
    ));

    // The soak proper.
    let _ = tokio::time::timeout(
        Duration::from_secs_f64(args.seconds),
        closed.wait_for(|closed| *closed),
    )
    .await;
    let _ = stop_faults.send(true);
    let _ = injector.await;
    // A silence still running ends when it was meant to (its pushes are
    // dropped, so the client must see it as a dead link and reconnect).
    let silence_end = *lock_silence(&silent_until);
    if let Some(end) = silence_end {
        tokio::time::sleep_until(end).await;
    }
    emulator.set_silent(false);

    // Drain: a trickle until every channel delivered something published
    // from now on, so that everything before is judged; then the last ones,
    // fault-free, until delivered or reported lost. Both within
    // `--drain-seconds`.
    let _ = full_tx.send(false);
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_seconds);
    let marks: Vec<u64> = lock(&ledger).channels.iter().map(|c| c.next_seq).collect();
    wait_until(&ledger, &closed, drain_deadline, |c, i| {
        c.max_seq >= marks[i]
    })
    .await;
    let _ = stop_publishing.send(true);
    let _ = publisher.await;
    wait_until(&ledger, &closed, drain_deadline, |c, _| {
        c.max_seq + 1 >= c.next_seq || c.covered >= c.top_offset
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();

    let alive = lock(&ledger).figures.closed.is_none();
    {
        let mut ledger = lock(&ledger);
        ledger.finish();
    }
    let _ = stop_report.send(true);
    let _ = reporter.await;
    let rss_end = rss_kb();
    let (rss_start, rss_max) = {
        let memory = memory.lock().unwrap_or_else(|p| p.into_inner());
        (memory.start, memory.max.max(rss_end))
    };
    let figures = lock(&ledger).figures.clone();
    eprintln!("{}", line(seconds, &figures, rss_end));

    // A clean end: close the client; the stream ends with Closed(Requested).
    if alive {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
    emulator.shutdown();

    let summary = json!({
        "seconds": (seconds * 10.0).round() / 10.0,
        "sent": figures.sent,
        "delivered": figures.delivered,
        "lost_by_offset": figures.lost_by_offset,
        "lost_by_id": figures.lost_by_id,
        "duplicated": figures.duplicated,
        "out_of_order": figures.out_of_order,
        "reconnects": figures.reconnects,
        "gaps_reported": figures.gaps_reported,
        "unreported_loss": figures.unreported_loss,
        "rss_kb_start": rss_start,
        "rss_kb_max": rss_max,
        "rss_kb_end": rss_end,
        "alive": alive,
        "closed": figures.closed,
        "lagged_dropped": figures.lagged_dropped,
        "backfilled": figures.backfilled,
        "foreign": figures.foreign,
        "connects": figures.connects,
        "faults": figures.faults,
        "fault_kinds": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "seed": seed,
    });
    println!("{summary}");

    let mut failures = Vec::new();
    if !alive {
        failures.push(format!(
            "the client ended before the end: {}",
            figures.closed.as_deref().unwrap_or("?")
        ));
    }
    if figures.duplicated > 0 {
        failures.push(format!("{} duplicated", figures.duplicated));
    }
    if figures.out_of_order > 0 {
        failures.push(format!("{} out of order", figures.out_of_order));
    }
    if figures.unreported_loss > 0 {
        failures.push(format!("{} lost without a report", figures.unreported_loss));
    }
    if figures.foreign > 0 {
        failures.push(format!("{} publications not ours", figures.foreign));
    }
    if figures.delivered == 0 {
        failures.push("nothing delivered".into());
    }
    for failure in &failures {
        eprintln!("soak: FAIL: {failure}");
    }
    Ok(failures.is_empty())
}
