//! `vklive relay` into a real `nats-server`, with the emulator as VK: what
//! lands in the stream is every publication once, through a SIGKILL of the
//! leader, a frozen leader, a restart of NATS, three relays sharing 300
//! channels; a bot fleet on a shared consumer answers each `!ping` once.
//!
//! Relays run as child processes of the built `vklive` binary. Without a
//! `nats-server` (NATS_SERVER_BIN or PATH) each test says so and returns,
//! except under CI, where it fails (`.ci/run` installs one).

mod common;
#[path = "support/nats.rs"]
mod nats_server;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use nats_server::NatsServer;
use tokio::process::{Child, Command};
use vklive_pubsub::emulator::{
    ChannelNames, DemoUser, Emulator, EmulatorConfig, chat_message_send, follow_create,
    raid_income, text_part,
};
use vklive_pubsub::relay::{Start, Subscriber};
use vklive_pubsub::{Event, VkEvent};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");
/// The lease TTL the relays run with here, in seconds.
const TTL: u64 = 2;
/// Upper bound for the longer waits (a whole stream, a takeover).
const LONG: Duration = Duration::from_secs(60);

/// Awaits `future` or fails the test after `limit`.
async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Polls `check` every 50 ms until it holds, failing after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(limit, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Waits (bounded) until the stream holds `count` messages of `channel`;
/// on a timeout says how many it holds, with the relays' logs.
async fn wait_stored(
    nats: &async_nats::Client,
    channel: &str,
    count: usize,
    relays: &[&RelayProcess],
) {
    let waited = tokio::time::timeout(LONG, async {
        while stored_count(nats, channel).await < count {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if waited.is_err() {
        let logs: Vec<String> = relays.iter().map(|r| r.log()).collect();
        panic!(
            "timed out: {} of {count} messages stored\n{}",
            stored_count(nats, channel).await,
            logs.join("\n---\n")
        );
    }
}

/// An emulator whose history covers a long takeover at 1,000/s.
async fn emulator() -> Emulator {
    start(EmulatorConfig {
        history_size: 100_000,
        history_for_subscribers: true,
        chat_min_interval: Duration::ZERO,
        ..Default::default()
    })
    .await
}

/// A `vklive relay` child process; its stderr goes to a file, shown when
/// the test fails.
struct RelayProcess {
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl RelayProcess {
    fn spawn(nats: &NatsServer, emulator: &Emulator, channels: &[String]) -> RelayProcess {
        RelayProcess::spawn_with(nats, emulator, channels, &[])
    }

    fn spawn_with(
        nats: &NatsServer,
        emulator: &Emulator,
        channels: &[String],
        options: &[&str],
    ) -> RelayProcess {
        // A counter, not a free port: ports repeat, and a second relay's
        // log must never truncate the first one's.
        static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "vklive-relay-{}-{}.log",
            std::process::id(),
            SPAWNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(VKLIVE)
            .args(["relay", "--nats", &nats.url()])
            .args(["--api-url", &emulator.api_url()])
            .args(["--ws-url", &emulator.ws_url()])
            .args(if options.contains(&"--lease-ttl") {
                vec![]
            } else {
                vec!["--lease-ttl".to_owned(), TTL.to_string()]
            })
            .args(options)
            .args(channels)
            .env("VKLIVE_TOKEN", USER_TOKEN)
            .env("RUST_LOG", "vklive_pubsub=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .expect("start vklive relay");
        let pid = child.id().expect("pid");
        RelayProcess { child, pid, log }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid as i32, signal);
        }
    }

    /// SIGTERM, then waits for the exit (the relay gives its leases back).
    async fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        within(Duration::from_secs(20), "relay exit", self.child.wait())
            .await
            .expect("wait")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn nats(server: &NatsServer) -> async_nats::Client {
    within(
        TIMEOUT,
        "connect to NATS",
        async_nats::connect(server.url()),
    )
    .await
    .expect("connect to NATS")
}

/// Owner (relay pid) of each leased channel key.
async fn owners(nats: &async_nats::Client) -> HashMap<String, u32> {
    let context = async_nats::jetstream::new(nats.clone());
    let Ok(store) = context.get_key_value("vklive-leases").await else {
        return HashMap::new();
    };
    let Ok(keys) = store.keys().await else {
        return HashMap::new();
    };
    let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    let mut out = HashMap::new();
    for key in keys.into_iter().filter(|k| k.starts_with("channel.")) {
        if let Ok(Some(value)) = store.get(&key).await {
            let text = String::from_utf8_lossy(&value).to_string();
            if let Some(pid) = text.split('-').next().and_then(|p| p.parse().ok()) {
                out.insert(key, pid);
            }
        }
    }
    out
}

/// How many messages the stream holds for `channel`.
async fn stored_count(nats: &async_nats::Client, channel: &str) -> usize {
    let context = async_nats::jetstream::new(nats.clone());
    let Ok(stream) = context.get_stream("VKLIVE").await else {
        return 0;
    };
    let filter = vklive_pubsub::relay::subject::channel_filter(channel);
    match stream.info_with_subjects(filter).await {
        Ok(subjects) => {
            let counts: Vec<(String, usize)> =
                subjects.filter_map(|s| async { s.ok() }).collect().await;
            counts.into_iter().map(|(_, n)| n).sum()
        }
        Err(_) => 0,
    }
}

/// Every event the stream holds for `channel`, in stream order.
async fn stored(nats: &async_nats::Client, channel: &str) -> Vec<Event> {
    let count = stored_count(nats, channel).await;
    let mut events = within(
        TIMEOUT,
        "subscribe",
        Subscriber::ordered(nats.clone(), "VKLIVE", Start::All, &[channel.to_owned()]),
    )
    .await
    .expect("subscriber");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        out.push(
            within(TIMEOUT, "a stored event", events.next())
                .await
                .expect("event"),
        );
    }
    out
}

/// The pid of the relay that published each message of `channel`, in
/// stream order (the `Vklive-Relay` header).
async fn publishers(nats: &async_nats::Client, channel: &str) -> Vec<u32> {
    stored_headers(nats, channel)
        .await
        .iter()
        .map(|headers| {
            header(headers, vklive_pubsub::relay::ids::RELAY_HEADER)
                .split('-')
                .next()
                .and_then(|pid| pid.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// A header's value ("" when missing).
fn header(headers: &async_nats::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|value| value.as_str().to_owned())
        .unwrap_or_default()
}

/// The headers of each message of `channel`, in stream order.
async fn stored_headers(nats: &async_nats::Client, channel: &str) -> Vec<async_nats::HeaderMap> {
    let count = stored_count(nats, channel).await;
    let context = async_nats::jetstream::new(nats.clone());
    let stream = context.get_stream("VKLIVE").await.expect("stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: vklive_pubsub::relay::subject::channel_filter(channel),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let message = within(TIMEOUT, "a stored message", messages.next())
            .await
            .expect("message")
            .expect("message");
        out.push(message.headers.clone().unwrap_or_default());
    }
    out
}

/// Once `standby` published, `leader` never again.
fn assert_handed_over_once(publishers: &[u32], leader: u32, standby: u32) {
    let first = publishers
        .iter()
        .position(|pid| *pid == standby)
        .expect("the standby published");
    assert!(first > 0 && publishers[..first].iter().all(|pid| *pid == leader));
    let late = publishers[first..]
        .iter()
        .filter(|pid| **pid == leader)
        .count();
    assert_eq!(late, 0, "messages by the old leader after the handover");
}

/// Chat message ids of `events`, and the gaps among them.
fn chat_ids(events: &[Event]) -> (Vec<i64>, usize) {
    let mut ids = Vec::new();
    let mut gaps = 0;
    for event in events {
        match event {
            Event::Publication(publication) => {
                if let VkEvent::ChatMessage(message) = &publication.event {
                    ids.push(message.id);
                }
            }
            Event::Gap { .. } => gaps += 1,
            _ => {}
        }
    }
    (ids, gaps)
}

/// Every id of `expected` once, in order, and no gap.
fn assert_exactly_once(events: &[Event], expected: std::ops::Range<i64>, logs: &str) {
    assert_each_once(events, expected.clone(), logs);
    let (ids, _) = chat_ids(events);
    let expected: Vec<i64> = expected.collect();
    if let Some(at) = (0..ids.len()).find(|&i| ids[i] != expected[i]) {
        let around = &ids[at.saturating_sub(3)..(at + 12).min(ids.len())];
        panic!("out of order at {at}: {around:?}\n{logs}");
    }
}

/// Every id of `expected` once (in any order), and no gap.
fn assert_each_once(events: &[Event], expected: std::ops::Range<i64>, logs: &str) {
    let (ids, gaps) = chat_ids(events);
    let unique: HashSet<i64> = ids.iter().copied().collect();
    let lost = expected.clone().filter(|id| !unique.contains(id)).count();
    let doubled = ids.len() - unique.len();
    assert_eq!(
        (lost, doubled, gaps),
        (0, 0, 0),
        "lost, doubled, gaps\n{logs}"
    );
}

/// The paced chat's message ids (`Emulator::publish_paced` numbers them so).
fn paced_ids(count: usize) -> std::ops::Range<i64> {
    700_000_000..700_000_000 + count as i64
}

#[tokio::test]
async fn relay_exits_non_zero_with_one_error_line_when_nats_is_unreachable() {
    let emulator = start(EmulatorConfig::default()).await;
    let port = nats_server::free_port();
    let started = Instant::now();
    let output = within(
        Duration::from_secs(40),
        "relay exit",
        Command::new(VKLIVE)
            .args(["relay", "--nats", &format!("nats://127.0.0.1:{port}")])
            .args(["--api-url", &emulator.api_url()])
            .args(["--ws-url", &emulator.ws_url()])
            .arg("api-channel-chat:1")
            .env("VKLIVE_TOKEN", USER_TOKEN)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run vklive relay");
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("NATS") && stderr.contains(&port.to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains(USER_TOKEN));
}

#[tokio::test]
async fn relayed_publications_read_back_as_the_events_the_connector_decodes() {
    let Some(server) = NatsServer::start("relayed_publications_read_back") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let relay = RelayProcess::spawn(
        &server,
        &emulator,
        &[names.chat.clone(), names.info.clone()],
    );
    let nats = nats(&server).await;
    wait_until(LONG, "both channels leased and subscribed", || async {
        owners(&nats).await.len() == 2
            && emulator.subscriber_count(&names.chat) == 1
            && emulator.subscriber_count(&names.info) == 1
    })
    .await;
    let viewer = DemoUser::new(1001, "viewer");
    let payloads = [
        (
            &names.chat,
            chat_message_send(1, 1_700_000_000, &viewer, vec![text_part("привет")]),
        ),
        (&names.info, follow_create(&viewer)),
        (&names.info, raid_income(&viewer, 12)),
        (
            &names.chat,
            serde_json::json!({"type": "channel_chat_message_delete", "data": {"chat_message": {"id": 1}}}),
        ),
        (
            &names.info,
            serde_json::json!({"type": "channel_something_new", "data": {"x": 1}}),
        ),
    ];
    let mut subscriber = within(
        TIMEOUT,
        "subscribe",
        Subscriber::ordered(nats.clone(), "VKLIVE", Start::All, &[]),
    )
    .await
    .unwrap();
    for (channel, payload) in &payloads {
        emulator.publish(channel, payload.clone());
        let event = within(TIMEOUT, "a relayed event", subscriber.next())
            .await
            .unwrap();
        let Event::Publication(publication) = event else {
            panic!("{event:?}\n{}", relay.log());
        };
        assert_eq!(&*publication.channel, channel.as_str());
        assert!(publication.offset > 0);
        let expected = VkEvent::decode_str(&payload.to_string());
        match (&publication.event, &expected) {
            (VkEvent::Unknown(got), VkEvent::Unknown(want)) => assert_eq!(got.kind, want.kind),
            (got, want) => assert_eq!(got, want),
        }
    }

    // `vklive tail --nats` prints the same objects.
    let output = within(
        TIMEOUT,
        "tail --nats",
        Command::new(VKLIVE)
            .args([
                "tail",
                "--nats",
                &server.url(),
                "--since",
                "1h",
                "-n",
                "5",
                "--json",
            ])
            .env_remove("VKLIVE_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &serde_json::Value| line["event"] == "publication")
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(lines[0]["type"], "channel_chat_message_send");
    assert_eq!(lines[1]["channel"], names.info.as_str());
    assert_eq!(lines[4]["unknown"], true);

    // `--kind` filters the stream as it filters VK: -n counts what it shows.
    let output = within(
        TIMEOUT,
        "tail --nats --kind",
        Command::new(VKLIVE)
            .args(["tail", "--nats", &server.url(), "--since", "1h"])
            .args(["-n", "2", "--json", "--kind", "follow,raid"])
            .env_remove("VKLIVE_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let shown: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &serde_json::Value| line["event"] == "publication")
        .collect();
    assert!(output.status.success());
    let kinds: Vec<&serde_json::Value> = shown.iter().map(|line| &line["type"]).collect();
    assert_eq!(kinds, [&lines[1]["type"], &lines[2]["type"]], "{shown:?}");
    assert_eq!(relay.stop().await.code(), Some(0));
}

/// Issue 24.8 for `tail --nats`: a stop request ends it even when nobody
/// reads its stdout and the stream has far more to give than the pipe holds.
#[tokio::test]
async fn sigterm_ends_tail_nats_whose_stdout_pipe_nobody_reads() {
    use tokio::io::AsyncReadExt;
    let Some(server) = NatsServer::start("sigterm_ends_tail_nats") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let relay = RelayProcess::spawn(&server, &emulator, std::slice::from_ref(&names.chat));
    let nats = nats(&server).await;
    wait_until(LONG, "the channel leased and subscribed", || async {
        owners(&nats).await.len() == 1 && emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    // Far more than the pipe, tail's queue and its buffer hold together.
    let total = 5_000;
    emulator.blast(&names.chat, total, 200).expect("blast");
    wait_stored(&nats, &names.chat, total, &[&relay]).await;

    let mut child = Command::new(VKLIVE)
        .args(["tail", "--nats", &server.url(), "--since", "1h", "--json"])
        .env_remove("VKLIVE_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    common::pipe::shrink_to_one_page(&stdout);
    let mut written = common::pipe::read_to_a_publication_then_let_fill(&mut stdout).await;
    // SAFETY: kill(2) on our own child.
    assert_eq!(
        unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGTERM) },
        0
    );
    let status = within(TIMEOUT, "tail --nats exit after SIGTERM", child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    within(
        TIMEOUT,
        "the rest of the pipe",
        stdout.read_to_end(&mut written),
    )
    .await
    .unwrap();
    common::pipe::assert_whole_lines_are_json(&written);
    assert_eq!(relay.stop().await.code(), Some(0));
}

/// Starts the leader on `channel`, then a standby, and waits until the
/// leader holds the lease and the standby is present.
/// The relays of these tests create the stream with a duplicate window of
/// 1 s, so that a copy published by a relay whose lease lapsed would be
/// stored (and seen), not dropped as a duplicate: the fence is what is tested.
async fn leader_and_standby(
    server: &NatsServer,
    emulator: &Emulator,
    nats: &async_nats::Client,
    channel: &str,
) -> (RelayProcess, RelayProcess) {
    let options = ["--duplicate-window", "1"];
    let leader = RelayProcess::spawn_with(server, emulator, &[channel.to_owned()], &options);
    wait_until(LONG, "the leader holds the lease", || async {
        owners(nats).await.values().any(|pid| *pid == leader.pid)
            && emulator.subscriber_count(channel) == 1
    })
    .await;
    let standby = RelayProcess::spawn_with(server, emulator, &[channel.to_owned()], &options);
    let context = async_nats::jetstream::new(nats.clone());
    wait_until(LONG, "the standby is present", || async {
        let Ok(store) = context.get_key_value("vklive-leases").await else {
            return false;
        };
        let key = |pid: u32| async move {
            let Ok(keys) = store.keys().await else {
                return false;
            };
            let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
            keys.iter().any(|k| k.starts_with(&format!("relay.{pid}-")))
        };
        key(standby.pid).await
    })
    .await;
    (leader, standby)
}

fn paced_chat(
    emulator: &Emulator,
    names: &ChannelNames,
    count: usize,
) -> std::thread::JoinHandle<usize> {
    emulator.publish_paced(&names.chat, count, 1000.0)
}

async fn join(paced: std::thread::JoinHandle<usize>) -> usize {
    within(
        LONG,
        "the paced stream",
        tokio::task::spawn_blocking(move || paced.join()),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn sigkill_of_the_leader_at_1000_per_second_loses_and_doubles_nothing() {
    let Some(server) = NatsServer::start("sigkill_of_the_leader") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let nats = nats(&server).await;
    let (leader, standby) = leader_and_standby(&server, &emulator, &nats, &names.chat).await;
    const COUNT: usize = 6000;
    let paced = paced_chat(&emulator, &names, COUNT);
    wait_until(LONG, "1,500 messages in the stream", || async {
        stored_count(&nats, &names.chat).await >= 1500
    })
    .await;
    leader.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    wait_until(LONG, "the standby took over", || async {
        owners(&nats).await.values().any(|pid| *pid == standby.pid)
    })
    .await;
    let took_over = killed_at.elapsed();
    assert_eq!(join(paced).await, COUNT);
    wait_stored(&nats, &names.chat, COUNT, &[&leader, &standby]).await;
    let logs = standby.log();
    let (leader_pid, standby_pid) = (leader.pid, standby.pid);
    assert_eq!(standby.stop().await.code(), Some(0));
    let events = stored(&nats, &names.chat).await;
    assert_exactly_once(&events, paced_ids(COUNT), &logs);
    assert_handed_over_once(
        &publishers(&nats, &names.chat).await,
        leader_pid,
        standby_pid,
    );
    assert!(
        took_over <= Duration::from_secs(TTL + 2),
        "took over after {took_over:?}\n{logs}"
    );
}

#[tokio::test]
async fn a_leader_frozen_past_its_lease_then_woken_doubles_and_loses_nothing() {
    let Some(server) = NatsServer::start("a_leader_frozen") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let nats = nats(&server).await;
    let (leader, standby) = leader_and_standby(&server, &emulator, &nats, &names.chat).await;
    const COUNT: usize = 8000;
    let paced = paced_chat(&emulator, &names, COUNT);
    wait_until(LONG, "1,000 messages in the stream", || async {
        stored_count(&nats, &names.chat).await >= 1000
    })
    .await;
    leader.signal(libc::SIGSTOP);
    wait_until(LONG, "the standby took over", || async {
        owners(&nats).await.values().any(|pid| *pid == standby.pid)
    })
    .await;
    // Woken while the stream still runs: it must not publish for the channel.
    leader.signal(libc::SIGCONT);
    assert_eq!(join(paced).await, COUNT);
    wait_stored(&nats, &names.chat, COUNT, &[&leader, &standby]).await;
    let logs = format!("{}\n---\n{}", leader.log(), standby.log());
    let (leader_pid, standby_pid) = (leader.pid, standby.pid);
    assert_eq!(leader.stop().await.code(), Some(0));
    assert_eq!(standby.stop().await.code(), Some(0));
    let events = stored(&nats, &names.chat).await;
    assert_exactly_once(&events, paced_ids(COUNT), &logs);
    assert_handed_over_once(
        &publishers(&nats, &names.chat).await,
        leader_pid,
        standby_pid,
    );
}

#[tokio::test]
async fn nats_server_restarted_mid_stream_loses_nothing() {
    let Some(mut server) = NatsServer::start("nats_server_restarted") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let relay = RelayProcess::spawn(&server, &emulator, std::slice::from_ref(&names.chat));
    let nats_client = nats(&server).await;
    wait_until(LONG, "the relay holds the lease", || async {
        owners(&nats_client).await.len() == 1 && emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    const COUNT: usize = 5000;
    let paced = paced_chat(&emulator, &names, COUNT);
    wait_until(LONG, "1,000 messages in the stream", || async {
        stored_count(&nats_client, &names.chat).await >= 1000
    })
    .await;
    server.restart(); // blocks this thread for the kill and the restart: nothing else runs on it
    assert_eq!(join(paced).await, COUNT);
    let nats_client = nats(&server).await;
    wait_stored(&nats_client, &names.chat, COUNT, &[&relay]).await;
    let logs = relay.log();
    assert_eq!(relay.stop().await.code(), Some(0));
    let events = stored(&nats_client, &names.chat).await;
    // Each once; the order may not hold across a crash of NATS: a message
    // in flight when it died is stored again after later ones (docs/relay.md).
    assert_each_once(&events, paced_ids(COUNT), &logs);
}

#[tokio::test]
async fn three_relays_share_300_channels_and_cover_a_killed_ones_share() {
    let Some(server) = NatsServer::start("three_relays_share") else {
        return;
    };
    let emulator = emulator().await;
    let channels: Vec<String> = (0..300)
        .map(|i| emulator.add_channel(&format!("streamer{i}"), 100 + i).chat)
        .collect();
    let nats = nats(&server).await;
    let relays: Vec<RelayProcess> = (0..3)
        .map(|_| RelayProcess::spawn(&server, &emulator, &channels))
        .collect();
    let pids: Vec<u32> = relays.iter().map(|r| r.pid).collect();
    let about_a_third = |owners: &HashMap<String, u32>, pids: &[u32], share: usize| {
        owners.len() == 300
            && pids.iter().all(|pid| {
                let owned = owners.values().filter(|p| *p == pid).count();
                owned * 10 >= share * 7 && owned * 10 <= share * 13
            })
    };
    wait_until(LONG, "each relay owns about a third", || async {
        about_a_third(&owners(&nats).await, &pids, 100)
    })
    .await;

    let mut relays = relays.into_iter();
    let killed = relays.next().unwrap();
    let survivors: Vec<RelayProcess> = relays.collect();
    let alive: Vec<u32> = survivors.iter().map(|r| r.pid).collect();
    // The takeover is timed by the leases' own changes, watched as they
    // happen: timing the polls below would add the test's own 300 reads.
    let mut orphaned: HashSet<String> = owners(&nats)
        .await
        .into_iter()
        .filter(|(_, pid)| *pid == killed.pid)
        .map(|(key, _)| key)
        .collect();
    assert!(!orphaned.is_empty());
    let leases = async_nats::jetstream::new(nats.clone())
        .get_key_value("vklive-leases")
        .await
        .expect("lease bucket");
    let mut changes = leases.watch("channel.>").await.expect("watch leases");
    killed.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    within(LONG, "the killed relay's channels leased again", async {
        while !orphaned.is_empty() {
            let entry = changes.next().await.expect("watch ended").expect("entry");
            let owner = String::from_utf8_lossy(&entry.value)
                .split('-')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            if entry.operation == async_nats::jetstream::kv::Operation::Put
                && owner.is_some_and(|pid| alive.contains(&pid))
            {
                orphaned.remove(&entry.key);
            }
        }
    })
    .await;
    let covered = killed_at.elapsed();
    eprintln!("the killed relay's channels leased again after {covered:?} (TTL {TTL} s)");
    assert!(
        covered <= Duration::from_secs(TTL + 2),
        "all owned again after {covered:?}"
    );
    wait_until(LONG, "all 300 owned by the survivors", || async {
        let owners = owners(&nats).await;
        owners.len() == 300 && owners.values().all(|pid| alive.contains(pid))
    })
    .await;

    // One more relay takes its share.
    let newcomer = RelayProcess::spawn(&server, &emulator, &channels);
    let all: Vec<u32> = alive.iter().copied().chain([newcomer.pid]).collect();
    wait_until(LONG, "the newcomer took its share", || async {
        about_a_third(&owners(&nats).await, &all, 100)
    })
    .await;
    for relay in survivors.into_iter().chain([newcomer]) {
        assert_eq!(relay.stop().await.code(), Some(0));
    }
}

/// `cargo test` builds the examples next to the test binaries.
fn bot_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("test binary path");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir
        .join("examples")
        .join(format!("bot{}", std::env::consts::EXE_SUFFIX))
}

#[tokio::test]
async fn a_fleet_of_three_bots_on_a_shared_consumer_answers_each_ping_once() {
    let Some(server) = NatsServer::start("a_fleet_of_three_bots") else {
        return;
    };
    const BOT_TOKEN: &str = "bot-token";
    const BOT_ID: u64 = 2;
    let emulator = emulator().await;
    emulator.add_user(BOT_TOKEN, BOT_ID, "vkbot");
    let names = emulator.add_channel("streamer", 1);
    let relay = RelayProcess::spawn(&server, &emulator, std::slice::from_ref(&names.chat));
    let nats = nats(&server).await;
    wait_until(LONG, "the relay follows the chat", || async {
        owners(&nats).await.len() == 1 && emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    let bots: Vec<Child> = (0..3)
        .map(|_| {
            Command::new(bot_binary())
                .args(["--api-url", &emulator.api_url()])
                .args(["--ws-url", &emulator.ws_url()])
                .args(["--channel-url", "streamer", "--nats", &server.url()])
                .env("VKLIVE_TOKEN", BOT_TOKEN)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .expect("build the example first: cargo build --all-features --example bot")
        })
        .collect();
    let context = async_nats::jetstream::new(nats.clone());
    wait_until(
        LONG,
        "three bots pulling from the shared consumer",
        || async {
            let Ok(stream) = context.get_stream("VKLIVE").await else {
                return false;
            };
            let Ok(mut consumer) = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("vklive-bot")
                .await
            else {
                return false;
            };
            consumer
                .info()
                .await
                .is_ok_and(|info| info.num_waiting >= 3)
        },
    )
    .await;
    const PINGS: u64 = 9;
    for n in 0..PINGS {
        let viewer = DemoUser::new(2000 + n, &format!("viewer{n}"));
        emulator.publish(
            &names.chat,
            chat_message_send(
                10 + n as i64,
                1_700_000_000,
                &viewer,
                vec![text_part("!ping")],
            ),
        );
    }
    let sends = || {
        emulator
            .rest_calls()
            .into_iter()
            .filter(|call| call.path == "/v1/chat/message/send" && call.status == Some(200))
            .count()
    };
    wait_until(LONG, "nine pongs", || async { sends() >= PINGS as usize }).await;
    // Every delivered message acknowledged: nothing is left to answer twice.
    wait_until(LONG, "the consumer is drained", || async {
        let Ok(stream) = context.get_stream("VKLIVE").await else {
            return false;
        };
        let Ok(mut consumer) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("vklive-bot")
            .await
        else {
            return false;
        };
        consumer
            .info()
            .await
            .is_ok_and(|info| info.num_pending == 0 && info.num_ack_pending == 0)
    })
    .await;
    for mut bot in bots {
        let _ = bot.kill().await;
    }
    let asked: Vec<String> = emulator
        .rest_calls()
        .into_iter()
        .filter(|call| call.path == "/v1/chat/message/send" && call.status == Some(200))
        .map(|call| call.body)
        .collect();
    assert_eq!(asked.len(), PINGS as usize, "{asked:#?}");
    for n in 0..PINGS {
        let id = (2000 + n).to_string();
        let answers = asked.iter().filter(|body| body.contains(&id)).count();
        assert_eq!(answers, 1, "viewer {id}: {asked:#?}");
    }
    assert_eq!(relay.stop().await.code(), Some(0));
}

/// `vklive relay` on NATS at `url` for `channel`, with the VK token, no
/// log filter and no output kept; a test adds what its case needs.
fn relay_command(url: &str, emulator: &Emulator, channel: &str) -> Command {
    let mut command = Command::new(VKLIVE);
    command
        .args(["relay", "--nats", url])
        .args(["--api-url", &emulator.api_url()])
        .args(["--ws-url", &emulator.ws_url()])
        .args(["--lease-ttl", &TTL.to_string(), channel])
        .env("VKLIVE_TOKEN", USER_TOKEN)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `vklive relay` until it exits or `limit` passes; (status, stderr).
async fn relay_output(
    server: &NatsServer,
    emulator: &Emulator,
    url: &str,
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<i32>, String) {
    let mut command = relay_command(url, emulator, "api-channel-chat:1");
    command.envs(env.iter().copied()).stderr(Stdio::piped());
    let _ = server;
    let mut child = command.spawn().expect("vklive relay");
    let status = tokio::time::timeout(limit, child.wait()).await;
    if status.is_err() {
        child.start_kill().ok();
    }
    let output = within(TIMEOUT, "relay output", child.wait_with_output())
        .await
        .expect("output");
    (
        status.ok().and_then(|s| s.ok()).and_then(|s| s.code()),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn relay_authenticates_with_a_password_in_the_url_or_a_token_and_never_prints_them() {
    let Some(server) = NatsServer::start_with(
        "relay_authenticates_password",
        &["--user", "relay", "--pass", "pw-4f9a"],
    ) else {
        return;
    };
    let emulator = emulator().await;
    emulator.add_channel("streamer", 1);
    let port = server.port;
    let (status, stderr) = relay_output(
        &server,
        &emulator,
        &format!("nats://relay:wrong-7c1e@127.0.0.1:{port}"),
        &[],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(status, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains("wrong-7c1e") && stderr.contains("***"),
        "{stderr}"
    );

    // The right password: the relay takes the channel's lease.
    let url = format!("nats://relay:pw-4f9a@127.0.0.1:{port}");
    let client = within(
        TIMEOUT,
        "connect",
        async_nats::ConnectOptions::with_user_and_password("relay".into(), "pw-4f9a".into())
            .connect(server.url()),
    )
    .await
    .unwrap();
    let relay = relay_command(&url, &emulator, "api-channel-chat:1")
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(LONG, "the lease taken with the password", || async {
        owners(&client).await.len() == 1
    })
    .await;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(relay.id().unwrap() as i32, libc::SIGTERM);
    }
    let output = within(TIMEOUT, "relay exit", relay.wait_with_output())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0));
    let leaks: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("pw-4f9a") || line.contains(USER_TOKEN))
        .collect();
    assert!(leaks.is_empty(), "a secret in the trace log: {leaks:#?}");

    // A token, from NATS_TOKEN.
    drop(server);
    let Some(server) = NatsServer::start_with("relay_authenticates_token", &["--auth", "tok-58b2"])
    else {
        return;
    };
    let url = server.url();
    let (status, stderr) =
        relay_output(&server, &emulator, &url, &[], Duration::from_secs(30)).await;
    assert_eq!(status, Some(1), "no token: refused\n{stderr}");
    let mut relay = relay_command(&url, &emulator, "api-channel-chat:1")
        .env("NATS_TOKEN", "tok-58b2")
        .spawn()
        .unwrap();
    let client = within(
        TIMEOUT,
        "connect with the token",
        async_nats::ConnectOptions::with_token("tok-58b2".into()).connect(&url),
    )
    .await
    .unwrap();
    wait_until(LONG, "the lease taken with the token", || async {
        owners(&client).await.len() == 1
    })
    .await;
    relay.kill().await.ok();
}

/// `vklive tail --nats` reaches NATS as `vklive relay` does: the token from
/// NATS_TOKEN (the server here wants one), and `--stream NAME` names the
/// stream it reads.
#[tokio::test]
async fn tail_nats_reads_nats_token_and_the_stream_named() {
    let Some(server) = NatsServer::start_with("tail_nats_token", &["--auth", "tok-3d71"]) else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let url = server.url();
    let mut relay = relay_command(&url, &emulator, &names.chat)
        .env("NATS_TOKEN", "tok-3d71")
        .spawn()
        .unwrap();
    let client = within(
        TIMEOUT,
        "connect with the token",
        async_nats::ConnectOptions::with_token("tok-3d71".into()).connect(&url),
    )
    .await
    .unwrap();
    wait_until(LONG, "the channel leased and subscribed", || async {
        owners(&client).await.len() == 1 && emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    let viewer = DemoUser::new(1001, "viewer");
    emulator.publish(
        &names.chat,
        chat_message_send(1, 1_700_000_000, &viewer, vec![text_part("через NATS")]),
    );
    wait_stored(&client, &names.chat, 1, &[]).await;

    let tail = |stream: &str| {
        Command::new(VKLIVE)
            .args(["tail", "--nats", &url, "--since", "1h", "-n", "1", "--json"])
            .args(["--stream", stream])
            .env("NATS_TOKEN", "tok-3d71")
            .env_remove("VKLIVE_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
    };
    let output = within(TIMEOUT, "tail --nats", tail("VKLIVE"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let line: serde_json::Value = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .find(|line: &serde_json::Value| line["event"] == "publication")
        .unwrap_or_else(|| panic!("no publication: {stdout}{stderr}"));
    assert_eq!(line["channel"], names.chat.as_str());
    assert_eq!(line["type"], "channel_chat_message_send");
    assert!(!stderr.contains("tok-3d71"), "{stderr}");

    // Another stream is read, not the default one: this one does not exist.
    let output = within(TIMEOUT, "tail --nats --stream", tail("NO-SUCH-STREAM"))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NO-SUCH-STREAM"), "{stderr}");
    relay.kill().await.ok();
}

/// A JWT signed by `issuer` (an nkey), as `nsc` would make it.
fn signed_jwt(issuer: &nkeys::KeyPair, claims: serde_json::Value) -> String {
    use base64::Engine as _;
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let payload = encode(claims.to_string().as_bytes());
    let signature = issuer
        .sign(format!("{header}.{payload}").as_bytes())
        .expect("sign");
    format!("{header}.{payload}.{}", encode(&signature))
}

/// The claims every JWT carries: an id, the issuer, the subject, a name.
fn claims(
    issuer: &nkeys::KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
) -> serde_json::Value {
    static ISSUED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = ISSUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "jti": format!("VKLIVETEST{now}{id}"),
        "iat": now,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    })
}

/// An operator-mode server configuration (one account with JetStream, a
/// memory resolver) and a `.creds` file for one user of that account, in
/// `dir`: (the server's config file, the creds file, the user's seed).
fn operator_setup(dir: &std::path::Path) -> (PathBuf, PathBuf, String) {
    let operator = nkeys::KeyPair::new_operator();
    let system = nkeys::KeyPair::new_account();
    let account = nkeys::KeyPair::new_account();
    let user = nkeys::KeyPair::new_user();
    let operator_jwt = signed_jwt(
        &operator,
        claims(
            &operator,
            &operator.public_key(),
            "vklive-test",
            serde_json::json!({"type": "operator", "version": 2}),
        ),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
        "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    });
    let account_jwt = signed_jwt(
        &operator,
        claims(
            &operator,
            &account.public_key(),
            "relays",
            serde_json::json!({
                "limits": unlimited,
                "default_permissions": {"pub": {}, "sub": {}},
                "type": "account",
                "version": 2,
            }),
        ),
    );
    // JetStream needs a system account to start in operator mode.
    let system_jwt = signed_jwt(
        &operator,
        claims(
            &operator,
            &system.public_key(),
            "SYS",
            serde_json::json!({"type": "account", "version": 2}),
        ),
    );
    let user_jwt = signed_jwt(
        &account,
        claims(
            &account,
            &user.public_key(),
            "relay",
            serde_json::json!({
                "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                "type": "user", "version": 2,
            }),
        ),
    );
    std::fs::create_dir_all(dir).expect("creds dir");
    let config = dir.join("operator.conf");
    std::fs::write(
        &config,
        format!(
            "operator: {operator_jwt}\nsystem_account: {system}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {system}: {system_jwt}\n  {account}: {account_jwt}\n}}\n",
            system = system.public_key(),
            account = account.public_key(),
        ),
    )
    .expect("server config");
    let seed = user.seed().expect("seed");
    let creds = dir.join("relay.creds");
    std::fs::write(
        &creds,
        format!(
            "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
        ),
    )
    .expect("creds file");
    (config, creds, seed)
}

#[tokio::test]
async fn relay_authenticates_with_a_creds_file_and_never_prints_its_seed() {
    let dir = std::env::temp_dir().join(format!("vklive-creds-{}", std::process::id()));
    let (config, creds, seed) = operator_setup(&dir);
    let config = config.display().to_string();
    let Some(server) = NatsServer::start_with("relay_authenticates_creds", &["-c", &config]) else {
        return;
    };
    let emulator = emulator().await;
    emulator.add_channel("streamer", 1);
    let url = server.url();
    // Without the creds file: refused, one line, status 1.
    let (status, stderr) =
        relay_output(&server, &emulator, &url, &[], Duration::from_secs(30)).await;
    assert_eq!(status, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // With it (NATS_CREDS): the relay takes the lease; its trace log holds
    // neither the seed nor the VK token.
    let relay = relay_command(&url, &emulator, "api-channel-chat:1")
        .env("NATS_CREDS", &creds)
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = within(TIMEOUT, "connect with the creds file", async {
        async_nats::ConnectOptions::with_credentials_file(&creds)
            .await
            .expect("read creds")
            .connect(&url)
            .await
    })
    .await
    .expect("the test's own connection with the creds file");
    wait_until(LONG, "the lease taken with the creds file", || async {
        owners(&client).await.len() == 1
    })
    .await;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(relay.id().unwrap() as i32, libc::SIGTERM);
    }
    let output = within(TIMEOUT, "relay exit", relay.wait_with_output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let leaks: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(&seed) || line.contains(USER_TOKEN))
        .collect();
    assert!(leaks.is_empty(), "a secret in the trace log: {leaks:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ClientBuilder::resume`, which a relay taking a channel over relies on:
/// the first subscribe recovers what came after the given offset — past
/// the server's recovery limit through its history — without the epoch.
#[tokio::test]
async fn a_client_resumed_at_an_offset_gets_everything_after_it_and_nothing_before() {
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let viewer = DemoUser::new(1001, "viewer");
    for id in 1..=600 {
        emulator.publish(
            &names.chat,
            chat_message_send(id, 1_700_000_000, &viewer, vec![text_part("hi")]),
        );
    }
    let (_client, mut events) = connect(builder(&emulator).channel(&names.chat).resume(
        &names.chat,
        "",
        100,
    ))
    .await;
    let mut offsets = Vec::new();
    while offsets.len() < 500 {
        match next_event(&mut events).await {
            Event::Publication(publication) => offsets.push(publication.offset),
            Event::Gap { .. } => panic!("a gap though the history holds it all"),
            _ => {}
        }
    }
    assert_eq!(offsets, (101..=600).collect::<Vec<u64>>());
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the
/// `openssl` command (`None` when there is none: the test then skips).
fn test_certificates(dir: &std::path::Path) -> Option<()> {
    let run = |args: &[&str]| {
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    std::fs::create_dir_all(dir).ok()?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .ok()?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
    ]
    .concat();
    let ca_ext = [
        "-subj",
        "/CN=vklive-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ];
    let csr = [
        &["req"][..],
        &ec,
        &["-keyout", "server.key", "-out", "server.csr"],
    ]
    .concat();
    let sign = [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ];
    let made = run(&[&ca[..], &ca_ext].concat())
        && run(&[&csr[..], &["-subj", "/CN=127.0.0.1"]].concat())
        && run(&sign);
    if !made {
        eprintln!("skipped: the openssl command could not make test certificates");
    }
    made.then_some(())
}

#[tokio::test]
async fn relay_speaks_tls_to_nats_trusting_the_given_ca() {
    let certs = std::env::temp_dir().join(format!("vklive-tls-{}", std::process::id()));
    if test_certificates(&certs).is_none() {
        return;
    }
    let path = |name: &str| certs.join(name).display().to_string();
    let Some(server) = NatsServer::start_with(
        "relay_speaks_tls",
        &[
            "--tls",
            "--tlscert",
            &path("server.pem"),
            "--tlskey",
            &path("server.key"),
        ],
    ) else {
        return;
    };
    let emulator = emulator().await;
    emulator.add_channel("streamer", 1);
    let url = format!("tls://127.0.0.1:{}", server.port);
    // Without the CA: one line, status 1.
    let (status, stderr) =
        relay_output(&server, &emulator, &url, &[], Duration::from_secs(30)).await;
    assert_eq!(status, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // With it (NATS_CA): the relay takes the lease.
    let mut relay = relay_command(&url, &emulator, "api-channel-chat:1")
        .env("NATS_CA", path("ca.pem"))
        .spawn()
        .unwrap();
    let client = within(
        TIMEOUT,
        "connect over TLS",
        async_nats::ConnectOptions::new()
            .add_root_certificates(certs.join("ca.pem"))
            .require_tls(true)
            .connect(&url),
    )
    .await
    .unwrap();
    wait_until(LONG, "the lease taken over TLS", || async {
        owners(&client).await.len() == 1
    })
    .await;
    relay.kill().await.ok();
    let _ = std::fs::remove_dir_all(&certs);
}

/// SIGTERM gives the leases back: a standby takes the channel over at once,
/// long before the 30 s lease could have lapsed.
#[tokio::test]
async fn a_stopped_relay_hands_its_channels_over_at_once() {
    let Some(server) = NatsServer::start("a_stopped_relay_hands_over") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let nats = nats(&server).await;
    let channels = [names.chat.clone()];
    let options = ["--lease-ttl", "30"];
    let leader = RelayProcess::spawn_with(&server, &emulator, &channels, &options);
    wait_until(LONG, "the leader holds the lease", || async {
        owners(&nats).await.values().any(|pid| *pid == leader.pid)
    })
    .await;
    let standby = RelayProcess::spawn_with(&server, &emulator, &channels, &options);
    let standby_pid = standby.pid;
    // Running (its log says so) and waiting for the lease.
    wait_until(LONG, "the standby runs", || async {
        standby.log().contains("relay started")
    })
    .await;
    assert_eq!(leader.stop().await.code(), Some(0));
    within(
        Duration::from_secs(20),
        "the standby took over well within the 30 s lease",
        async {
            while !owners(&nats).await.values().any(|pid| *pid == standby_pid) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    assert_eq!(standby.stop().await.code(), Some(0));
}

/// `vklive relay --help` promises exit 0 after SIGINT or SIGTERM: it holds
/// while NATS is down too (the shutdown's flush and lease release are
/// bounded, they do not wait for a server that is gone).
#[tokio::test]
async fn sigterm_ends_the_relay_with_status_0_while_nats_is_down() {
    let Some(mut server) = NatsServer::start("sigterm_while_nats_is_down") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let mut relay = RelayProcess::spawn(&server, &emulator, std::slice::from_ref(&names.chat));
    let nats_client = nats(&server).await;
    wait_until(LONG, "the relay holds the lease", || async {
        owners(&nats_client).await.len() == 1 && emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    drop(nats_client);
    server.kill(); // waits until nats-server has exited
    relay.signal(libc::SIGTERM);
    let status = match tokio::time::timeout(Duration::from_secs(30), relay.child.wait()).await {
        Ok(status) => status.expect("wait"),
        Err(_) => panic!("the relay still runs 30 s after SIGTERM\n{}", relay.log()),
    };
    assert_eq!(status.code(), Some(0), "{}", relay.log());
}

/// `--channel-url` takes a channel's page URL as `tail` does (the library's
/// one slug reader), not only a bare slug: the relay leases its channels.
#[tokio::test]
async fn relay_channel_url_takes_a_full_page_url() {
    let Some(server) = NatsServer::start("relay_channel_url_full") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let mut relay = RelayProcess::spawn_with(
        &server,
        &emulator,
        &[],
        &["--channel-url", "https://live.vkvideo.ru/streamer/"],
    );
    let nats = nats(&server).await;
    let chat = vklive_pubsub::relay::subject::lease_key(&names.chat);
    let info = vklive_pubsub::relay::subject::lease_key(&names.info);
    let waited = tokio::time::timeout(LONG, async {
        loop {
            let owned = owners(&nats).await;
            if owned.get(&chat) == Some(&relay.pid) && owned.get(&info) == Some(&relay.pid) {
                break;
            }
            if let Ok(Some(status)) = relay.child.try_wait() {
                panic!("the relay exited ({status})\n{}", relay.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "the channel's chat and info not leased\n{}",
        relay.log()
    );
    assert_eq!(relay.stop().await.code(), Some(0));
}

/// The `Vklive-Epoch` header and the offset ids carry the VK stream's
/// epoch; after the VK stream restarts (a new epoch, offsets from 1 again)
/// the new epoch's offset 1 gets a new id, so JetStream stores it instead of
/// dropping it as a duplicate of the old offset 1.
#[tokio::test]
async fn relayed_messages_carry_the_vk_epoch_so_a_restarted_stream_repeats_no_id() {
    use vklive_pubsub::relay::ids::{EPOCH_HEADER, OFFSET_HEADER};
    let Some(server) = NatsServer::start("relayed_messages_carry_the_vk_epoch") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let channel = names.info.clone();
    let relay = RelayProcess::spawn(&server, &emulator, std::slice::from_ref(&channel));
    let nats = nats(&server).await;
    wait_until(LONG, "the channel leased and subscribed", || async {
        owners(&nats).await.len() == 1 && emulator.subscriber_count(&channel) == 1
    })
    .await;
    let viewer = DemoUser::new(1001, "viewer");
    emulator.publish(&channel, follow_create(&viewer));
    let (first, _) = emulator.stream_position(&channel);
    wait_stored(&nats, &channel, 1, &[&relay]).await;

    emulator.restart_channel(&channel);
    let (second, _) = emulator.stream_position(&channel);
    assert_ne!(first, second);
    // The relay resubscribes; the old epoch cannot be recovered: a gap.
    wait_stored(&nats, &channel, 2, &[&relay]).await;
    emulator.publish(&channel, follow_create(&viewer));
    wait_stored(&nats, &channel, 3, &[&relay]).await;

    let headers = stored_headers(&nats, &channel).await;
    let seen: Vec<(String, String, String)> = headers
        .iter()
        .map(|h| {
            (
                header(h, EPOCH_HEADER),
                header(h, OFFSET_HEADER),
                header(h, "Nats-Msg-Id"),
            )
        })
        .collect();
    assert_eq!(
        seen[0],
        (first.clone(), "1".into(), format!("{channel}/{first}/1"))
    );
    assert_eq!(seen[1].0, second, "the gap is in the new epoch: {seen:?}");
    assert_eq!(
        seen[2],
        (second.clone(), "1".into(), format!("{channel}/{second}/1"))
    );
    let events = stored(&nats, &channel).await;
    assert!(matches!(events[1], Event::Gap { .. }), "{events:?}");
    assert_eq!(relay.stop().await.code(), Some(0));
}

/// A relay taking a channel over resumes in the epoch read back from the
/// stream: when the VK stream restarted meanwhile, it reports the loss as a
/// gap instead of resuming at the old offset in the new epoch (which would
/// skip the new epoch's first publications without a word).
#[tokio::test]
async fn a_takeover_after_a_vk_stream_restart_reports_a_gap_not_a_silent_skip() {
    let Some(server) = NatsServer::start("a_takeover_after_a_vk_stream_restart") else {
        return;
    };
    let emulator = emulator().await;
    let names = emulator.add_channel("streamer", 7);
    let channel = names.info.clone();
    let nats = nats(&server).await;
    let channels = std::slice::from_ref(&channel);
    let leader = RelayProcess::spawn(&server, &emulator, channels);
    wait_until(LONG, "the leader leased and subscribed", || async {
        owners(&nats).await.len() == 1 && emulator.subscriber_count(&channel) == 1
    })
    .await;
    let viewer = DemoUser::new(1001, "viewer");
    emulator.publish(&channel, follow_create(&viewer));
    emulator.publish(&channel, raid_income(&viewer, 2));
    wait_stored(&nats, &channel, 2, &[&leader]).await;
    assert_eq!(leader.stop().await.code(), Some(0));

    // Meanwhile the VK stream restarts and carries on: offsets 1..=3 of
    // the new epoch, which no relay saw.
    emulator.restart_channel(&channel);
    for viewers in 1..=3 {
        emulator.publish(&channel, raid_income(&viewer, viewers));
    }
    let standby = RelayProcess::spawn(&server, &emulator, channels);
    wait_stored(&nats, &channel, 3, &[&standby]).await;
    emulator.publish(&channel, raid_income(&viewer, 4));
    wait_stored(&nats, &channel, 4, &[&standby]).await;
    let events = stored(&nats, &channel).await;
    let offsets: Vec<Option<u64>> = events
        .iter()
        .map(|event| match event {
            Event::Publication(publication) => Some(publication.offset),
            _ => None,
        })
        .collect();
    assert_eq!(
        offsets,
        [Some(1), Some(2), None, Some(4)],
        "{events:?}\n{}",
        standby.log()
    );
    assert!(matches!(events[2], Event::Gap { .. }));
    assert_eq!(standby.stop().await.code(), Some(0));
}

/// Issue 23.2 against a VK side without history (as VK probably runs): no
/// offsets to recover from, so a takeover fills the chat in from REST after
/// the newest chat message in the stream, and reports what it cannot fill
/// in (the channel's other events) as a gap, never skipping silently.
#[tokio::test]
async fn a_takeover_without_vk_history_fills_chat_in_from_rest_and_reports_a_gap_for_the_rest() {
    let Some(server) = NatsServer::start("a_takeover_without_vk_history") else {
        return;
    };
    let emulator = start(EmulatorConfig {
        history: false,
        chat_min_interval: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let names = emulator.add_channel("streamer", 7);
    let nats = nats(&server).await;
    let viewer = DemoUser::new(1001, "viewer");
    let say = |id: i64| {
        emulator.publish(
            &names.chat,
            chat_message_send(
                id,
                1_700_000_000 + id as u64,
                &viewer,
                vec![text_part("hi")],
            ),
        );
    };
    let options = ["--duplicate-window", "1", "--channel-url", "streamer"];
    let leader = RelayProcess::spawn_with(&server, &emulator, &[], &options);
    wait_until(LONG, "the leader follows chat and info", || async {
        owners(&nats).await.len() >= 2
            && emulator.subscriber_count(&names.chat) == 1
            && emulator.subscriber_count(&names.info) == 1
    })
    .await;
    for id in 1..=5 {
        say(id);
    }
    emulator.publish(&names.info, follow_create(&viewer));
    wait_stored(&nats, &names.chat, 5, &[&leader]).await;
    wait_stored(&nats, &names.info, 1, &[&leader]).await;

    // The leader dies; chat goes on while nobody follows the channel.
    leader.signal(libc::SIGKILL);
    wait_until(LONG, "the leader's subscriptions gone", || async {
        emulator.subscriber_count(&names.chat) == 0
    })
    .await;
    for id in 6..=8 {
        say(id);
    }
    let standby = RelayProcess::spawn_with(&server, &emulator, &[], &options);
    wait_until(LONG, "the standby follows chat", || async {
        emulator.subscriber_count(&names.chat) == 1
    })
    .await;
    for id in 9..=10 {
        say(id);
    }
    wait_stored(&nats, &names.chat, 10, &[&leader, &standby]).await;
    wait_stored(&nats, &names.info, 2, &[&leader, &standby]).await;
    let logs = standby.log();
    assert_eq!(standby.stop().await.code(), Some(0));
    let chat = stored(&nats, &names.chat).await;
    assert_exactly_once(&chat, 1..11, &logs);
    let info = stored(&nats, &names.info).await;
    assert!(matches!(info[0], Event::Publication(_)), "{info:?}");
    assert!(
        matches!(&info[1], Event::Gap { channel, missed: None } if *channel == names.info),
        "{info:?}\n{logs}"
    );
}
