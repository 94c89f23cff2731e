//! `bench`: what the connector costs end to end, against the standalone
//! emulator in another process.
//!
//! ```text
//! cargo build --release --features emulator --examples
//! target/release/examples/bench                 # starts target/release/examples/emulator itself
//! target/release/examples/bench --info "$LINE"  # or uses a running one (the JSON line it printed)
//! ```
//!
//! Three workloads, each in a fresh worker process (this program run with
//! `--worker …`), so that one's memory and threads do not colour another's:
//!
//! - `e2e` (and `e2e-current`, `e2e-summary`, `e2e-floor`: one thread; the
//!   payload read with `ChatSummary`; the payload left undecoded, the
//!   transport floor): one chat channel; the emulator's `POST /_emulator/blast` queues
//!   prebuilt frames of 100 realistic chat publications, written as fast as
//!   the client reads; the worker counts typed events out of `Events`. CPU is
//!   the worker process's own (`getrusage(RUSAGE_SELF)`, user + system, every
//!   thread); the emulator's is not in it. Marginal CPU per event is
//!   `(CPU(large) − CPU(small)) / (large − small)`, measured `--reps` times
//!   after one warm-up run; the median is reported.
//! - `channels`: 1,000 channels on one connection (250 VK channels × chat,
//!   info, points, private chat); time until every `Subscribed`, the token
//!   requests it took, resident memory; then the pubsub server goes down for
//!   `--outage` seconds (connections dropped, upgrades refused) while 100 of
//!   the channels get a publication, and the time from the server being back
//!   until all 1,000 are resubscribed with recovery.
//! - `latency`: `POST /_emulator/paced` publishes at `--rate` a second, each
//!   message stamped with the wall-clock time just before the emulator queues
//!   it; the worker takes the time as `events.next()` returns it.
//!
//! Prints a table on stderr and one JSON line on stdout.

use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use vklive_pubsub::auth::Authorization;
use vklive_pubsub::emulator::{ChannelNames, stamp_of};
use vklive_pubsub::event::Part;
use vklive_pubsub::{Client, Event, Events, LazyEvent, Recovery, VkEvent};

/// How long one e2e run (a blast of up to `--large` publications) may take
/// before the bench fails; a run takes about a second.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Parser)]
#[command(about = "End-to-end, many-channel and latency figures against the emulator")]
struct Args {
    /// The JSON line a running standalone emulator printed; without it the
    /// bench starts `emulator` from its own directory.
    #[arg(long)]
    info: Option<String>,
    /// Workloads to run, comma-separated: e2e, e2e-current, e2e-summary,
    /// e2e-floor, channels, latency, slow-reader, pool (`e2e-current` is
    /// `e2e` on a current-thread runtime; `e2e-summary` reads each chat
    /// message with `ChatSummary`, `e2e-floor` leaves the payload undecoded;
    /// `slow-reader` reads `--large` publications ten times slower than they
    /// arrive and reports the peak resident memory).
    #[arg(
        long,
        default_value = "e2e,e2e-current,e2e-summary,e2e-floor,channels,latency",
        value_delimiter = ','
    )]
    workloads: Vec<String>,
    /// Publications in the small run of the two-point method.
    #[arg(long, default_value_t = 20_000)]
    small: usize,
    /// Publications in the large run.
    #[arg(long, default_value_t = 200_000)]
    large: usize,
    /// Publications per frame.
    #[arg(long, default_value_t = 100)]
    per_frame: usize,
    /// Pairs of (small, large) runs; the median marginal is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// The tokio runtime of the e2e worker: `multi` (the default
    /// `#[tokio::main]`, one worker per core) or `current` (one thread).
    #[arg(long, default_value = "multi")]
    runtime: String,
    /// VK channels in the many-channel workload (four channel names each).
    #[arg(long, default_value_t = 250)]
    vk_channels: u64,
    /// How long the pubsub server stays down, seconds.
    #[arg(long, default_value_t = 1.0)]
    outage: f64,
    /// Publications a second in the latency workload.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Publications measured in the latency workload (after the warm-up).
    #[arg(long, default_value_t = 50_000)]
    latency_count: usize,
    /// Publications sent before the latency measurement starts.
    #[arg(long, default_value_t = 5_000)]
    latency_warmup: usize,
    /// Delivery budget of the e2e client in bytes; 0 for the default (64 MiB).
    #[arg(long, default_value_t = 0)]
    delivery_budget: usize,
    /// Follow the e2e chat with its VK channel's slug (`chat_channel`), as a
    /// chat bot that wants losses filled in from REST does: the actor then
    /// reads each chat message's key to skip what a fill-in delivered.
    #[arg(long)]
    chat_slug: Option<String>,
    /// Internal: run one workload in this process and print its JSON.
    #[arg(long, hide = true)]
    worker: Option<String>,
}

fn main() {
    let args = Args::parse();
    match args.worker.clone() {
        Some(workload) => worker(&workload, &args),
        None => orchestrate(&args),
    }
}

// ---------------------------------------------------------------------------
// Orchestrator: start the emulator if needed, one worker process per workload
// ---------------------------------------------------------------------------

fn orchestrate(args: &Args) {
    let mut emulator = None;
    let info = match &args.info {
        Some(info) => info.clone(),
        None => {
            let (child, line) = start_emulator();
            emulator = Some(child);
            line
        }
    };
    let mut results = serde_json::Map::new();
    for workload in &args.workloads {
        eprintln!("bench: running {workload}");
        let output = Process::new(std::env::current_exe().expect("own path"))
            .args(worker_args(args))
            .args(["--worker", workload, "--info", &info])
            .stderr(Stdio::inherit())
            .output()
            .expect("worker runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or("null");
        let result: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        if !output.status.success() || result.is_null() {
            eprintln!("bench: {workload} failed ({})", output.status);
            std::process::exit(1);
        }
        results.insert(workload.clone(), result);
    }
    if let Some(mut child) = emulator {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    let results = Value::Object(results);
    print_table(&results);
    println!(
        "{}",
        json!({ "client": "vklive-pubsub", "results": results })
    );
}

/// The settings a worker needs, as flags.
fn worker_args(args: &Args) -> Vec<String> {
    [
        ("--small", args.small.to_string()),
        ("--large", args.large.to_string()),
        ("--per-frame", args.per_frame.to_string()),
        ("--reps", args.reps.to_string()),
        ("--runtime", args.runtime.clone()),
        ("--vk-channels", args.vk_channels.to_string()),
        ("--outage", args.outage.to_string()),
        ("--rate", args.rate.to_string()),
        ("--latency-count", args.latency_count.to_string()),
        ("--latency-warmup", args.latency_warmup.to_string()),
        ("--delivery-budget", args.delivery_budget.to_string()),
    ]
    .into_iter()
    .chain(args.chat_slug.clone().map(|slug| ("--chat-slug", slug)))
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .collect()
}

fn start_emulator() -> (std::process::Child, String) {
    let exe = std::env::current_exe().expect("own path");
    let path = exe.with_file_name("emulator");
    let mut child = Process::new(&path)
        .args(["--port", "0", "--channel-limit", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("emulator prints its URLs");
    (child, line.trim().to_owned())
}

fn print_table(results: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    for e2e in ["e2e", "e2e-current", "e2e-summary", "e2e-floor"]
        .iter()
        .filter_map(|key| results.get(*key))
    {
        eprintln!();
        eprintln!(
            "end to end ({} runtime, {} publications a frame, payloads: {})",
            e2e["runtime"].as_str().unwrap_or("?"),
            e2e["per_frame"],
            e2e["decode"].as_str().unwrap_or("?")
        );
        eprintln!(
            "  marginal CPU per event     {:>8.3} µs  (median of {:?})",
            f(&e2e["marginal_cpu_us"]),
            e2e["marginal_cpu_us_runs"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|v| (f(v) * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>())
                .unwrap_or_default()
        );
        eprintln!(
            "  throughput (large run)     {:>8.0} events/s",
            f(&e2e["events_per_s"])
        );
        eprintln!(
            "  payload                    {:>8.0} bytes mean",
            f(&e2e["payload_bytes_mean"])
        );
        eprintln!("  dropped (lagged)           {:>8}", e2e["lagged"]);
    }
    if let Some(channels) = results.get("channels") {
        eprintln!();
        eprintln!("many channels ({} on one connection)", channels["channels"]);
        eprintln!(
            "  all subscribed after       {:>8.3} s",
            f(&channels["subscribe_s"])
        );
        eprintln!(
            "  token requests             {:>8} subscription + {} connection",
            channels["subscription_token_requests"], channels["connection_token_requests"]
        );
        eprintln!(
            "  resident memory            {:>8.1} MB (peak {:.1} MB)",
            f(&channels["rss_mb"]),
            f(&channels["peak_rss_mb"])
        );
        eprintln!(
            "  resubscribed after back    {:>8.3} s ({} recovered, {} failed; reconnect wait {:.3} s)",
            f(&channels["resubscribe_s"]),
            channels["recovered"],
            channels["recovery_failed"],
            f(&channels["reconnect_wait_s"])
        );
    }
    if let Some(pool) = results.get("pool") {
        eprintln!();
        eprintln!(
            "pool ({} channels, 128 a connection, {} connections)",
            pool["channels"], pool["connections"]
        );
        eprintln!(
            "  all subscribed after       {:>8.3} s ({} failed)",
            f(&pool["subscribe_s"]),
            pool["failed"]
        );
        eprintln!(
            "  subscription-token reqs    {:>8}",
            pool["subscription_token_requests"]
        );
        eprintln!(
            "  resident memory            {:>8.1} MB (peak {:.1} MB)",
            f(&pool["rss_mb"]),
            f(&pool["peak_rss_mb"])
        );
        eprintln!(
            "  marginal CPU per event     {:>8.3} µs (spread over {} channels)",
            f(&pool["marginal_cpu_us"]),
            pool["spread_over_channels"]
        );
    }
    if let Some(slow) = results.get("slow-reader") {
        eprintln!();
        eprintln!(
            "slow reader ({} publications, budget {:.0} MB)",
            slow["publications"],
            f(&slow["budget_mb"])
        );
        eprintln!(
            "  delivered in order         {:>8} (lagged {}, gaps {})",
            slow["delivered"], slow["lagged"], slow["gaps"]
        );
        eprintln!(
            "  peak resident memory       {:>8.1} MB (started at {:.1} MB)",
            f(&slow["peak_rss_mb"]),
            f(&slow["start_rss_mb"])
        );
        eprintln!(
            "  within budget + 32 MB      {:>8}",
            slow["within_budget_plus_32mb"]
        );
    }
    if let Some(latency) = results.get("latency") {
        eprintln!();
        eprintln!(
            "latency at {} publications/s ({} measured)",
            latency["rate"], latency["count"]
        );
        eprintln!(
            "  p50 / p90 / p99 / p99.9    {:.3} / {:.3} / {:.3} / {:.3} ms",
            f(&latency["p50_ms"]),
            f(&latency["p90_ms"]),
            f(&latency["p99_ms"]),
            f(&latency["p999_ms"])
        );
        eprintln!(
            "  max                        {:>8.3} ms",
            f(&latency["max_ms"])
        );
        eprintln!(
            "  client CPU                 {:>8.1} % of a core",
            f(&latency["cpu_percent"])
        );
    }
    eprintln!();
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

fn worker(workload: &str, args: &Args) {
    let info: Value = serde_json::from_str(args.info.as_deref().unwrap_or("null"))
        .expect("--info is the emulator's JSON line");
    let mut args = args.clone();
    if workload == "e2e-current" {
        args.runtime = String::from("current");
    }
    let args = &args;
    let runtime = match (workload, args.runtime.as_str()) {
        ("e2e" | "e2e-current", "current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    let result = runtime.block_on(async {
        match workload {
            "e2e" | "e2e-current" => e2e(&info, args, Decode::Typed).await,
            "e2e-summary" => e2e(&info, args, Decode::Summary).await,
            "e2e-floor" => e2e(&info, args, Decode::Skipped).await,
            "channels" => channels(&info, args).await,
            "latency" => latency(&info, args).await,
            "slow-reader" => slow_reader(&info, args).await,
            "pool" => pool(&info, args).await,
            other => panic!("unknown workload {other}"),
        }
    });
    println!("{result}");
}

/// Process CPU time (user + system, all threads), seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// `VmRSS` and `VmHWM` of this process, megabytes.
fn resident_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Emu {
    http: reqwest::Client,
    api_url: String,
    ws_url: String,
    control: String,
    token: String,
}

impl Emu {
    fn new(info: &Value) -> Emu {
        let text = |key: &str| info[key].as_str().unwrap_or_default().to_owned();
        Emu {
            http: reqwest::Client::new(),
            api_url: text("api_url"),
            ws_url: text("ws_url"),
            control: text("control_url"),
            token: text("token"),
        }
    }

    fn client(&self) -> vklive_pubsub::ClientBuilder {
        Client::builder(Authorization::user(self.token.clone()))
            .api_url(&self.api_url)
            .ws_url(&self.ws_url)
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/stats", self.control))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// Waits for the next event, failing the bench after 60 s of silence.
async fn next(events: &mut Events) -> Event {
    match tokio::time::timeout(Duration::from_secs(60), events.next()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the event stream ended"),
        Err(_) => panic!("no event for 60 s"),
    }
}

async fn wait_subscribed(events: &mut Events, channel: &str) {
    loop {
        if let Event::Subscribed { channel: name, .. } = next(events).await
            && name == channel
        {
            return;
        }
    }
}

// --- e2e -------------------------------------------------------------------

/// What the e2e reader does with each publication's payload.
#[derive(Debug, Clone, Copy)]
enum Decode {
    /// `events.next()`: the typed `VkEvent::ChatMessage` (what users get).
    Typed,
    /// `events.next_lazy()` and `ChatSummary` (id, author, nick, text).
    Summary,
    /// `events.next_lazy()`, payload not decoded: the transport floor.
    Skipped,
}

impl Decode {
    fn name(self) -> &'static str {
        match self {
            Decode::Typed => "typed",
            Decode::Summary => "summary",
            Decode::Skipped => "skipped (transport floor)",
        }
    }
}

/// The next publication's message id (0 when the payload is left undecoded);
/// `Err(dropped)` for a `Lagged`; `None` for any other event. No timer per
/// event (the peers' handlers have none either): the whole run has one, in
/// [`blast_and_consume`].
async fn next_publication(events: &mut Events, decode: Decode) -> Option<Result<i64, u64>> {
    let event = match decode {
        Decode::Typed => events.next().await.expect("the event stream ended"),
        Decode::Summary | Decode::Skipped => {
            match events.next_lazy().await.expect("the event stream ended") {
                LazyEvent::Publication(publication) => {
                    return Some(Ok(match decode {
                        Decode::Summary => publication.chat_summary().map_or(0, |s| s.id),
                        _ => std::hint::black_box(publication.payload().len() as i64),
                    }));
                }
                LazyEvent::Other(event) => event,
                _ => return None,
            }
        }
    };
    match event {
        Event::Publication(publication) => Some(Ok(match &publication.event {
            VkEvent::ChatMessage(message) => message.id,
            _ => 0,
        })),
        Event::Lagged { dropped } => Some(Err(dropped)),
        _ => None,
    }
}

struct Run {
    cpu: f64,
    events_per_s: f64,
    lagged: u64,
    payload_bytes: usize,
}

async fn blast_and_consume(
    emu: &Emu,
    events: &mut Events,
    channel: &str,
    count: usize,
    per_frame: usize,
    decode: Decode,
) -> Run {
    let cpu_before = cpu_seconds();
    let report = emu
        .control(
            "blast",
            json!({ "channel": channel, "count": count, "per_frame": per_frame }),
        )
        .await;
    let mut received = 0usize;
    let mut lagged = 0u64;
    let mut checksum = 0i64;
    let mut first = None;
    let consume = async {
        while received < count {
            match next_publication(events, decode).await {
                Some(Ok(id)) => {
                    first.get_or_insert_with(Instant::now);
                    checksum = checksum.wrapping_add(id);
                    received += 1;
                }
                Some(Err(dropped)) => {
                    lagged += dropped;
                    received += dropped as usize;
                }
                None => {}
            }
        }
    };
    // A watchdog thread bounds the run, not a timer around every poll of the
    // stream: that would be work per event the peers' handlers do not do.
    let watchdog = Watchdog::start(RUN_DEADLINE);
    consume.await;
    watchdog.stop();
    let wall = first.map_or(0.0, |at| at.elapsed().as_secs_f64());
    let cpu = cpu_seconds() - cpu_before;
    std::hint::black_box(checksum);
    let bytes = report["bytes"].as_u64().unwrap_or(0) as usize;
    let overhead = count * "{\"push\":{\"channel\":\"\",\"pub\":{\"data\":,\"offset\":}}}\n".len();
    Run {
        cpu,
        events_per_s: count as f64 / wall.max(1e-9),
        lagged,
        payload_bytes: bytes.saturating_sub(overhead) / count.max(1),
    }
}

/// Ends the process if a run takes longer than its deadline.
struct Watchdog {
    done: std::sync::mpsc::Sender<()>,
}

impl Watchdog {
    fn start(deadline: Duration) -> Watchdog {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(deadline)
            {
                eprintln!("bench: the run did not finish in {deadline:?}");
                std::process::exit(1);
            }
        });
        Watchdog { done }
    }

    fn stop(self) {
        let _ = self.done.send(());
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A client of the demo chat with the bench's delivery budget (0: the
/// default), subscribed; with the channel and the budget.
async fn one_channel(emu: &Emu, args: &Args) -> (Client, Events, String, usize) {
    let channel = ChannelNames::for_channel_id(1).chat;
    let budget = match args.delivery_budget {
        0 => vklive_pubsub::DEFAULT_DELIVERY_BUDGET,
        budget => budget,
    };
    let builder = emu.client().delivery_budget(budget);
    let builder = match &args.chat_slug {
        Some(slug) => builder.chat_channel(&channel, slug),
        None => builder.channel(&channel),
    };
    let (client, mut events) = builder.connect().await.expect("connect");
    wait_subscribed(&mut events, &channel).await;
    (client, events, channel, budget)
}

async fn e2e(info: &Value, args: &Args, decode: Decode) -> Value {
    let emu = Emu::new(info);
    // Nothing is dropped by default (the actor stops reading past the
    // budget); a run that reports `Lagged` anyway is marked invalid.
    let (_client, mut events, channel, budget) = one_channel(&emu, args).await;
    let (small, large, per_frame) = (args.small, args.large, args.per_frame);
    let warm = blast_and_consume(&emu, &mut events, &channel, small, per_frame, decode).await;
    let mut marginals = Vec::new();
    let mut lagged = warm.lagged;
    let mut rates = Vec::new();
    let mut runs = Vec::new();
    for rep in 0..args.reps {
        let a = blast_and_consume(&emu, &mut events, &channel, small, per_frame, decode).await;
        let b = blast_and_consume(&emu, &mut events, &channel, large, per_frame, decode).await;
        let marginal = (b.cpu - a.cpu) / (large - small) as f64 * 1e6;
        eprintln!(
            "bench: e2e rep {rep}: cpu({small}) {:.3} s, cpu({large}) {:.3} s → {marginal:.3} µs/event, {:.0} events/s",
            a.cpu, b.cpu, b.events_per_s
        );
        lagged += a.lagged + b.lagged;
        rates.push(b.events_per_s);
        runs.push(json!({ "cpu_small_s": a.cpu, "cpu_large_s": b.cpu }));
        marginals.push(marginal);
    }
    let mut sorted = marginals.clone();
    json!({
        "runtime": args.runtime,
        "decode": decode.name(),
        "small": small,
        "large": large,
        "per_frame": per_frame,
        "reps": args.reps,
        "method": "(CPU(large) - CPU(small)) / (large - small), getrusage(RUSAGE_SELF) user+sys of the client process",
        "marginal_cpu_us": median(&mut sorted),
        "marginal_cpu_us_runs": marginals,
        "runs": runs,
        "events_per_s": median(&mut rates),
        "payload_bytes_mean": warm.payload_bytes,
        "delivery_budget": budget,
        "lagged": lagged,
        "valid": lagged == 0,
    })
}

// --- a slow reader -------------------------------------------------------------

/// 10,000 channels on an emulator that takes 128 a connection: the time
/// from the start to the last `Subscribed` (connections opened at once), the
/// token requests, the resident memory, and the CPU per publication with
/// publications spread over channels on every connection.
async fn pool(info: &Value, args: &Args) -> Value {
    let emu = Emu::new(info);
    emu.control("channel_limit", json!({ "limit": 128 })).await;
    let names: Vec<String> = (0..10_000u64)
        .map(|i| ChannelNames::for_channel_id(100_000 + i).chat)
        .collect();
    let before = emu.stats().await;
    let start = Instant::now();
    let (client, mut events) = emu
        .client()
        .connection_pace(Duration::ZERO)
        .channels(names.iter().cloned())
        .connect()
        .await
        .expect("connect");
    let (mut subscribed, mut failed) = (0, 0);
    while subscribed + failed < names.len() {
        match next(&mut events).await {
            Event::Subscribed { .. } => subscribed += 1,
            Event::SubscriptionFailed { .. } => failed += 1,
            _ => {}
        }
    }
    let subscribe_s = start.elapsed().as_secs_f64();
    let after = emu.stats().await;
    let sub_tokens = rest_count(&after, "/v1/websocket/subscription_token")
        - rest_count(&before, "/v1/websocket/subscription_token");
    let (rss_mb, _) = resident_mb();
    let connections = client
        .pool_state()
        .await
        .map_or(0, |pool| pool.connections.len());
    // Publications over every 100th channel (one or two on each connection).
    let spread: Vec<&String> = names.iter().step_by(100).collect();
    // Two runs (the two-point method): the HTTP calls cancel out.
    let mut runs = Vec::new();
    for count in [args.small / spread.len(), args.large / spread.len()] {
        let cpu_before = cpu_seconds();
        for channel in &spread {
            emu.control(
                "blast",
                json!({ "channel": channel, "count": count, "per_frame": args.per_frame }),
            )
            .await;
        }
        let mut received = 0;
        while received < count * spread.len() {
            if let Event::Publication(_) = next(&mut events).await {
                received += 1;
            }
        }
        runs.push((count * spread.len(), cpu_seconds() - cpu_before));
    }
    let (small, large) = (runs[0], runs[1]);
    let marginal = (large.1 - small.1) / (large.0 - small.0) as f64 * 1e6;
    let (_, peak_rss_mb) = resident_mb();
    json!({
        "channels": names.len(),
        "subscribed": subscribed,
        "failed": failed,
        "connections": connections,
        "subscribe_s": subscribe_s,
        "subscription_token_requests": sub_tokens,
        "rss_mb": rss_mb,
        "peak_rss_mb": peak_rss_mb,
        "spread_over_channels": spread.len(),
        "marginal_cpu_us": marginal,
    })
}

/// A `/proc/self/status` figure in kB (VmRSS, VmHWM), as MB.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// `--large` publications blasted as fast as the emulator can, read by a
/// caller that pauses 1 ms every 100 (ten times slower than the socket):
/// nothing may be dropped, and the peak resident memory must stay within
/// the delivery budget plus 32 MB.
async fn slow_reader(info: &Value, args: &Args) -> Value {
    let emu = Emu::new(info);
    let (_client, mut events, channel, budget) = one_channel(&emu, args).await;
    let start_rss = status_mb("VmRSS");
    let started = Instant::now();
    let report = emu
        .control(
            "blast",
            json!({ "channel": channel, "count": args.large, "per_frame": args.per_frame }),
        )
        .await;
    let mut expected = report["first_offset"].as_u64().unwrap_or(1);
    let (mut delivered, mut lagged, mut gaps, mut in_order) = (0u64, 0u64, 0u64, true);
    while delivered + lagged < args.large as u64 {
        match next(&mut events).await {
            Event::Publication(publication) => {
                in_order &= publication.offset == expected;
                expected = publication.offset + 1;
                delivered += 1;
                if delivered % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Event::Lagged { dropped } => lagged += dropped,
            Event::Gap { .. } => gaps += 1,
            _ => {}
        }
    }
    let peak = status_mb("VmHWM");
    let budget_mb = budget as f64 / (1024.0 * 1024.0);
    json!({
        "publications": args.large,
        "delivered": delivered,
        "in_order": in_order,
        "lagged": lagged,
        "gaps": gaps,
        "wall_s": started.elapsed().as_secs_f64(),
        "budget_mb": budget_mb,
        "start_rss_mb": start_rss,
        "peak_rss_mb": peak,
        "within_budget_plus_32mb": peak - start_rss <= budget_mb + 32.0,
    })
}

// --- many channels ----------------------------------------------------------

fn rest_count(stats: &Value, path: &str) -> u64 {
    stats["rest_calls_by_path"][path].as_u64().unwrap_or(0)
}

async fn channels(info: &Value, args: &Args) -> Value {
    let emu = Emu::new(info);
    let names: Vec<String> = (0..args.vk_channels)
        .flat_map(|i| {
            let names = ChannelNames::for_channel_id(10_000 + i);
            [
                names.chat,
                names.info,
                names.channel_points,
                names.private_chat,
            ]
        })
        .collect();
    let total = names.len();
    let before = emu.stats().await;
    let start = Instant::now();
    let (_client, mut events) = emu
        .client()
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
        .channels(names.iter().cloned())
        .connect()
        .await
        .expect("connect");
    let mut subscribed = 0;
    let mut failed = 0;
    while subscribed + failed < total {
        match next(&mut events).await {
            Event::Subscribed { .. } => subscribed += 1,
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => {
                eprintln!("bench: {channel} failed: {code} {reason}");
                failed += 1;
            }
            _ => {}
        }
    }
    let subscribe_s = start.elapsed().as_secs_f64();
    let after = emu.stats().await;
    let sub_tokens = rest_count(&after, "/v1/websocket/subscription_token")
        - rest_count(&before, "/v1/websocket/subscription_token");
    let conn_tokens =
        rest_count(&after, "/v1/websocket/token") - rest_count(&before, "/v1/websocket/token");
    let (rss_mb, _) = resident_mb();

    // The pubsub server goes down: connections dropped, upgrades refused.
    emu.control(
        "fail_ws_upgrade",
        json!({ "count": 1_000_000, "status": 503 }),
    )
    .await;
    let down_at = Instant::now();
    emu.control("abort", json!({})).await;
    loop {
        if let Event::Disconnected { .. } = next(&mut events).await {
            break;
        }
    }
    // Traffic the client misses while away, for recovery to bring back.
    let missed: Vec<&String> = names.iter().step_by(10).collect();
    for channel in &missed {
        emu.control("publish", json!({ "channel": channel, "data": vklive_pubsub::emulator::demo_chat_message(1, "пока вас не было") }))
            .await;
    }
    let outage = Duration::from_secs_f64(args.outage);
    tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
    emu.control("fail_ws_upgrade", json!({ "count": 0 })).await;
    let back = Instant::now();
    let mut connected_at = None;
    let mut recovered = 0;
    let mut recovery_failed = 0;
    let mut recovered_publications = 0;
    while recovered + recovery_failed < total || recovered_publications < missed.len() {
        match next(&mut events).await {
            Event::Connected { .. } => connected_at = Some(back.elapsed().as_secs_f64()),
            Event::Subscribed {
                recovery: Recovery::Recovered,
                ..
            } => recovered += 1,
            Event::Subscribed { .. } => recovery_failed += 1,
            Event::Publication(_) => recovered_publications += 1,
            _ => {}
        }
    }
    let resubscribe_s = back.elapsed().as_secs_f64();
    let (_, peak_rss_mb) = resident_mb();
    json!({
        "channels": total,
        "subscribed": subscribed,
        "failed": failed,
        "subscribe_s": subscribe_s,
        "subscription_token_requests": sub_tokens,
        "connection_token_requests": conn_tokens,
        "rss_mb": rss_mb,
        "peak_rss_mb": peak_rss_mb,
        "outage_s": args.outage,
        "backoff": "100 ms .. 1 s",
        "reconnect_wait_s": connected_at,
        "resubscribe_s": resubscribe_s,
        "recovered": recovered,
        "recovery_failed": recovery_failed,
        "recovered_publications": recovered_publications,
    })
}

// --- latency -----------------------------------------------------------------

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

async fn latency(info: &Value, args: &Args) -> Value {
    let emu = Emu::new(info);
    let channel = ChannelNames::for_channel_id(2).chat;
    let (_client, mut events) = emu
        .client()
        .channel(&channel)
        .connect()
        .await
        .expect("connect");
    wait_subscribed(&mut events, &channel).await;
    let total = args.latency_warmup + args.latency_count;
    emu.control(
        "paced",
        json!({ "channel": channel, "count": total, "rate": args.rate }),
    )
    .await;
    let mut samples = Vec::with_capacity(args.latency_count);
    let mut received = 0;
    let mut lagged = 0;
    let mut cpu_start = (0.0, Instant::now());
    while received < total {
        let event = next(&mut events).await;
        let now = unix_nanos();
        match event {
            Event::Publication(publication) => {
                received += 1;
                if received == args.latency_warmup {
                    cpu_start = (cpu_seconds(), Instant::now());
                }
                if received <= args.latency_warmup {
                    continue;
                }
                let stamp = match &publication.event {
                    VkEvent::ChatMessage(message) => match message.parts.first() {
                        Some(Part::Text(text)) => stamp_of(&text.content),
                        _ => None,
                    },
                    _ => None,
                };
                if let Some(stamp) = stamp {
                    samples.push(now.saturating_sub(stamp) as f64 / 1e6);
                }
            }
            Event::Lagged { dropped } => {
                lagged += dropped;
                received += dropped as usize;
            }
            _ => {}
        }
    }
    let cpu_percent = (cpu_seconds() - cpu_start.0) / cpu_start.1.elapsed().as_secs_f64() * 100.0;
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        samples
            .get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    json!({
        "rate": args.rate,
        "count": samples.len(),
        "warmup": args.latency_warmup,
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "p999_ms": pick(0.999),
        "max_ms": samples.last().copied().unwrap_or(f64::NAN),
        "cpu_percent": cpu_percent,
        "lagged": lagged,
    })
}
