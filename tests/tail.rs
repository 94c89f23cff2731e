//! The `tail` example as a user runs it: against a standalone emulator,
//! with `-n`, `-q`, on a revoked token, and with `RUST_LOG=trace`.
//!
//! These run the `tail` binary that `cargo test --all-features` builds with
//! every target; when selecting only this file (`--test tail`), build it
//! first with `cargo build --all-features --example tail`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

/// `cargo test` builds the examples next to the test binaries.
fn tail_binary() -> PathBuf {
    let test_exe = std::env::current_exe().expect("test binary path");
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    profile_dir
        .join("examples")
        .join(format!("tail{}", std::env::consts::EXE_SUFFIX))
}

fn tail(emulator: &Emulator, token: &str, args: &[&str]) -> Command {
    let mut command = Command::new(tail_binary());
    command
        .arg("--api-url")
        .arg(emulator.api_url())
        .arg("--ws-url")
        .arg(emulator.ws_url())
        .args(args)
        .env("VKLIVE_TOKEN", token)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
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
