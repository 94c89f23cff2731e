//! Chat bots against the emulator: sending chat (pace, stream id, typed
//! errors), reward demands, the token check, the OAuth authorization-code
//! flow, and the `bot` example as a user runs it.
//!
//! The example test runs the `bot` binary that `cargo test --all-features`
//! builds with every target; when selecting only this file, build it first
//! with `cargo build --all-features --example bot`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use tokio::sync::mpsc;
use vklive_pubsub::auth::{ChatSettings, Message, OAuthApp, Pkce, VkApi, scope};
use vklive_pubsub::emulator::{
    ChannelNames, DemandDecision, DemoUser, Emulator, EmulatorConfig, chat_message_send,
    reward_demand_create, text_part,
};
use vklive_pubsub::event::{ChatMessage, Part};
use vklive_pubsub::{Authorization, Client, ErrorKind, Event, Events, VkEvent};

/// The bot's user: its token, id and nick.
const BOT_TOKEN: &str = "bot-access-token-51c2";
const BOT_ID: u64 = 77;
/// The channel, with dots in its slug as VK allows; its owner is user 1.
const SLUG: &str = "my.channel.";
const CHANNEL_ID: u64 = 1;

async fn setup(config: EmulatorConfig) -> (Emulator, ChannelNames) {
    let emulator = start(config).await;
    emulator.add_user(BOT_TOKEN, BOT_ID, "vkbot");
    let names = emulator.add_channel(SLUG, CHANNEL_ID);
    (emulator, names)
}

/// The bot's REST client, with the given pace (the emulator's minimum
/// interval must be shorter).
fn bot_api(emulator: &Emulator, interval: Duration) -> VkApi {
    VkApi::new(
        &emulator.api_url(),
        Arc::new(Authorization::user(BOT_TOKEN)),
    )
    .unwrap()
    .with_chat_settings(ChatSettings {
        interval,
        ..ChatSettings::default()
    })
}

/// A connection that reads the chat, as a viewer's client would.
async fn watch_chat(emulator: &Emulator, names: &ChannelNames) -> Events {
    let (_client, mut events) = connect(builder(emulator).channel(&names.chat)).await;
    wait_subscribed(&mut events, &[&names.chat]).await;
    events
}

/// The next chat message written by `user_id`.
async fn next_message_from(events: &mut Events, user_id: i64) -> ChatMessage {
    loop {
        if let Event::Publication(publication) = next_event(events).await
            && let VkEvent::ChatMessage(message) = publication.event
            && message.is_from(user_id)
        {
            return *message;
        }
    }
}

fn viewer(n: u64) -> DemoUser {
    DemoUser::new(1000 + n, &format!("viewer{n}"))
}

fn say(id: i64, who: &DemoUser, text: &str) -> serde_json::Value {
    chat_message_send(id, 1_700_000_000, who, vec![text_part(text)])
}

/// The bot of the README, as a task: connects with no channel, looks the
/// channel up and subscribes its public names, answers `!ping` with a
/// reply; every send's result goes to the returned channel.
async fn spawn_ping_bot(
    emulator: &Emulator,
    names: &ChannelNames,
    interval: Duration,
) -> mpsc::UnboundedReceiver<Result<(), vklive_pubsub::Error>> {
    let (client, mut events) = connect(
        Client::with_user_token(BOT_TOKEN)
            .api_url(emulator.api_url())
            .ws_url(emulator.ws_url()),
    )
    .await;
    let channel = within(client.api().channel(SLUG)).await.unwrap();
    for name in channel.web_socket_channels.public() {
        within(client.subscribe(name)).await.unwrap();
    }
    wait_subscribed(&mut events, &[&names.chat]).await;
    let me = within(client.api().current_user()).await.unwrap().user.id;
    let api = client.api().clone().with_chat_settings(ChatSettings {
        interval,
        ..ChatSettings::default()
    });
    let (results, results_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _client = client;
        while let Some(event) = events.next().await {
            if let Event::Publication(publication) = event
                && let VkEvent::ChatMessage(message) = publication.event
                && !message.is_from(me)
                && message
                    .command("!")
                    .is_some_and(|command| command.is("ping"))
            {
                let (api, results) = (api.clone(), results.clone());
                tokio::spawn(async move {
                    let _ = results.send(api.reply(SLUG, &message, "pong").await);
                });
            }
        }
    });
    results_rx
}

fn chat_sends(emulator: &Emulator) -> Vec<vklive_pubsub::emulator::RestCall> {
    emulator
        .rest_calls()
        .into_iter()
        .filter(|call| call.path == "/v1/chat/message/send")
        .collect()
}

/// The bot's answer to a viewer's `!ping` is a publication in the chat
/// within a second: a mention of the viewer, then text with `pong`.
#[tokio::test]
async fn a_viewer_typing_ping_gets_a_pong_mentioning_them_within_a_second() {
    let (emulator, names) = setup(EmulatorConfig::default()).await;
    let mut chat = watch_chat(&emulator, &names).await;
    let _results = spawn_ping_bot(&emulator, &names, Duration::from_millis(1500)).await;
    let asker = viewer(1);
    emulator.publish(&names.chat, say(1, &asker, "!ping"));

    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        next_message_from(&mut chat, BOT_ID as i64),
    )
    .await
    .expect("no answer within 1 s");
    assert!(answer.mentions_user(asker.id as i64), "{answer:?}");
    assert!(answer.plain_text().contains("pong"), "{answer:?}");
    assert_eq!(answer.author_nick(), "vkbot");
    let sent = &chat_sends(&emulator)[0];
    assert_eq!(sent.query_param("channel_url").as_deref(), Some(SLUG));
    assert_eq!(sent.query_param("stream_id"), emulator.stream_id(SLUG));
    assert_eq!(
        sent.json(),
        serde_json::json!({"parts": [{"mention": {"id": asker.id}}, {"text": {"content": " pong"}}]})
    );
}

/// Ten `!ping`s at once: all ten get an answer, and the pace keeps the bot
/// under the emulator's per-user minimum interval (no `send_too_fast`). The
/// bot never answers its own messages.
#[tokio::test]
async fn ten_viewers_pinging_at_once_all_get_answers_and_no_send_is_too_fast() {
    let (emulator, names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let mut chat = watch_chat(&emulator, &names).await;
    let mut results = spawn_ping_bot(&emulator, &names, Duration::from_millis(200)).await;
    for n in 0..10 {
        emulator.publish(&names.chat, say(n as i64 + 1, &viewer(n), "!ping"));
    }
    let mut answered = Vec::new();
    for _ in 0..10 {
        let answer = next_message_from(&mut chat, BOT_ID as i64).await;
        answered.extend(answer.mentions().filter_map(|mention| mention.id));
        within(results.recv())
            .await
            .unwrap()
            .expect("a send failed");
    }
    answered.sort_unstable();
    let expected: Vec<i64> = (0..10).map(|n| viewer(n).id as i64).collect();
    assert_eq!(answered, expected);
    let sends = chat_sends(&emulator);
    assert_eq!(sends.len(), 10, "{sends:?}");
    assert!(
        sends.iter().all(|call| call.status == Some(200)),
        "{sends:?}"
    );
    // Nothing more: the bot did not answer its own ten messages.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chat_sends(&emulator).len(), 10);
}

/// The same text twice in a row is refused with `same_message` and not
/// published; another text goes through.
#[tokio::test]
async fn the_same_text_twice_is_a_same_message_error_and_is_not_published() {
    let (emulator, names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await;
    let mut chat = watch_chat(&emulator, &names).await;
    let api = bot_api(&emulator, Duration::from_millis(100));
    within(api.send_message(SLUG, "hello")).await.unwrap();
    let error = within(api.send_message(SLUG, "hello")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SameMessage);
    assert!(!error.is_retryable());
    within(api.send_message(SLUG, "hello again")).await.unwrap();
    let texts = [
        next_message_from(&mut chat, BOT_ID as i64)
            .await
            .plain_text(),
        next_message_from(&mut chat, BOT_ID as i64)
            .await
            .plain_text(),
    ];
    assert_eq!(texts, ["hello", "hello again"]);
    let errors: Vec<Option<String>> = chat_sends(&emulator).into_iter().map(|c| c.error).collect();
    assert_eq!(errors, [None, Some(String::from("same_message")), None]);
}

/// A channel without a live stream: the send is a typed error, and nothing
/// is posted.
#[tokio::test]
async fn a_send_with_no_live_stream_is_a_no_live_stream_error() {
    let (emulator, _names) = setup(EmulatorConfig::default()).await;
    assert!(emulator.stop_stream(SLUG));
    let api = bot_api(&emulator, Duration::from_millis(100));
    let error = within(api.send_message(SLUG, "anyone?")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoLiveStream);
    assert!(chat_sends(&emulator).is_empty());
    let error = within(api.live_stream(SLUG)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoLiveStream);
}

/// A stream ends and another starts: the cached stream id is stale, the send
/// fails once, the id is looked up again and the send goes through.
#[tokio::test]
async fn a_stale_stream_id_is_looked_up_again_and_the_send_repeated_once() {
    let (emulator, _names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await;
    let api = bot_api(&emulator, Duration::from_millis(100));
    within(api.send_message(SLUG, "first")).await.unwrap();
    let old = emulator.stream_id(SLUG).unwrap();
    assert!(emulator.start_stream(SLUG));
    let new = emulator.stream_id(SLUG).unwrap();
    within(api.send_message(SLUG, "second")).await.unwrap();
    let sends: Vec<(Option<String>, Option<u16>)> = chat_sends(&emulator)
        .iter()
        .map(|call| (call.query_param("stream_id"), call.status))
        .collect();
    assert_eq!(
        sends,
        [
            (Some(old.clone()), Some(200)),
            (Some(old), Some(404)),
            (Some(new), Some(200))
        ]
    );
    assert_eq!(rest_count(&emulator, "/v1/channel"), 2);
}

/// `send_too_fast` is retried after a pause within the caller's bound; with
/// no bound it comes back as a typed, retryable error.
#[tokio::test]
async fn send_too_fast_is_retried_within_the_bound_and_typed_without_one() {
    let (emulator, _names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(300),
        ..EmulatorConfig::default()
    })
    .await;
    let unpaced = |retry_for| {
        VkApi::new(
            &emulator.api_url(),
            Arc::new(Authorization::user(BOT_TOKEN)),
        )
        .unwrap()
        .with_chat_settings(ChatSettings {
            interval: Duration::ZERO,
            burst: 1,
            retry_too_fast_for: retry_for,
        })
    };
    let api = unpaced(Duration::from_secs(5));
    within(api.send_message(SLUG, "one")).await.unwrap();
    within(api.send_message(SLUG, "two")).await.unwrap();
    let errors: Vec<Option<String>> = chat_sends(&emulator).into_iter().map(|c| c.error).collect();
    assert_eq!(errors.first(), Some(&None));
    assert_eq!(errors.last(), Some(&None));
    assert!(
        errors.contains(&Some(String::from("send_too_fast"))),
        "{errors:?}"
    );

    let api = unpaced(Duration::ZERO);
    within(api.send_message(SLUG, "three")).await.ok();
    let error = within(api.send_message(SLUG, "four")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SendTooFast);
    assert!(error.is_retryable());
}

/// Too long a message, and a user who may not write, are typed errors.
#[tokio::test]
async fn too_long_and_not_allowed_sends_are_typed_errors() {
    let (emulator, _names) = setup(EmulatorConfig {
        chat_max_length: 20,
        ..EmulatorConfig::default()
    })
    .await;
    let api = bot_api(&emulator, Duration::from_millis(100));
    let error = within(api.send_message(SLUG, "x".repeat(21)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MessageTooLong);
    emulator.forbid_chat(SLUG, BOT_ID);
    let error = within(api.send_message(SLUG, "hi")).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Forbidden);
    assert_eq!(error.status(), Some(403));
    assert!(!error.to_string().contains(BOT_TOKEN));
}

/// Every kind of part reaches the chat as sent, the mention with the nick
/// VK fills in; a full channel URL works as well as a slug.
#[tokio::test]
async fn mentions_smiles_and_links_are_published_as_sent() {
    let (emulator, names) = setup(EmulatorConfig::default()).await;
    let mut chat = watch_chat(&emulator, &names).await;
    emulator.publish(&names.chat, say(1, &viewer(5), "hi"));
    let api = bot_api(&emulator, Duration::from_millis(100));
    let message = Message::new()
        .text("hey ")
        .mention(viewer(5).id as i64)
        .smile("kappa")
        .link("https://example.org");
    within(api.send_message(&format!("https://live.vkvideo.ru/{SLUG}"), message))
        .await
        .unwrap();
    let published = next_message_from(&mut chat, BOT_ID as i64).await;
    assert_eq!(published.parts.len(), 4);
    assert_eq!(
        published.plain_text(),
        "hey @viewer5:kappa:https://example.org"
    );
    assert!(matches!(&published.parts[3], Part::Link(link) if link.url == "https://example.org"));
    assert!(published.id > 0 && published.created_at.is_some());
}

/// Accept and reject reach the emulator with the documented body; an
/// unknown or already decided demand is an error.
#[tokio::test]
async fn demand_accept_and_reject_reach_the_emulator() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_user(BOT_TOKEN, BOT_ID, "owner");
    let names = emulator.add_channel("ownchannel", BOT_ID);
    let fan = viewer(3);
    for id in [9179, 9180] {
        emulator.publish(
            &names.private_channel_points,
            reward_demand_create(id, &fan, "bc211809-1e52-4180-8dbc-e106649ef78a", "play X"),
        );
    }
    let api = bot_api(&emulator, Duration::from_millis(100));
    within(api.accept_demands(&[9179])).await.unwrap();
    within(api.reject_demands(&[9180])).await.unwrap();
    assert_eq!(
        emulator.demand_decisions(),
        [
            (9179, DemandDecision::Accepted),
            (9180, DemandDecision::Rejected)
        ]
    );
    let bodies: Vec<serde_json::Value> = emulator
        .rest_calls()
        .iter()
        .filter(|call| call.path.starts_with("/v1/channel_point/reward/demand/"))
        .map(|call| call.json())
        .collect();
    assert_eq!(
        bodies,
        [
            serde_json::json!({"demands": [{"id": 9179}]}),
            serde_json::json!({"demands": [{"id": 9180}]})
        ]
    );
    let again = within(api.accept_demands(&[9179])).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidRequest);
    let unknown = within(api.reject_demands(&[1])).await.unwrap_err();
    assert_eq!(unknown.status(), Some(404));
}

/// The authorization-code flow end to end: authorize URL → redirect with
/// code and state → code exchange → a token that works, with the scopes
/// asked for and only those; a code works once; refresh goes through the
/// refresher.
#[tokio::test]
async fn the_authorization_code_flow_runs_end_to_end() {
    let (emulator, _names) = setup(EmulatorConfig::default()).await;
    emulator.add_app("my-app", "my-secret");
    emulator.set_authorizing_user(BOT_ID);
    let app = OAuthApp::new("my-app", "my-secret", "http://127.0.0.1:9/callback")
        .authorize_url(emulator.oauth_authorize_url())
        .token_url(emulator.oauth_token_url());
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = |scopes: &'static [&'static str]| {
        let url = app.authorization_url(scopes, "st4te-xyz");
        let browser = browser.clone();
        async move {
            let response = within(browser.get(url).send()).await.unwrap();
            assert_eq!(response.status(), 302);
            response.headers()["location"].to_str().unwrap().to_owned()
        }
    };

    let redirected_to = authorize(&scope::BOT).await;
    assert!(
        redirected_to.starts_with("http://127.0.0.1:9/callback?code="),
        "{redirected_to}"
    );
    let code = app.code_from_redirect(&redirected_to, "st4te-xyz").unwrap();
    let grant = within(app.exchange_code(&code)).await.unwrap();
    assert_eq!(grant.scopes, scope::BOT);
    assert_eq!(grant.token_type.as_deref(), Some("Bearer"));
    assert!(grant.pair.expires_at.is_some());
    let reused = within(app.exchange_code(&code)).await.unwrap_err();
    assert_eq!(reused.kind(), ErrorKind::Unauthorized);

    let api = VkApi::new(
        &emulator.api_url(),
        Arc::new(app.refresher(grant.pair.clone())),
    )
    .unwrap();
    let info = within(api.token_info()).await.unwrap();
    assert_eq!(info.kind.as_deref(), Some("user"));
    assert!(!info.is_expired(std::time::SystemTime::now()));
    assert_eq!(
        within(api.current_user()).await.unwrap().user.id,
        BOT_ID as i64
    );
    within(api.send_message(SLUG, "signed in through OAuth"))
        .await
        .unwrap();

    // A token without chat:message:send may not write.
    let redirected_to = authorize(&[scope::CHANNEL_POINTS]).await;
    let code = app.code_from_redirect(&redirected_to, "st4te-xyz").unwrap();
    let narrow = within(app.exchange_code(&code)).await.unwrap();
    let api = VkApi::new(
        &emulator.api_url(),
        Arc::new(Authorization::Bearer(narrow.pair.access_token)),
    )
    .unwrap();
    let error = within(api.send_message(SLUG, "not allowed"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Forbidden);

    // A state that is not ours is refused before any exchange.
    assert!(
        app.code_from_redirect(&redirected_to, "other-state")
            .is_err()
    );
    // Codes and secrets never reach the call log.
    for call in emulator.rest_calls() {
        assert!(!call.body.contains("emu-code-"), "{call:?}");
        assert!(!call.body.contains("my-secret"), "{call:?}");
    }
}

/// The code flow with PKCE (opt-in): the authorize URL carries the S256
/// challenge, the exchange the verifier, and a server that does not check
/// PKCE (as VK's documentation suggests) still grants the token. The state
/// is a fresh random one.
#[tokio::test]
async fn the_code_flow_with_pkce_sends_challenge_and_verifier_and_still_works() {
    let (emulator, _names) = setup(EmulatorConfig::default()).await;
    emulator.add_app("my-app", "my-secret");
    emulator.set_authorizing_user(BOT_ID);
    let app = OAuthApp::new("my-app", "my-secret", "http://127.0.0.1:9/callback")
        .authorize_url(emulator.oauth_authorize_url())
        .token_url(emulator.oauth_token_url());
    let state = OAuthApp::random_state().unwrap();
    let pkce = Pkce::new().unwrap();
    let url = app.authorization_url_with_pkce(&scope::BOT, &state, &pkce);
    assert!(
        url.contains(&format!("code_challenge={}", pkce.challenge())),
        "{url}"
    );
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = within(browser.get(url).send()).await.unwrap();
    let redirected_to = response.headers()["location"].to_str().unwrap().to_owned();
    let code = app.code_from_redirect(&redirected_to, &state).unwrap();
    let grant = within(app.exchange_code_with_pkce(&code, &pkce))
        .await
        .unwrap();
    assert_eq!(grant.scopes, scope::BOT);
    let exchange = emulator
        .rest_calls()
        .into_iter()
        .find(|call| call.path == "/oauth/server/token")
        .expect("the exchange reached the token endpoint");
    assert!(
        exchange.body.contains("code_verifier="),
        "{}",
        exchange.body
    );
}

/// `GET /v1/token` for a token that never expires, and a refused one.
#[tokio::test]
async fn the_token_check_tells_type_and_expiry_and_refuses_unknown_tokens() {
    let (emulator, _names) = setup(EmulatorConfig::default()).await;
    let info = within(bot_api(&emulator, Duration::ZERO).token_info())
        .await
        .unwrap();
    assert_eq!(info.kind.as_deref(), Some("user"));
    assert_eq!(info.expired_at, None);
    let api = VkApi::new(&emulator.api_url(), Arc::new(Authorization::user("nope"))).unwrap();
    let error = within(api.token_info()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
}

/// The pubsub URL works without `format=json` too.
#[tokio::test]
async fn the_websocket_url_works_without_format_json() {
    let (emulator, names) = setup(EmulatorConfig::default()).await;
    let url = format!(
        "ws://{}/connection/websocket?cf_protocol_version=v2",
        emulator.addr()
    );
    let (_client, mut events) = connect(builder(&emulator).ws_url(url).channel(&names.chat)).await;
    wait_subscribed(&mut events, &[&names.chat]).await;
    emulator.publish(&names.chat, say(1, &viewer(1), "hi"));
    assert_eq!(publications(&mut events, 1).await.len(), 1);
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

/// The `bot` example with the documented command line answers `!ping` and
/// `!uptime` and thanks a follower.
#[tokio::test]
async fn the_bot_example_answers_ping_and_uptime_and_thanks_followers() {
    let (emulator, names) = setup(EmulatorConfig::default()).await;
    let mut chat = watch_chat(&emulator, &names).await;
    let mut child = tokio::process::Command::new(bot_binary())
        .args([
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--channel-url", SLUG])
        .env("VKLIVE_TOKEN", BOT_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("build the example first: cargo build --all-features --example bot");
    wait_until(&emulator, "the bot subscribed", |e| {
        e.subscriber_count(&names.chat) == 2
    })
    .await;
    let asker = viewer(2);
    emulator.publish(&names.chat, say(1, &asker, "!ping"));
    let pong = next_message_from(&mut chat, BOT_ID as i64).await;
    assert!(pong.mentions_user(asker.id as i64) && pong.plain_text().contains("pong"));
    emulator.publish(&names.chat, say(2, &asker, "!uptime"));
    let uptime = next_message_from(&mut chat, BOT_ID as i64).await;
    assert!(uptime.plain_text().contains("live for"), "{uptime:?}");
    emulator.publish(
        &names.info,
        vklive_pubsub::emulator::follow_create(&viewer(4)),
    );
    let thanks = next_message_from(&mut chat, BOT_ID as i64).await;
    assert!(thanks.mentions_user(viewer(4).id as i64), "{thanks:?}");
    assert!(
        chat_sends(&emulator)
            .iter()
            .all(|call| call.status == Some(200))
    );
    child.kill().await.ok();
}

/// Starts the `bot` example against `api_url`/`ws_url` for `SLUG` with
/// `RUST_LOG` set to `log`, stdout and stderr piped.
fn spawn_bot_example(api_url: &str, ws_url: &str, log: &str) -> tokio::process::Child {
    tokio::process::Command::new(bot_binary())
        .args(["--api-url", api_url, "--ws-url", ws_url])
        .args(["--channel-url", SLUG])
        .env("VKLIVE_TOKEN", BOT_TOKEN)
        .env("RUST_LOG", log)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("build the example first: cargo build --all-features --example bot")
}

/// Stops `child` and returns what it wrote on stderr.
async fn stderr_of(mut child: tokio::process::Child) -> String {
    use tokio::io::AsyncReadExt;
    child.start_kill().ok();
    let mut stderr = child.stderr.take().expect("stderr piped");
    let mut text = String::new();
    within(stderr.read_to_string(&mut text)).await.ok();
    within(child.wait()).await.ok();
    text
}

/// Issue 24, item 1: at `RUST_LOG=trace` (tungstenite dumps every frame it
/// sends, the connect and subscribe tokens inside) the bot's stderr holds no
/// token: the access token, the connection token (`emu-conn-…`) and the
/// subscription tokens (`emu-sub-…`, the bot owning the channel here).
#[tokio::test]
async fn the_bot_example_at_trace_level_prints_no_token() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_user(BOT_TOKEN, BOT_ID, "vkbot");
    let names = emulator.add_channel(SLUG, BOT_ID);
    let mut chat = watch_chat(&emulator, &names).await;
    let child = spawn_bot_example(&emulator.api_url(), &emulator.ws_url(), "trace");
    wait_until(&emulator, "the bot subscribed", |e| {
        e.subscriber_count(&names.chat) == 2
    })
    .await;
    emulator.publish(&names.chat, say(1, &viewer(2), "!ping"));
    let pong = next_message_from(&mut chat, BOT_ID as i64).await;
    assert!(pong.plain_text().contains("pong"), "{pong:?}");
    let stderr = stderr_of(child).await;
    assert!(
        stderr.contains("TRACE"),
        "the bot logged nothing at trace: {stderr:.2000}"
    );
    for secret in [BOT_TOKEN, "emu-conn-", "emu-sub-"] {
        let at = stderr.find(secret);
        assert!(
            at.is_none(),
            "{secret} on stderr: …{}…",
            &stderr[at.unwrap().saturating_sub(200)..]
                .chars()
                .take(400)
                .collect::<String>()
        );
    }
}

/// Lines of a child's pipe, as they come.
fn lines_of(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> mpsc::UnboundedReceiver<String> {
    use tokio::io::AsyncBufReadExt;
    let (lines_tx, lines_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    lines_rx
}

/// The count in a `bot: dropped N …` line.
fn dropped_count(line: &str) -> Option<u64> {
    line.strip_prefix("bot: dropped ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Issue 24, item 3: 30 `!ping`s at once. The bot answers at its pace from a
/// bounded queue (`--queue 3`) that drops the oldest waiting answers and says
/// how many on stderr: every ping is answered or counted as dropped, the
/// newest asker is answered, nothing is refused as too fast, and no more than
/// the queue's worth (plus the one in flight) is ever answered.
#[tokio::test]
async fn thirty_pings_at_once_are_answered_at_the_pace_or_dropped_oldest_with_a_count() {
    let (emulator, names) = setup(EmulatorConfig::default()).await;
    let mut chat = watch_chat(&emulator, &names).await;
    let mut child = tokio::process::Command::new(bot_binary())
        .args([
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--channel-url", SLUG, "--queue", "3"])
        .env("VKLIVE_TOKEN", BOT_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("build the example first: cargo build --all-features --example bot");
    let mut stdout = lines_of(child.stdout.take().unwrap());
    let mut stderr = lines_of(child.stderr.take().unwrap());
    wait_until(&emulator, "the bot subscribed", |e| {
        e.subscriber_count(&names.chat) == 2
    })
    .await;
    for n in 0..30 {
        emulator.publish(&names.chat, say(n as i64 + 1, &viewer(n), "!ping"));
    }
    let (mut sent, mut dropped) = (0u64, 0u64);
    let mut said = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while sent + dropped < 30 {
            tokio::select! {
                Some(line) = stdout.recv() => {
                    assert!(line.contains("pong"), "{line}");
                    sent += 1;
                }
                Some(line) = stderr.recv() => {
                    said.push(line.clone());
                    dropped += dropped_count(&line).unwrap_or(0);
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{sent} sent, {dropped} dropped; stderr: {said:?}"));
    assert_eq!(sent + dropped, 30, "{said:?}");
    assert!(dropped >= 30 - 3 - 2, "{sent} sent, {dropped} dropped");
    let mut answered = Vec::new();
    for _ in 0..sent {
        let answer = next_message_from(&mut chat, BOT_ID as i64).await;
        answered.extend(answer.mentions().filter_map(|mention| mention.id));
    }
    assert!(
        answered.contains(&(viewer(29).id as i64)),
        "the newest asker was dropped: {answered:?}"
    );
    let sends = chat_sends(&emulator);
    assert_eq!(sends.len() as u64, sent, "{sends:?}");
    assert!(
        sends.iter().all(|call| call.status == Some(200)),
        "{sends:?}"
    );
    child.kill().await.ok();
}

/// A user repeating a command within the cooldown is answered once; other
/// users are answered meanwhile.
#[tokio::test]
async fn a_user_repeating_a_command_within_the_cooldown_is_answered_once() {
    let (emulator, names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(50),
        ..EmulatorConfig::default()
    })
    .await;
    let mut chat = watch_chat(&emulator, &names).await;
    let mut child = tokio::process::Command::new(bot_binary())
        .args([
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--channel-url", SLUG, "--cooldown", "600"])
        .env("VKLIVE_TOKEN", BOT_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("build the example first: cargo build --all-features --example bot");
    wait_until(&emulator, "the bot subscribed", |e| {
        e.subscriber_count(&names.chat) == 2
    })
    .await;
    for id in 1..=3 {
        emulator.publish(&names.chat, say(id, &viewer(1), "!ping"));
    }
    emulator.publish(&names.chat, say(4, &viewer(2), "!PING"));
    emulator.publish(&names.chat, say(5, &viewer(3), "!ping"));
    let mut answered = Vec::new();
    for _ in 0..3 {
        let answer = next_message_from(&mut chat, BOT_ID as i64).await;
        answered.extend(answer.mentions().filter_map(|mention| mention.id));
    }
    let expected: Vec<i64> = [1, 2, 3].iter().map(|n| viewer(*n).id as i64).collect();
    assert_eq!(
        answered, expected,
        "answers in the order asked, once per user"
    );
    assert_eq!(chat_sends(&emulator).len(), 3);
    child.kill().await.ok();
}

/// The library's queue: a hundred messages queued at once never hold more
/// than the queue's capacity; each is sent or reported dropped (with the
/// count), the newest are the ones sent.
#[tokio::test]
async fn the_chat_bot_queue_stays_bounded_and_reports_every_drop() {
    use vklive_pubsub::bot::{BotSettings, ChatBot, Outcome};
    let (emulator, _names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await;
    let api = bot_api(&emulator, Duration::from_millis(50));
    let (bot, mut outcomes) = ChatBot::new(
        api,
        BotSettings {
            queue_per_channel: 4,
            ..BotSettings::default()
        },
    );
    for n in 0..100 {
        bot.say(SLUG, format!("message {n}")).unwrap();
        assert!(bot.queued(SLUG) <= 4, "{}", bot.queued(SLUG));
    }
    let (mut sent, mut dropped) = (Vec::new(), 0);
    while sent.len() as u64 + dropped < 100 {
        match within(outcomes.recv()).await.expect("outcomes ended") {
            Outcome::Sent { message, channel } => {
                assert_eq!(channel, SLUG);
                sent.push(message.plain_text());
            }
            Outcome::Dropped { count, .. } => dropped += count,
            other => panic!("{other:?}"),
        }
    }
    assert!(sent.len() <= 5, "{sent:?}");
    assert_eq!(bot.dropped_total(), dropped);
    assert_eq!(sent.last().map(String::as_str), Some("message 99"));
    assert_eq!(bot.queued(SLUG), 0);
}

/// Serves the emulator's REST API through a proxy on 127.0.0.1 that answers
/// `status` to `GET /v1/current_user` (as a server without that route
/// would); its base URL.
async fn without_current_user(emulator: &Emulator, status: u16) -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::Response;
    let upstream = emulator.api_url();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (upstream, http) = (upstream.clone(), http.clone());
        async move {
            let (parts, body) = request.into_parts();
            if parts.uri.path() == "/v1/current_user" {
                let status = StatusCode::from_u16(status).unwrap();
                return Response::builder()
                    .status(status)
                    .body(Body::from(r#"{"error":"not_found"}"#))
                    .unwrap();
            }
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let target = format!(
                "{upstream}{}",
                parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
            );
            let answer = http
                .request(parts.method, target)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let bytes = answer.bytes().await.unwrap_or_default();
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(bytes))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// Issue 25, point 5: a server without `GET /v1/current_user` (404 or 405)
/// does not stop the bot. It says why in one line on stderr and goes on,
/// answering `!ping`, telling its own messages by their text.
#[tokio::test]
async fn the_bot_example_goes_on_without_current_user() {
    for status in [404, 405] {
        let (emulator, names) = setup(EmulatorConfig::default()).await;
        let mut chat = watch_chat(&emulator, &names).await;
        let api_url = without_current_user(&emulator, status).await;
        let mut child = spawn_bot_example(&api_url, &emulator.ws_url(), "warn");
        let mut stderr = lines_of(child.stderr.take().unwrap());
        wait_until(&emulator, "the bot subscribed", |e| {
            e.subscriber_count(&names.chat) == 2
        })
        .await;
        let why = within(stderr.recv()).await.expect("a line on stderr");
        assert!(
            why.starts_with("bot: going on without my user id")
                && why.contains("current_user")
                && why.contains(&status.to_string()),
            "{why}"
        );
        emulator.publish(&names.chat, say(1, &viewer(1), "!ping"));
        let pong = next_message_from(&mut chat, BOT_ID as i64).await;
        assert!(pong.mentions_user(viewer(1).id as i64), "{pong:?}");
        emulator.publish(&names.chat, say(2, &viewer(2), "!ping"));
        let pong = next_message_from(&mut chat, BOT_ID as i64).await;
        assert!(pong.mentions_user(viewer(2).id as i64), "{pong:?}");
        assert_eq!(chat_sends(&emulator).len(), 2, "{status}");
        child.kill().await.ok();
    }
}

/// An answer worked out later that panics costs only itself: the channel's
/// queue goes on with the next message.
#[tokio::test]
async fn a_panicking_later_answer_does_not_stall_the_channel() {
    use vklive_pubsub::bot::{BotSettings, ChatBot, Outcome};
    let (emulator, _names) = setup(EmulatorConfig {
        chat_min_interval: Duration::from_millis(20),
        ..EmulatorConfig::default()
    })
    .await;
    let (bot, mut outcomes) = ChatBot::new(
        bot_api(&emulator, Duration::from_millis(50)),
        BotSettings::default(),
    );
    bot.say_later(SLUG, async { panic!("a bug in an answer") })
        .unwrap();
    bot.say(SLUG, "after the panic").unwrap();
    match within(outcomes.recv()).await {
        Some(Outcome::Sent { message, .. }) => assert_eq!(message.plain_text(), "after the panic"),
        other => panic!("{other:?}"),
    }
}
