//! `vklive send` against the emulator: the message reaches the channel's
//! chat with the live stream's id, and every refusal is one line naming
//! VK's reason, with its own exit status (docs/cli.md).

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use tokio::process::Command;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");

/// `vklive send` at `emulator` as the test user, with `args`.
async fn send(emulator: &Emulator, args: &[&str]) -> Output {
    let config = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("send-no-login");
    let mut command = Command::new(VKLIVE);
    command
        .args(["send", "--api-url", &emulator.api_url()])
        .args(args)
        .env("VKLIVE_TOKEN", USER_TOKEN)
        .env("VKLIVE_CONFIG_DIR", config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    within(command.output()).await.unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A live channel `streamer` (owned by user 2) in an emulator that allows
/// one message per user per `interval`, of at most 40 characters.
async fn live_channel(
    interval: Duration,
) -> (Emulator, vklive_pubsub::emulator::ChannelNames, String) {
    let emulator = start(EmulatorConfig {
        chat_min_interval: interval,
        chat_max_length: 40,
        ..Default::default()
    })
    .await;
    let names = emulator.add_channel("streamer", 2);
    if emulator.stream_id("streamer").is_none() {
        emulator.start_stream("streamer");
    }
    let stream = emulator.stream_id("streamer").expect("live");
    (emulator, names, stream)
}

fn sends(emulator: &Emulator) -> Vec<vklive_pubsub::emulator::RestCall> {
    emulator
        .rest_calls()
        .into_iter()
        .filter(|call| call.path == "/v1/chat/message/send")
        .collect()
}

#[tokio::test]
async fn send_reaches_the_chat_of_the_live_stream() {
    let (emulator, names, stream) = live_channel(Duration::ZERO).await;
    let (_, before) = emulator.stream_position(&names.chat);
    let output = send(&emulator, &["--channel-url", "streamer", "hello", "chat"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = sends(&emulator);
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].query_param("stream_id"), Some(stream));
    assert_eq!(
        calls[0].query_param("channel_url").as_deref(),
        Some("streamer")
    );
    assert_eq!(calls[0].json()["parts"][0]["text"]["content"], "hello chat");
    assert_eq!(calls[0].status, Some(200));
    let (_, after) = emulator.stream_position(&names.chat);
    assert_eq!(after, before + 1, "published into the channel's chat");
}

#[tokio::test]
async fn send_mentions_and_replies_to_the_author_of_a_message() {
    let (emulator, names, _) = live_channel(Duration::ZERO).await;
    emulator.publish(&names.chat, chat(555, "a question")); // its author is user 7
    let output = send(
        &emulator,
        &[
            "--channel-url",
            "streamer",
            "--reply-to",
            "555",
            "--mention",
            "9",
            "an answer",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let body = sends(&emulator)[0].json();
    assert_eq!(body["parts"][0]["mention"]["id"], 7);
    assert_eq!(body["parts"][1]["mention"]["id"], 9);
    assert_eq!(body["parts"][2]["text"]["content"], " an answer");

    let output = send(
        &emulator,
        &["--channel-url", "streamer", "--reply-to", "999", "x"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--reply-to 999"),
        "{}",
        stderr(&output)
    );
}

/// Each refusal: its exit status and one line naming VK's reason.
#[tokio::test]
async fn each_refusal_is_one_line_naming_vks_reason_with_its_own_status() {
    let (emulator, _, _) = live_channel(Duration::ZERO).await;
    let expect = |output: &Output, status: i32, reason: &str| {
        let text = stderr(output);
        assert_eq!(output.status.code(), Some(status), "{text}");
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        assert!(text.starts_with(&format!("send: {reason}")), "{text}");
        assert!(!text.contains(USER_TOKEN));
    };
    let first = send(&emulator, &["--channel-url", "streamer", "same"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    expect(
        &send(&emulator, &["--channel-url", "streamer", "same"]).await,
        4,
        "same_message",
    );
    let long = "x".repeat(41);
    expect(
        &send(&emulator, &["--channel-url", "streamer", &long]).await,
        5,
        "message_too_long",
    );
    emulator.forbid_chat("streamer", USER_ID);
    expect(
        &send(&emulator, &["--channel-url", "streamer", "hi"]).await,
        6,
        "forbidden",
    );
    let offline = emulator.add_channel("sleeping", 3);
    emulator.stop_stream("sleeping");
    let _ = offline;
    expect(
        &send(&emulator, &["--channel-url", "sleeping", "hi"]).await,
        7,
        "offline",
    );

    // One message an hour: the second is too fast, and the CLI does not retry.
    let (strict, _, _) = live_channel(Duration::from_secs(3600)).await;
    let first = send(&strict, &["--channel-url", "streamer", "one"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    expect(
        &send(&strict, &["--channel-url", "streamer", "two"]).await,
        3,
        "send_too_fast",
    );
}

#[tokio::test]
async fn send_with_a_refused_token_says_unauthorized() {
    let (emulator, _, _) = live_channel(Duration::ZERO).await;
    let config = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("send-no-login");
    let output = within(
        Command::new(VKLIVE)
            .args([
                "send",
                "--api-url",
                &emulator.api_url(),
                "--channel-url",
                "streamer",
                "hi",
            ])
            .env("VKLIVE_TOKEN", "wrong-token")
            .env("VKLIVE_CONFIG_DIR", &config)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(8), "{}", stderr(&output));
    assert!(stderr(&output).starts_with("send: unauthorized"));

    let output = within(
        Command::new(VKLIVE)
            .args([
                "send",
                "--api-url",
                &emulator.api_url(),
                "--channel-url",
                "streamer",
                "hi",
            ])
            .env_remove("VKLIVE_TOKEN")
            .env("VKLIVE_CONFIG_DIR", &config)
            .output(),
    )
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("VKLIVE_TOKEN"),
        "{}",
        stderr(&output)
    );
}
