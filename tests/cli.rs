//! `vklive emulator` and `vklive trigger` as a user runs them, with
//! `vklive tail` following what they do.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");

/// A config directory holding no login.
fn no_login_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("vklive-no-login")
}
const TIMEOUT: Duration = Duration::from_secs(20);

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("timed out")
}

fn vklive(args: &[&str]) -> Command {
    let mut command = Command::new(VKLIVE);
    command
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

/// A running `vklive emulator` (stdin /dev/null) and the JSON line it printed.
async fn emulator(args: &[&str]) -> (Child, serde_json::Value) {
    let mut command = vklive(&["emulator"]);
    command.args(args);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within(lines.next_line())
        .await
        .unwrap()
        .expect("the emulator prints one line");
    (child, serde_json::from_str(&line).expect("a JSON line"))
}

#[cfg(unix)]
fn terminate(child: &Child) {
    let pid = child.id().expect("running") as libc::pid_t;
    // SAFETY: sending a signal to our own child, whose pid we just read.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

async fn get(url: &str) -> serde_json::Value {
    within(async { reqwest::get(url).await.unwrap().json().await.unwrap() }).await
}

/// Reads NDJSON lines until one matches.
async fn read_until(
    lines: &mut Lines<BufReader<ChildStdout>>,
    what: &str,
    predicate: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    within(async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended before {what}"));
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            if predicate(&value) {
                return value;
            }
        }
    })
    .await
}

#[cfg(unix)]
#[tokio::test]
async fn the_emulator_keeps_serving_with_stdin_closed_until_sigterm_then_exits_0() {
    let (mut child, info) = emulator(&["--seed", "7"]).await;
    for key in [
        "api_url",
        "ws_url",
        "control_url",
        "token",
        "slug",
        "channels",
    ] {
        assert!(!info[key].is_null(), "{key} in {info}");
    }
    assert_eq!(info["slug"], "demo");
    assert_eq!(info["channels"]["chat"], "api-channel-chat:1");
    let control = info["control_url"].as_str().unwrap();
    // stdin is /dev/null, closed from the start: still serving.
    let stats = get(&format!("{control}/stats")).await;
    assert_eq!(stats["connections"], 0);
    let routes = get(&format!("{control}/")).await;
    assert!(routes["routes"].as_array().unwrap().len() > 20, "{routes}");
    terminate(&child);
    let status = within(child.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_triggered_follow_shows_in_a_running_tail() {
    let (_emulator, info) = emulator(&[]).await;
    let api_url = info["api_url"].as_str().unwrap();
    let ws_url = info["ws_url"].as_str().unwrap();
    let mut tail = vklive(&[
        "tail",
        "--api-url",
        api_url,
        "--ws-url",
        ws_url,
        "--channel-url",
        "demo",
        "-n",
        "1",
    ]);
    tail.env("VKLIVE_TOKEN", info["token"].as_str().unwrap());
    let mut tail = tail.spawn().unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    read_until(&mut lines, "subscribed to the info channel", |line| {
        line["event"] == "subscribed" && line["channel"] == "api-channel-info:1"
    })
    .await;

    let fired =
        within(vklive(&["trigger", "follow", "--emulator", api_url, "--nick", "X"]).output())
            .await
            .unwrap();
    assert!(fired.status.success(), "{fired:?}");
    let published: serde_json::Value =
        serde_json::from_slice(fired.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(published["channel"], "api-channel-info:1");
    assert_eq!(published["type"], "channel_follow_create");

    let follow = read_until(&mut lines, "the follow", |line| {
        line["event"] == "publication"
    })
    .await;
    assert_eq!(follow["type"], "channel_follow_create");
    assert_eq!(follow["data"]["follower"]["nick"], "X");
    let status = within(tail.wait()).await.unwrap();
    assert!(status.success(), "-n 1 ends tail");
}

#[tokio::test]
async fn trigger_fires_every_named_event_and_counts() {
    let (_emulator, info) = emulator(&[]).await;
    let control = info["control_url"].as_str().unwrap();
    let events = [
        ("chat", "api-channel-chat:1", "channel_chat_message_send"),
        (
            "delete",
            "api-channel-chat:1",
            "channel_chat_message_delete",
        ),
        ("follow", "api-channel-info:1", "channel_follow_create"),
        ("raid", "api-channel-info:1", "channel_raid_income"),
        (
            "subscription",
            "api-channel-info:1",
            "channel_subscription_create",
        ),
        (
            "reward",
            "api-channel-private-points:1",
            "channel_points_reward_demand_create",
        ),
        ("stream-start", "api-channel-info:1", "channel_stream_start"),
        ("stream-stop", "api-channel-info:1", "channel_stream_stop"),
        ("unknown", "api-channel-info:1", "emulator_unknown_event"),
    ];
    for (event, channel, kind) in events {
        // The control URL works as well as the API URL.
        let fired = within(vklive(&["trigger", event, "--emulator", control]).output())
            .await
            .unwrap();
        assert!(fired.status.success(), "{event}: {fired:?}");
        let line: serde_json::Value = serde_json::from_slice(&fired.stdout).unwrap();
        assert_eq!(line["channel"], channel, "{event}");
        assert_eq!(line["type"], kind, "{event}");
    }
    let fired = within(
        vklive(&[
            "trigger",
            "chat",
            "--emulator",
            control,
            "--count",
            "3",
            "--text",
            "hi",
            "--set",
            r#"{"data":{"chat_message":{"is_private":true}}}"#,
        ])
        .output(),
    )
    .await
    .unwrap();
    assert!(fired.status.success(), "{fired:?}");
    assert_eq!(String::from_utf8_lossy(&fired.stdout).lines().count(), 3);

    let refused = within(
        vklive(&[
            "trigger",
            "follow",
            "--emulator",
            control,
            "--channel",
            "nobody",
        ])
        .output(),
    )
    .await
    .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.starts_with("trigger: "), "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");
}

/// Issue 24.11: a number flag that is not finite is a usage error (exit 2,
/// clap's message), never a panic (exit 101), in every subcommand.
#[tokio::test]
async fn non_finite_numbers_in_flags_are_usage_errors() {
    let cases: [&[&str]; 7] = [
        &[
            "relay",
            "--nats",
            "nats://127.0.0.1:9",
            "--lease-ttl",
            "NaN",
        ],
        &["emulator", "--ping-interval", "NaN"],
        &["emulator", "--ping-interval", "inf"],
        &["emulator", "--demo", "NaN"],
        &["emulator", "--token-ttl=-inf"],
        &["overlay", "--demo", "--demo-rate", "NaN"],
        &["token", "--timeout", "NaN"],
    ];
    for args in cases {
        let output = within(vklive(args).output()).await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("finite"), "{args:?}: {stderr}");
    }
}

/// Issue 24.4: `vklive relay` takes no token on the command line (a usage
/// error, exit 2), only from VKLIVE_TOKEN, a file or the stored login.
#[tokio::test]
async fn relay_refuses_a_token_flag() {
    let args = [
        "relay",
        "--nats",
        "nats://127.0.0.1:9",
        "--token",
        "secret-on-the-command-line",
        "api-channel-chat:1",
    ];
    let output = within(vklive(&args).output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--token"), "{stderr}");
    assert!(!stderr.contains("secret-on-the-command-line"), "{stderr}");
}

/// Issue 25.5: `vklive completions SHELL` prints a completion script that
/// names the subcommands.
#[tokio::test]
async fn completions_print_a_script_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let output = within(vklive(&["completions", shell]).output())
            .await
            .unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for subcommand in ["tail", "send", "token", "overlay", "emulator", "trigger"] {
            assert!(script.contains(subcommand), "{shell}: {subcommand}");
        }
    }
    let output = within(vklive(&["completions", "tcsh-or-so"]).output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}
