//! The relay's benchmark (docs/relay.md, "Measured"): against a real
//! `nats-server` and the emulator as VK, in one run,
//!
//! 1. events/s through the relay into JetStream, every publication acked,
//!    and the floor: `async-nats` publishing the same messages (same
//!    subjects, headers, bodies; acks pipelined in the same 1,024 window)
//!    with no VK side; the ratio of the two;
//! 2. the delay from the emulator's send to a JetStream consumer's receipt
//!    at 1,000 chat messages a second (p50, p99);
//! 3. kill -9 of the leading `vklive relay` to the first event published by
//!    the standby, median of 5.
//!
//! ```text
//! cargo build --release --features cli --bin vklive --example relay_bench
//! NATS_SERVER_BIN=/path/to/nats-server target/release/examples/relay_bench
//! ```

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, message::PublishMessage};
use clap::Parser;
use futures::StreamExt;
use vklive_pubsub::Client;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig, stamp_of};
use vklive_pubsub::relay::{NatsOptions, Relay, RelayChannel, RelayConfig, subject};

const TOKEN: &str = "bench-token";

#[derive(Debug, Parser)]
struct Args {
    /// Publications through the relay (and the floor).
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Chat messages at 1,000/s for the latency.
    #[arg(long, default_value_t = 5_000)]
    latency_events: usize,
    /// Failover rounds.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The relays' lease TTL in the failover rounds, in seconds.
    #[arg(long, default_value_t = 5)]
    lease_ttl: u64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let Some(binary) = nats_server_binary() else {
        eprintln!("relay_bench: no nats-server (set NATS_SERVER_BIN or put it on PATH)");
        std::process::exit(2);
    };
    let server = Server::start(binary);
    let emulator = Emulator::start(EmulatorConfig {
        history_size: 200_000,
        outgoing_queue_capacity: 1 << 20,
        ..Default::default()
    })
    .await
    .expect("emulator");
    emulator.add_user(TOKEN, 1, "bench");
    let nats = async_nats::connect(server.url()).await.expect("nats");

    let (relay_rate, floor_rate) =
        throughput(&server, &emulator, &nats, args.events, args.lease_ttl).await;
    println!(
        "throughput: relay {relay_rate:.0} events/s, floor (async-nats, same messages) {floor_rate:.0} events/s, ratio {:.2}",
        relay_rate / floor_rate
    );
    let (p50, p99) = latency(
        &server,
        &emulator,
        &nats,
        args.latency_events,
        args.lease_ttl,
    )
    .await;
    println!(
        "latency at 1,000/s, emulator send -> JetStream consumer: p50 {:.2} ms, p99 {:.2} ms",
        ms(p50),
        ms(p99)
    );
    let failovers = failover(&server, &emulator, &nats, args.rounds, args.lease_ttl).await;
    let mut sorted = failovers.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    println!(
        "failover (lease TTL {} s): kill -9 -> first event by the standby, median {:.2} s of {:?}",
        args.lease_ttl,
        median.as_secs_f64(),
        failovers
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
    );
    println!(
        "{}",
        serde_json::json!({
            "events": args.events,
            "relay_events_per_second": relay_rate.round(),
            "floor_events_per_second": floor_rate.round(),
            "ratio": (relay_rate / floor_rate * 100.0).round() / 100.0,
            "latency_p50_ms": ms(p50),
            "latency_p99_ms": ms(p99),
            "lease_ttl_s": args.lease_ttl,
            "failover_median_s": median.as_secs_f64(),
            "failover_s": failovers.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        })
    );
}

fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 100_000.0).round() / 100.0
}

/// An in-process relay of `channels` until the returned sender is dropped.
fn spawn_relay(
    server: &Server,
    emulator: &Emulator,
    channels: &[String],
    ttl: u64,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = RelayConfig::new(
        NatsOptions::new(server.url()),
        channels.iter().map(RelayChannel::new).collect(),
    );
    // The bucket keeps the TTL of the relay that created it: one TTL for all.
    config.lease_ttl = Duration::from_secs(ttl);
    let (api, ws) = (emulator.api_url(), emulator.ws_url());
    let relay = Relay::new(config, move || {
        Client::with_user_token(TOKEN).api_url(&api).ws_url(&ws)
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        if let Err(error) = relay
            .run(async move {
                let _ = stopped.await;
            })
            .await
        {
            eprintln!("relay: {error}");
        }
    });
    (stop, task)
}

async fn wait_subscribed(emulator: &Emulator, channel: &str) {
    while emulator.subscriber_count(channel) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn stored(nats: &async_nats::Client, channel: &str) -> usize {
    let context = jetstream::new(nats.clone());
    let Ok(stream) = context.get_stream("VKLIVE").await else {
        return 0;
    };
    match stream
        .info_with_subjects(subject::channel_filter(channel))
        .await
    {
        Ok(subjects) => {
            let counts: Vec<usize> = subjects
                .filter_map(|s| async { s.ok().map(|(_, n)| n) })
                .collect()
                .await;
            counts.into_iter().sum()
        }
        Err(_) => 0,
    }
}

async fn throughput(
    server: &Server,
    emulator: &Emulator,
    nats: &async_nats::Client,
    events: usize,
    ttl: u64,
) -> (f64, f64) {
    let channel = emulator.add_channel("throughput", 10).chat;
    let (stop, task) = spawn_relay(server, emulator, std::slice::from_ref(&channel), ttl);
    wait_subscribed(emulator, &channel).await;
    let started = Instant::now();
    emulator.blast(&channel, events, 100).expect("blast");
    while stored(nats, &channel).await < events {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let relay_rate = events as f64 / started.elapsed().as_secs_f64();
    drop(stop);
    let _ = task.await;

    // The same messages, published again by async-nats alone.
    let context = jetstream::new(nats.clone());
    let mut stream = context.get_stream("VKLIVE").await.expect("stream");
    let config = stream.info().await.expect("info").config.clone();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject::channel_filter(&channel),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut copies = Vec::with_capacity(events);
    while copies.len() < events {
        let message = messages.next().await.expect("message").expect("message");
        copies.push((
            message.subject.to_string(),
            message.headers.clone().unwrap_or_default(),
            message.payload.clone(),
        ));
    }
    drop(messages);
    context.delete_stream("VKLIVE").await.expect("delete");
    context.create_stream(config).await.expect("create");
    let started = Instant::now();
    let mut window = VecDeque::new();
    for (subject, headers, payload) in copies {
        if window.len() >= vklive_pubsub::relay::DEFAULT_ACK_WINDOW {
            let ack: async_nats::jetstream::context::PublishAckFuture = window.pop_front().unwrap();
            ack.await.expect("ack");
        }
        let message = PublishMessage::build().payload(payload).headers(headers);
        window.push_back(
            context
                .send_publish(subject, message)
                .await
                .expect("publish"),
        );
    }
    for ack in window {
        ack.await.expect("ack");
    }
    let floor_rate = events as f64 / started.elapsed().as_secs_f64();
    (relay_rate, floor_rate)
}

async fn latency(
    server: &Server,
    emulator: &Emulator,
    nats: &async_nats::Client,
    events: usize,
    ttl: u64,
) -> (Duration, Duration) {
    let channel = emulator.add_channel("latency", 11).chat;
    let (stop, task) = spawn_relay(server, emulator, std::slice::from_ref(&channel), ttl);
    wait_subscribed(emulator, &channel).await;
    let context = jetstream::new(nats.clone());
    let stream = context.get_stream("VKLIVE").await.expect("stream");
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: subject::channel_filter(&channel),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let paced = emulator.publish_paced(&channel, events, 1000.0);
    let mut delays = Vec::with_capacity(events);
    while delays.len() < events {
        let message = messages.next().await.expect("message").expect("message");
        let received = now_nanos();
        let body: serde_json::Value = serde_json::from_slice(&message.payload).expect("json");
        let text = body["data"]["parts"][0]["text"]["content"]
            .as_str()
            .unwrap_or("");
        if let Some(sent) = stamp_of(text) {
            delays.push(Duration::from_nanos(received.saturating_sub(sent) as u64));
        }
    }
    let _ = paced.join();
    drop(stop);
    let _ = task.await;
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The `vklive` binary built next to this example.
fn vklive_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(|examples| examples.parent())
        .expect("target dir")
        .join(format!("vklive{}", std::env::consts::EXE_SUFFIX))
}

fn spawn_process(server: &Server, emulator: &Emulator, channel: &str, ttl: u64) -> Child {
    Command::new(vklive_binary())
        .args(["relay", "--nats", &server.url()])
        .args([
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--lease-ttl", &ttl.to_string(), channel])
        .env("VKLIVE_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vklive relay (cargo build --release --features cli --bin vklive)")
}

/// The pid of the relay holding `channel`'s lease.
async fn owner(nats: &async_nats::Client, channel: &str) -> Option<u32> {
    let store = jetstream::new(nats.clone())
        .get_key_value("vklive-leases")
        .await
        .ok()?;
    let value = store.get(subject::lease_key(channel)).await.ok()??;
    String::from_utf8_lossy(&value)
        .split('-')
        .next()?
        .parse()
        .ok()
}

async fn failover(
    server: &Server,
    emulator: &Emulator,
    nats: &async_nats::Client,
    rounds: usize,
    ttl: u64,
) -> Vec<Duration> {
    let channel = emulator.add_channel("failover", 12).chat;
    let mut relays = vec![spawn_process(server, emulator, &channel, ttl)];
    while owner(nats, &channel).await.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relays.push(spawn_process(server, emulator, &channel, ttl));
    let paced = emulator.publish_paced(&channel, rounds * (ttl as usize + 6) * 200, 200.0);
    let context = jetstream::new(nats.clone());
    let stream = context.get_stream("VKLIVE").await.expect("stream");
    let mut results = Vec::new();
    for _ in 0..rounds {
        // Let the standby settle before killing the leader.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = owner(nats, &channel).await.expect("a leader");
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: subject::channel_filter(&channel),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let index = relays
            .iter()
            .position(|r| r.id() == leader)
            .expect("leader is ours");
        let mut killed = relays.remove(index);
        killed.kill().expect("kill -9");
        let killed_at = Instant::now();
        let _ = killed.wait();
        loop {
            let message = messages.next().await.expect("message").expect("message");
            let by = message
                .headers
                .as_ref()
                .and_then(|h| h.get(vklive_pubsub::relay::ids::RELAY_HEADER))
                .map(|v| v.as_str().split('-').next().unwrap_or("").to_owned());
            if by.is_some_and(|pid| pid != leader.to_string()) {
                results.push(killed_at.elapsed());
                break;
            }
        }
        relays.push(spawn_process(server, emulator, &channel, ttl));
    }
    for mut relay in relays {
        let _ = relay.kill();
        let _ = relay.wait();
    }
    drop(paced); // the paced thread ends with the process
    results
}

fn nats_server_binary() -> Option<PathBuf> {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|dir| dir.join("nats-server"))
                .find(|p| p.is_file())
        })
}

/// A `nats-server` with JetStream in a temporary directory, on a free port.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(binary: PathBuf) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = std::env::temp_dir().join(format!("vklive-relay-bench-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, port, dir }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
