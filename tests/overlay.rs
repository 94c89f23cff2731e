//! `vklive overlay` without a browser: it answers only to the host names
//! it was told (DNS rebinding), `--kind` filters its feed, it never passes
//! on a private chat (never subscribed), and `?last=N` starts a page N events back.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vklive_pubsub::emulator::{DemoUser, Emulator, EmulatorConfig, follow_create};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");

/// `vklive overlay` following `streamer` on `emulator`, and its URL.
async fn overlay(emulator: &Emulator, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(VKLIVE)
        .args([
            "overlay",
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--channel-url", "streamer", "--port", "0"])
        .args(extra)
        .env("VKLIVE_TOKEN", USER_TOKEN)
        .env(
            "VKLIVE_CONFIG_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("overlay-no-login"),
        )
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = within(lines.next_line())
        .await
        .unwrap()
        .expect("the URL line");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    (child, url)
}

async fn get(url: &str, host: &str) -> reqwest::Response {
    within(reqwest::Client::new().get(url).header("host", host).send())
        .await
        .unwrap()
}

/// The `data` of the next `message` event of an SSE stream.
async fn next_message(response: &mut reqwest::Response, buffer: &mut String) -> serde_json::Value {
    within(async {
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let is_message = !block.lines().any(|line| line.starts_with("event:"));
                let data = block.lines().find_map(|line| line.strip_prefix("data:"));
                if let (true, Some(data)) = (is_message, data) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
            }
            let chunk = response.chunk().await.unwrap().expect("the stream ended");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
}

/// Issue 24.6: a page of another site that rebinds its name to 127.0.0.1
/// gets 403, not the page or the replay buffer.
#[tokio::test]
async fn the_overlay_answers_only_loopback_names_and_the_allowed_ones() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_channel("streamer", 2);
    let (_child, url) = overlay(&emulator, &["--allow-host", "obs.lan"]).await;
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    for path in ["", "events", "overlay.js"] {
        let page = format!("{url}{path}");
        for host in [
            "attacker.example",
            &format!("attacker.example:{port}"),
            "127.0.0.1:1",
        ] {
            let response = get(&page, host).await;
            assert_eq!(response.status(), 403, "{host} /{path}");
        }
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("obs.lan:{port}"),
    ] {
        assert_eq!(get(&url, &host).await.status(), 200, "{host}");
    }
}

/// Issue 25.4, and the chats an overlay never shows: with `--kind follow`
/// only follows reach the page; the private chat is never subscribed.
#[tokio::test]
async fn the_overlay_feeds_only_the_kinds_named_and_never_subscribes_the_private_chat() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 2);
    let (_child, url) = overlay(&emulator, &["--kind", "follow"]).await;
    wait_until(
        &emulator,
        "the overlay follows the public chat and info",
        |e| e.subscriber_count(&names.chat) == 1 && e.subscriber_count(&names.info) == 1,
    )
    .await;
    let asked_for_private_chat = emulator.received_commands().iter().any(|received| {
        received
            .command
            .subscribe
            .as_ref()
            .is_some_and(|subscribe| subscribe.channel == names.private_chat)
    });
    assert!(
        !asked_for_private_chat,
        "the overlay never subscribes the private chat"
    );
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut events = get(&format!("{url}events"), &host).await;
    let mut buffer = String::new();
    emulator.publish(&names.chat, chat(1, "not on the page"));
    emulator.publish(&names.info, follow_create(&DemoUser::new(5, "first_fan")));
    let first = next_message(&mut events, &mut buffer).await;
    assert_eq!(first["kind"], "follow", "{first}");
    assert_eq!(first["user"]["nick"], "first_fan");
}

/// A fresh page asking for `?last=N` (the page's `?replay=N`, for a
/// screenshot) starts N events before the live edge.
#[tokio::test]
async fn a_page_asking_for_the_last_events_gets_them() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 2);
    let (_child, url) = overlay(&emulator, &[]).await;
    wait_until(&emulator, "the overlay follows the info channel", |e| {
        e.subscriber_count(&names.info) == 1
    })
    .await;
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut live = get(&format!("{url}events"), &host).await;
    let mut buffer = String::new();
    for id in 1..=3 {
        emulator.publish(
            &names.info,
            follow_create(&DemoUser::new(id, &format!("fan{id}"))),
        );
    }
    for id in 1..=3 {
        assert_eq!(
            next_message(&mut live, &mut buffer).await["user"]["nick"],
            format!("fan{id}")
        );
    }
    let mut late = get(&format!("{url}events?last=2"), &host).await;
    let mut buffer = String::new();
    assert_eq!(
        next_message(&mut late, &mut buffer).await["user"]["nick"],
        "fan2"
    );
    assert_eq!(
        next_message(&mut late, &mut buffer).await["user"]["nick"],
        "fan3"
    );
}
