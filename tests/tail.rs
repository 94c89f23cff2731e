//! `vklive tail` as a user runs it: against a standalone emulator, with
//! `-n`, `-q`, on a revoked token, with `RUST_LOG=trace`, without a token,
//! against a dead host, under a pseudo-terminal, and stopped by SIGTERM.
//!
//! `cargo test` builds the `vklive` binary first (`CARGO_BIN_EXE_vklive`),
//! so these never run a stale build.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");

/// A config directory holding no login.
fn no_login_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vklive-no-login")
}

/// `vklive tail` with piped output, no token and no `RUST_LOG` unless added.
fn vklive_tail(args: &[&str]) -> Command {
    let mut command = Command::new(VKLIVE);
    command
        .arg("tail")
        .args(args)
        .env_remove("VKLIVE_TOKEN")
        .env_remove("RUST_LOG")
        // No stored login from the machine's user: an empty config directory.
        .env("VKLIVE_CONFIG_DIR", no_login_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn tail(emulator: &Emulator, token: &str, args: &[&str]) -> Command {
    let mut command = vklive_tail(&[
        "--api-url",
        &emulator.api_url(),
        "--ws-url",
        &emulator.ws_url(),
    ]);
    command
        .args(args)
        .env("VKLIVE_TOKEN", token)
        .env("RUST_LOG", "trace");
    command
}

struct Finished {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

async fn finish(mut child: tokio::process::Child) -> Finished {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let read = async {
        let (a, b) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        a.and(b)
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("tail did not finish")
        .unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    Finished {
        status,
        stdout: out,
        stderr: err,
    }
}

/// The single `tail: <cause>` line on stderr (trace logs from background
/// tasks may interleave with it).
fn one_line_cause(stderr: &str) -> String {
    let causes: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("tail: "))
        .collect();
    assert_eq!(causes.len(), 1, "exactly one cause line: {causes:?}");
    causes[0].to_owned()
}

/// Every token the emulator handed out or was given, as plain strings.
fn all_tokens(emulator: &Emulator) -> Vec<String> {
    let mut tokens = vec![USER_TOKEN.to_owned()];
    for received in emulator.received_commands() {
        let command = received.command;
        let secrets = [
            command.connect.and_then(|c| c.token),
            command.subscribe.and_then(|s| s.token),
            command.refresh.and_then(|r| r.token),
            command.sub_refresh.and_then(|s| s.token),
        ];
        tokens.extend(
            secrets
                .into_iter()
                .flatten()
                .map(|s| s.expose_secret().to_owned()),
        );
    }
    tokens
}

#[tokio::test]
async fn tail_prints_ndjson_and_exits_after_n_publications_without_leaking_tokens() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 1);
    let child = tail(
        &emulator,
        USER_TOKEN,
        &["-n", "3", "--channel-url", "streamer"],
    )
    .spawn()
    .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count(&names.chat) == 1
    })
    .await;
    // More than -n: tail must print exactly 3 and stop.
    for id in 1..=50 {
        emulator.publish(&names.chat, chat(id, "hello from the test"));
    }
    let done = finish(child).await;
    assert!(done.status.success(), "{}", done.stderr);

    let lines: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is JSON"))
        .collect();
    let publications: Vec<_> = lines
        .iter()
        .filter(|l| l["event"] == "publication")
        .collect();
    assert_eq!(publications.len(), 3);
    assert_eq!(publications[0]["type"], "channel_chat_message_send");
    assert_eq!(publications[2]["offset"], 3);
    assert!(lines.iter().any(|l| l["event"] == "connected"));
    assert!(lines.iter().any(|l| l["event"] == "subscribed"));

    assert!(
        done.stderr.contains("TRACE") || done.stderr.contains("DEBUG"),
        "trace logs on"
    );
    for token in all_tokens(&emulator) {
        assert!(!done.stdout.contains(&token), "token leaked on stdout");
        assert!(!done.stderr.contains(&token), "token leaked on stderr");
    }
}

#[tokio::test]
async fn tail_quiet_prints_only_the_summary() {
    let emulator = start(EmulatorConfig::default()).await;
    let child = tail(
        &emulator,
        USER_TOKEN,
        &["-q", "-n", "2", "api-channel-chat:1"],
    )
    .spawn()
    .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    for id in 1..=20 {
        emulator.publish("api-channel-chat:1", chat(id, "a"));
    }
    let done = finish(child).await;
    assert!(done.status.success(), "{}", done.stderr);
    let lines: Vec<&str> = done.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let summary: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(summary["summary"]["publications"], 2);
    assert!(summary["summary"]["seconds"].is_number());
}

#[tokio::test]
async fn tail_exits_non_zero_with_one_line_on_a_rejected_token() {
    let emulator = start(EmulatorConfig::default()).await;
    let mut command = tail(&emulator, "wrong-token", &["api-channel-chat:1"]);
    command.env_remove("RUST_LOG"); // default logging: stderr holds the cause alone
    let done = finish(command.spawn().unwrap()).await;
    assert!(!done.status.success());
    assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("401"), "{cause}");
    assert!(!done.stderr.contains("wrong-token"));
}

#[tokio::test]
async fn after_a_3500_close_with_a_revoked_token_tail_exits_within_two_more_attempts() {
    let emulator = start(EmulatorConfig::default()).await;
    let child = tail(&emulator, USER_TOKEN, &["api-channel-chat:1"])
        .spawn()
        .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    let token_calls_before = rest_count(&emulator, "/v1/websocket/token");
    emulator.revoke_access_token(USER_TOKEN); // also closes the connection with 3500
    let done = finish(child).await;
    assert!(!done.status.success());
    let attempts = rest_count(&emulator, "/v1/websocket/token") - token_calls_before;
    assert!(attempts <= 2, "{attempts} more connection attempts");
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("401") || cause.contains("3500"), "{cause}");
}

#[tokio::test]
async fn tail_channel_url_follows_public_channels_and_only_the_granted_private_ones() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 2);
    emulator.deny(USER_ID, &names.private_info);
    let child = tail(
        &emulator,
        USER_TOKEN,
        &["-n", "1", "--channel-url", "streamer"],
    )
    .spawn()
    .unwrap();
    wait_until(&emulator, "tail subscribed everything", |e| {
        e.subscriber_count(&names.chat) == 1 && e.subscriber_count(&names.private_chat) == 1
    })
    .await;
    emulator.publish(&names.chat, chat(1, "hi"));
    let done = finish(child).await;
    assert!(done.status.success(), "{}", done.stderr);
    let subscribed: Vec<String> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["event"] == "subscribed")
        .map(|line| line["channel"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        &names.chat,
        &names.info,
        &names.channel_points,
        &names.private_chat,
    ] {
        assert!(
            subscribed.contains(expected),
            "{expected} in {subscribed:?}"
        );
    }
    assert!(
        !subscribed.contains(&names.private_info),
        "denied channel skipped"
    );
    assert!(
        !done.stdout.contains("subscription_failed"),
        "{}",
        done.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_n_finishes_with_every_publication_however_slowly_stdout_is_read() {
    let emulator = start(EmulatorConfig {
        outgoing_queue_capacity: 10_000_000,
        ..Default::default()
    })
    .await;
    let total = 20_000;
    let count = total.to_string();
    let mut child = tail(&emulator, USER_TOKEN, &["-n", &count, "api-channel-chat:1"])
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    emulator
        .blast("api-channel-chat:1", total, 100)
        .expect("blast");
    // A reader much slower than the socket: small reads with pauses.
    let mut stdout = child.stdout.take().unwrap();
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    let read_slowly = async {
        loop {
            let read = stdout.read(&mut buffer).await.unwrap();
            if read == 0 {
                break;
            }
            text.extend_from_slice(&buffer[..read]);
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read_slowly)
        .await
        .expect("tail finished");
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let text = String::from_utf8(text).unwrap();
    let offsets: Vec<u64> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["event"] == "publication")
        .map(|line| line["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets.len(), total, "every publication, none dropped");
    assert!(offsets.windows(2).all(|pair| pair[1] == pair[0] + 1));
    assert!(!text.contains("lagged"));
}

#[tokio::test]
async fn tail_prints_one_gap_line_for_a_loss_it_cannot_repair() {
    let emulator = start(EmulatorConfig {
        history: false,
        ..Default::default()
    })
    .await;
    let child = tail(&emulator, USER_TOKEN, &["api-channel-info:1"])
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-info:1") == 1
    })
    .await;
    emulator.abort_all();
    wait_until(&emulator, "tail subscribed again", |e| {
        e.subscriber_count("api-channel-info:1") == 1 && e.connection_count() == 1
    })
    .await;
    // Ends tail: its stdout then holds everything it printed.
    emulator.close_all(3501, "bad request");
    let done = finish(child).await;
    let gaps: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["event"] == "gap")
        .collect();
    assert_eq!(
        gaps,
        [serde_json::json!({"event": "gap", "channel": "api-channel-info:1", "missed": null})],
        "{}",
        done.stdout
    );
}

#[tokio::test]
async fn without_a_token_tail_exits_at_once_naming_vklive_token_and_demo() {
    let started = Instant::now();
    let done = finish(vklive_tail(&["api-channel-chat:1"]).spawn().unwrap()).await;
    assert!(!done.status.success());
    assert!(started.elapsed() < Duration::from_secs(5), "at once");
    assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("VKLIVE_TOKEN"), "{cause}");
    assert!(cause.contains("--demo"), "{cause}");
    assert!(done.stdout.is_empty(), "no invented chat: {}", done.stdout);
}

/// Nothing listens on port 9 (discard) of the loopback: the first connect
/// fails fast, within the documented bound (3 attempts or 15 s).
#[tokio::test]
async fn a_dead_api_host_makes_tail_exit_within_the_first_connect_bound() {
    let started = Instant::now();
    let mut command = vklive_tail(&["--api-url", "http://127.0.0.1:9", "api-channel-chat:1"]);
    command.env("VKLIVE_TOKEN", USER_TOKEN);
    let done = finish(command.spawn().unwrap()).await;
    let elapsed = started.elapsed();
    assert!(!done.status.success());
    assert!(elapsed < Duration::from_secs(20), "gave up in {elapsed:?}");
    assert_eq!(done.stderr.lines().count(), 1, "{}", done.stderr);
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("could not connect"), "{cause}");
    assert!(
        cause.contains("127.0.0.1:9") || cause.contains("refused"),
        "{cause}"
    );
}

#[tokio::test]
async fn tail_exits_non_zero_when_none_of_its_channels_can_be_subscribed() {
    let emulator = start(EmulatorConfig::default()).await;
    // An unknown namespace (102) and a private channel without a token (103).
    emulator.deny(USER_ID, "api-channel-private-chat:1");
    let mut command = tail(
        &emulator,
        USER_TOKEN,
        &["no-such-namespace:1", "api-channel-private-chat:1"],
    );
    command.env_remove("RUST_LOG");
    let done = finish(command.spawn().unwrap()).await;
    assert!(!done.status.success(), "{}", done.stdout);
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("none of the channels"), "{cause}");
    assert!(cause.contains("no-such-namespace:1"), "{cause}");
    assert!(cause.contains("api-channel-private-chat:1"), "{cause}");
    let failed = done
        .stdout
        .lines()
        .filter(|line| line.contains("subscription_failed"))
        .count();
    assert_eq!(failed, 2, "{}", done.stdout);
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_closes_tail_cleanly_like_ctrl_c() {
    let emulator = start(EmulatorConfig::default()).await;
    let mut command = tail(&emulator, USER_TOKEN, &["api-channel-chat:1"]);
    command.env_remove("RUST_LOG");
    let mut child = command.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    // Read until subscribed: the signal handler is in place by then.
    loop {
        let line = within(stdout.next_line()).await.unwrap().expect("a line");
        if line.contains(r#""event":"subscribed""#) {
            break;
        }
    }
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: sending a signal to our own child, whose pid we just read.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut rest = Vec::new();
    while let Some(line) = within(stdout.next_line()).await.unwrap() {
        rest.push(line);
    }
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter().all(|line| !line.contains("disconnected")),
        "{rest:?}"
    );
    wait_until(&emulator, "the connection closed", |e| {
        e.connection_count() == 0
    })
    .await;
    assert!(
        emulator.close_codes().is_empty(),
        "the client closed, not the server"
    );
}

/// Under a pseudo-terminal (`script`), `--demo` prints readable lines:
/// time, channel, `nick: text`, in colour; no JSON.
#[tokio::test]
async fn on_a_terminal_tail_demo_prints_readable_lines() {
    let command_line = format!("{VKLIVE} tail --demo -n 5");
    let output = Command::new("script")
        .args(["-qec", &command_line, "/dev/null"])
        .env_remove("VKLIVE_TOKEN")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(30), output)
        .await
        .expect("tail --demo -n 5 finished")
        .expect("script runs");
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("--demo"), "says it is the demo: {text}");
    assert!(text.contains("\u{1b}["), "colour on a terminal: {text}");
    let plain = strip_ansi(&text);
    let chat: Vec<&str> = plain
        .lines()
        .filter(|line| line.contains(" api-channel-chat:1 "))
        .collect();
    assert!(!chat.is_empty(), "{plain}");
    for line in &chat {
        assert!(!line.trim_start().starts_with('{'), "not JSON: {line}");
        let (time, rest) = line.trim_start().split_once(' ').unwrap();
        assert_eq!(time.len(), 8, "HH:MM:SS first: {line}");
        assert!(rest.contains(": "), "nick: text: {line}");
    }
    assert!(!plain.contains(r#""event""#), "{plain}");
}

/// Removes `ESC [ … letter` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Issue 24.4: no token on the command line (it shows in `ps`): `--token`
/// is refused as an unknown flag, and `--token-file` is read instead.
#[tokio::test]
async fn tail_refuses_a_token_flag_and_reads_the_token_from_a_file() {
    let emulator = start(EmulatorConfig::default()).await;
    let mut command = vklive_tail(&["--token", USER_TOKEN, "api-channel-chat:1"]);
    let done = finish(command.spawn().unwrap()).await;
    assert_eq!(
        done.status.code(),
        Some(2),
        "a usage error: {}",
        done.stderr
    );
    assert!(done.stderr.contains("--token"), "{}", done.stderr);

    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tail-token-file");
    std::fs::write(&file, format!("{USER_TOKEN}\n")).unwrap();
    let mut command = vklive_tail(&[
        "--api-url",
        &emulator.api_url(),
        "--ws-url",
        &emulator.ws_url(),
        "--token-file",
        file.to_str().unwrap(),
        "-n",
        "1",
        "api-channel-chat:1",
    ]);
    let child = command.spawn().unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    emulator.publish("api-channel-chat:1", chat(1, "from a file"));
    let done = finish(child).await;
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stdout.contains("from a file"), "{}", done.stdout);
}

/// Issue 25.4: `--kind` shows only the kinds named (lifecycle lines stay),
/// and `-n` counts only those.
#[tokio::test]
async fn tail_kind_shows_only_the_kinds_named() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 2);
    let child = tail(
        &emulator,
        USER_TOKEN,
        &[
            "--kind",
            "follow,raid",
            "-n",
            "1",
            "--channel-url",
            "streamer",
        ],
    )
    .env_remove("RUST_LOG")
    .spawn()
    .unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count(&names.chat) == 1 && e.subscriber_count(&names.info) == 1
    })
    .await;
    emulator.publish(&names.chat, chat(1, "not shown"));
    emulator.publish(
        &names.info,
        vklive_pubsub::emulator::follow_create(&vklive_pubsub::emulator::DemoUser::new(5, "fan")),
    );
    let done = finish(child).await;
    assert!(done.status.success(), "{}", done.stderr);
    let publications: Vec<serde_json::Value> = done
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line["event"] == "publication")
        .collect();
    assert_eq!(publications.len(), 1, "{}", done.stdout);
    assert_eq!(publications[0]["type"], "channel_follow_create");
    assert!(
        done.stdout.contains(r#""event":"subscribed""#),
        "lifecycle lines stay"
    );
}

/// Issue 24.8: a stop request ends `tail` even when nobody reads its stdout
/// (a full pipe blocked its writes before, and SIGTERM went unheard); what
/// it had written stays readable.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_tail_whose_stdout_pipe_nobody_reads() {
    let emulator = start(EmulatorConfig {
        outgoing_queue_capacity: 10_000_000,
        ..Default::default()
    })
    .await;
    let mut child = tail(&emulator, USER_TOKEN, &["api-channel-chat:1"])
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    common::pipe::shrink_to_one_page(&stdout);
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    // Far more than the pipe, tail's buffer and its queue hold together.
    emulator
        .blast("api-channel-chat:1", 20_000, 100)
        .expect("blast");
    let mut written = common::pipe::read_to_a_publication_then_let_fill(&mut stdout).await;
    let pid = child.id().expect("running") as libc::pid_t;
    let asked = Instant::now();
    // SAFETY: sending a signal to our own child, whose pid we just read.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = within(child.wait()).await.unwrap();
    eprintln!(
        "tail ended {:?} after SIGTERM with a full pipe",
        asked.elapsed()
    );
    assert!(status.success(), "{status:?}");
    // What was written stays: the pipe still holds whole NDJSON lines.
    within(stdout.read_to_end(&mut written)).await.unwrap();
    let text = String::from_utf8_lossy(&written);
    assert!(text.lines().count() > 1, "lines were written: {text}");
    common::pipe::assert_whole_lines_are_json(&written);
}

/// Issue 24.9: the server's close reason is cleaned of control characters
/// before it reaches the terminal in tail's final error line.
#[tokio::test]
async fn tails_final_error_carries_no_escape_from_the_server() {
    let emulator = start(EmulatorConfig::default()).await;
    let mut command = tail(&emulator, USER_TOKEN, &["api-channel-chat:1"]);
    command.env_remove("RUST_LOG");
    let child = command.spawn().unwrap();
    wait_until(&emulator, "tail subscribed", |e| {
        e.subscriber_count("api-channel-chat:1") == 1
    })
    .await;
    // 3501 (bad request) is terminal: the client gives up with the reason.
    emulator.close_all(3501, "bad\u{1b}]0;owned\u{7}\u{1b}[2Jrequest\r\n");
    let done = finish(child).await;
    assert!(!done.status.success());
    let cause = one_line_cause(&done.stderr);
    assert!(cause.contains("bad"), "{cause:?}");
    assert!(
        !done.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached stderr: {:?}",
        done.stderr
    );
}
