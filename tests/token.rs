//! `vklive token` end to end against the emulator's OAuth routes: the code
//! flow through the loopback listener, the stored login (owner-only),
//! `check`, `refresh`, and an expired login refreshed by the next command.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");
const CLIENT_ID: &str = "cli-app";
const CLIENT_SECRET: &str = "cli-app-secret-51";

/// `vklive ARGS` with its config directory at `config` and no token in the
/// environment.
fn vklive(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(VKLIVE);
    command
        .args(args)
        .env("VKLIVE_CONFIG_DIR", config)
        .env_remove("VKLIVE_TOKEN")
        .env_remove("VKLIVE_CLIENT_ID")
        .env_remove("VKLIVE_CLIENT_SECRET")
        .env_remove("RUST_LOG")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

fn fresh_config(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("token-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stored(config: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(config.join("login.json")).unwrap()).unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the sign-in: `vklive token` prints the authorization URL; "the
/// browser" (reqwest, following the emulator's redirect) opens it and lands
/// on the CLI's loopback listener.
async fn sign_in(emulator: &Emulator, config: &Path) {
    let mut child = vklive(
        config,
        &[
            "token",
            "--client-id",
            CLIENT_ID,
            "--authorize-url",
            &emulator.oauth_authorize_url(),
            "--token-url",
            &emulator.oauth_token_url(),
            "--port",
            "0",
        ],
    )
    .env("VKLIVE_CLIENT_SECRET", CLIENT_SECRET)
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = within(stdout.next_line())
        .await
        .unwrap()
        .expect("the authorization URL");
    assert!(url.starts_with(&emulator.oauth_authorize_url()), "{url}");
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    let page = within(async { reqwest::get(&url).await.unwrap().text().await.unwrap() }).await;
    assert!(page.contains("you can close this page"), "{page}");
    let output = within(child.wait_with_output()).await.unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

#[tokio::test]
async fn token_runs_the_code_flow_stores_the_login_owner_only_and_check_reports_the_expiry() {
    let emulator = start(EmulatorConfig {
        access_token_lifetime: Some(std::time::Duration::from_secs(3600)),
        ..Default::default()
    })
    .await;
    emulator.add_app(CLIENT_ID, CLIENT_SECRET);
    let config = fresh_config("flow");
    sign_in(&emulator, &config).await;

    let login = stored(&config);
    let access = login["access_token"].as_str().unwrap().to_owned();
    assert!(!access.is_empty());
    assert!(login["expires_at"].as_u64().is_some(), "{login}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.join("login.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only");
    }
    let exchanged = emulator
        .rest_calls()
        .iter()
        .any(|call| call.path == "/oauth/server/token" && call.body.contains("authorization_code"));
    assert!(exchanged, "the code was exchanged at the token endpoint");

    // `check` uses the stored login (VKLIVE_TOKEN is unset).
    let output = within(
        vklive(
            &config,
            &["token", "check", "--api-url", &emulator.api_url()],
        )
        .output(),
    )
    .await
    .unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("type: user"), "{said}");
    assert!(said.contains("expires: 20"), "an ISO date: {said}");
    assert!(said.contains(" s)"), "and how long from now: {said}");
    assert!(!said.contains(&access), "no token printed");
}

#[tokio::test]
async fn token_refresh_stores_a_new_pair_and_an_expired_login_is_refreshed_by_the_next_command() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_app(CLIENT_ID, CLIENT_SECRET);
    let config = fresh_config("refresh");
    sign_in(&emulator, &config).await;
    let first = stored(&config)["access_token"].as_str().unwrap().to_owned();

    let output = within(vklive(&config, &["token", "refresh"]).output())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let second = stored(&config)["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second, "a new access token was stored");
    assert!(!text(&output).contains(&second));

    // The stored token expired an hour ago: the next command refreshes it
    // before using it, and stores the new pair.
    let mut login = stored(&config);
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    login["expires_at"] = serde_json::json!(an_hour_ago);
    std::fs::write(config.join("login.json"), login.to_string()).unwrap();
    let refreshes_before = refreshes(&emulator);
    let output = within(
        vklive(
            &config,
            &["token", "check", "--api-url", &emulator.api_url()],
        )
        .output(),
    )
    .await
    .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(refreshes(&emulator), refreshes_before + 1);
    let third = stored(&config);
    assert_ne!(third["access_token"], serde_json::json!(second));
    assert!(third["expires_at"].as_u64().unwrap() > an_hour_ago + 3600);
}

fn refreshes(emulator: &Emulator) -> usize {
    emulator
        .rest_calls()
        .iter()
        .filter(|call| call.path == "/oauth/server/token" && call.body.contains("refresh_token"))
        .count()
}

#[tokio::test]
async fn without_a_client_id_token_says_what_to_set() {
    let config = fresh_config("no-client");
    let output = within(vklive(&config, &["token", "--port", "0"]).output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output).contains("VKLIVE_CLIENT_ID"),
        "{}",
        text(&output)
    );
    let output = within(vklive(&config, &["token", "refresh"]).output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("vklive token"), "{}", text(&output));
}

/// `--token-file` is named on this very command, so it wins over a
/// `VKLIVE_TOKEN` left in the environment (its help says "instead of
/// VKLIVE_TOKEN"; docs/cli.md and docs/overlay.md give that order).
#[tokio::test]
async fn token_file_wins_over_vklive_token_in_the_environment() {
    let emulator = start(EmulatorConfig::default()).await;
    let config = fresh_config("file-beats-env");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("token.txt");
    std::fs::write(&file, format!("{USER_TOKEN}\n")).unwrap();
    let output = within(
        vklive(
            &config,
            &["token", "check", "--api-url", &emulator.api_url()],
        )
        .arg("--token-file")
        .arg(&file)
        .env("VKLIVE_TOKEN", "wrong-token-from-the-environment")
        .output(),
    )
    .await
    .unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("type: user"), "{said}");
    assert!(!said.contains(USER_TOKEN), "no token printed: {said}");
}
