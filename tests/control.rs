//! The emulator's HTTP control API (`/_emulator/…`): one test per route,
//! each checking the effect through the Rust API or a client. The last test
//! checks that `GET /_emulator/` lists exactly the routes tested here and
//! that `docs/emulator-control.md` has a curl example for each.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Event, VkEvent};

/// Every route this file tests, as `GET /_emulator/` spells it.
const TESTED: &[(&str, &str)] = &[
    ("GET", "/_emulator/"),
    ("POST", "/_emulator/users"),
    ("POST", "/_emulator/apps"),
    ("POST", "/_emulator/refresh_tokens"),
    ("POST", "/_emulator/tokens/revoke"),
    ("POST", "/_emulator/tokens/expire_next"),
    ("POST", "/_emulator/tokens/connection"),
    ("POST", "/_emulator/tokens/subscription"),
    ("POST", "/_emulator/token_ttl"),
    ("POST", "/_emulator/channels"),
    ("POST", "/_emulator/deny"),
    ("POST", "/_emulator/channel_limit"),
    ("POST", "/_emulator/ping_interval"),
    ("POST", "/_emulator/history"),
    ("POST", "/_emulator/publish"),
    ("POST", "/_emulator/trigger"),
    ("POST", "/_emulator/restart_channel"),
    ("POST", "/_emulator/unsubscribe"),
    ("POST", "/_emulator/blast"),
    ("POST", "/_emulator/paced"),
    ("POST", "/_emulator/close"),
    ("POST", "/_emulator/abort"),
    ("POST", "/_emulator/silent"),
    ("POST", "/_emulator/send_raw"),
    ("POST", "/_emulator/fail_subscribes"),
    ("POST", "/_emulator/fail_rest"),
    ("POST", "/_emulator/delay_rest"),
    ("POST", "/_emulator/fail_ws_upgrade"),
    ("GET", "/_emulator/connections"),
    ("POST", "/_emulator/connections/{id}/close"),
    ("POST", "/_emulator/connections/{id}/abort"),
    ("POST", "/_emulator/connections/{id}/silent"),
    ("POST", "/_emulator/connections/{id}/drop"),
    ("POST", "/_emulator/connections/{id}/send_raw"),
    ("POST", "/_emulator/connections/{id}/garbage"),
    ("GET", "/_emulator/stats"),
];

async fn post(emulator: &Emulator, path: &str, body: Value) -> (u16, Value) {
    within(async {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", emulator.api_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
    .await
}

async fn post_ok(emulator: &Emulator, path: &str, body: Value) -> Value {
    let (status, answer) = post(emulator, path, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

async fn get(emulator: &Emulator, path: &str) -> Value {
    within(async {
        reqwest::get(format!("{}{path}", emulator.api_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await
}

/// A REST call with `authorization`, answering its status.
async fn rest_status(emulator: &Emulator, path: &str, authorization: &str) -> u16 {
    within(async {
        reqwest::Client::new()
            .get(format!("{}{path}", emulator.api_url()))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await
}

async fn subscribed(
    emulator: &Emulator,
    channel: &str,
) -> (vklive_pubsub::Client, vklive_pubsub::Events) {
    let (client, mut events) = connect(builder(emulator).channel(channel)).await;
    wait_subscribed(&mut events, &[channel]).await;
    (client, events)
}

/// The id of the only open connection.
fn only_connection(emulator: &Emulator) -> u64 {
    let connections = emulator.connections();
    assert_eq!(connections.len(), 1, "{connections:?}");
    connections[0].id
}

#[tokio::test]
async fn users_adds_a_user_and_its_token() {
    let emulator = start(EmulatorConfig::default()).await;
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", "Bearer new-token").await,
        401
    );
    post_ok(
        &emulator,
        "/_emulator/users",
        json!({"token": "new-token", "id": 5, "nick": "n"}),
    )
    .await;
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", "Bearer new-token").await,
        200
    );
}

#[tokio::test]
async fn apps_adds_basic_credentials() {
    let emulator = start(EmulatorConfig::default()).await;
    let basic = "Basic YXBwOnNlY3JldA=="; // app:secret
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", basic).await,
        401
    );
    post_ok(
        &emulator,
        "/_emulator/apps",
        json!({"client_id": "app", "client_secret": "secret"}),
    )
    .await;
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", basic).await,
        200
    );
}

#[tokio::test]
async fn refresh_tokens_adds_a_refresh_token_for_oauth() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_app("app", "secret");
    post_ok(
        &emulator,
        "/_emulator/refresh_tokens",
        json!({"refresh_token": "r1", "user_id": USER_ID, "client_id": "app"}),
    )
    .await;
    let answer: Value = within(async {
        reqwest::Client::new()
            .post(emulator.oauth_token_url())
            .basic_auth("app", Some("secret"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "r1")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;
    assert!(answer["access_token"].is_string(), "{answer}");
}

#[tokio::test]
async fn tokens_revoke_ends_an_access_token_and_its_connections() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, _events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(
        &emulator,
        "/_emulator/tokens/revoke",
        json!({"access_token": USER_TOKEN}),
    )
    .await;
    let bearer = format!("Bearer {USER_TOKEN}");
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", &bearer).await,
        401
    );
    wait_until(&emulator, "closed with 3500", |e| {
        e.close_codes().contains(&3500)
    })
    .await;
}

#[tokio::test]
async fn tokens_expire_next_makes_the_next_connect_answer_109() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/tokens/expire_next",
        json!({"count": 1}),
    )
    .await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    assert_eq!(
        rest_count(&emulator, "/v1/websocket/token"),
        2,
        "one refused with 109"
    );
}

#[tokio::test]
async fn tokens_connection_issues_a_connection_token() {
    let emulator = start(EmulatorConfig::default()).await;
    let answer = post_ok(
        &emulator,
        "/_emulator/tokens/connection",
        json!({"user_id": USER_ID}),
    )
    .await;
    assert!(
        answer["token"].as_str().unwrap().starts_with("emu-conn-"),
        "{answer}"
    );
}

#[tokio::test]
async fn tokens_subscription_issues_a_subscription_token() {
    let emulator = start(EmulatorConfig::default()).await;
    let answer = post_ok(
        &emulator,
        "/_emulator/tokens/subscription",
        json!({"user_id": USER_ID, "channel": "api-channel-private-chat:1", "ttl": 60}),
    )
    .await;
    assert!(
        answer["token"].as_str().unwrap().starts_with("emu-sub-"),
        "{answer}"
    );
    let (status, _) = post(
        &emulator,
        "/_emulator/tokens/subscription",
        json!({"user_id": 1}),
    )
    .await;
    assert_eq!(status, 400, "a channel is needed");
}

#[tokio::test]
async fn token_ttl_makes_issued_tokens_expire_so_the_client_refreshes() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/token_ttl",
        json!({"ttl": 1, "grace": 5}),
    )
    .await;
    let (_client, _events) = subscribed(&emulator, "api-channel-chat:1").await;
    wait_until(&emulator, "a refresh before the token expires", |e| {
        e.received_commands()
            .iter()
            .any(|received| received.command.refresh.is_some())
    })
    .await;
}

#[tokio::test]
async fn channels_registers_a_channel_and_answers_its_names() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = post_ok(
        &emulator,
        "/_emulator/channels",
        json!({"slug": "streamer", "id": 9}),
    )
    .await;
    assert_eq!(names["chat"], "api-channel-chat:9");
    assert_eq!(names["private_info"], "api-channel-private-info:9");
    let bearer = format!("Bearer {USER_TOKEN}");
    assert_eq!(
        rest_status(&emulator, "/v1/channel?channel_url=streamer", &bearer).await,
        200
    );
}

#[tokio::test]
async fn deny_withholds_a_subscription_token() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/deny",
        json!({"user_id": USER_ID, "channel": "api-channel-private-chat:1"}),
    )
    .await;
    let (_client, mut events) =
        connect(builder(&emulator).channel("api-channel-private-chat:1")).await;
    let failed = wait_for_event(&mut events, |e| {
        matches!(e, Event::SubscriptionFailed { .. })
    })
    .await;
    assert!(
        matches!(failed, Event::SubscriptionFailed { code: 103, .. }),
        "{failed:?}"
    );
}

#[tokio::test]
async fn channel_limit_refuses_one_subscription_too_many() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(&emulator, "/_emulator/channel_limit", json!({"limit": 1})).await;
    let (client, mut events) = connect(
        builder(&emulator)
            .channels(["api-channel-chat:1", "api-channel-info:1"])
            .connection_pace(std::time::Duration::ZERO),
    )
    .await;
    // The second subscribe on the first connection is refused with 106;
    // the client's pool moves it to a second connection.
    wait_subscribed(&mut events, &["api-channel-chat:1", "api-channel-info:1"]).await;
    assert_eq!(emulator.connection_count(), 2);
    let pool = client.pool_state().await.unwrap();
    assert_eq!(pool.connections[0].limit, 1, "learnt from the 106");
}

#[tokio::test]
async fn ping_interval_applies_to_new_connections() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/ping_interval",
        json!({"seconds": 0.2}),
    )
    .await;
    let (_client, _events) = subscribed(&emulator, "api-channel-chat:1").await;
    wait_until(&emulator, "pings every 0.2 s", |e| e.pings_sent() >= 2).await;
}

#[tokio::test]
async fn history_turns_offsets_off_and_on() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(&emulator, "/_emulator/history", json!({"enabled": false})).await;
    assert_eq!(emulator.publish("api-channel-chat:1", chat(1, "a")), 0);
    assert_eq!(get(&emulator, "/_emulator/stats").await["history"], false);
    post_ok(&emulator, "/_emulator/history", json!({"enabled": true})).await;
    assert_eq!(emulator.publish("api-channel-chat:1", chat(2, "b")), 1);
}

#[tokio::test]
async fn publish_delivers_a_publication() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let answer = post_ok(
        &emulator,
        "/_emulator/publish",
        json!({"channel": "api-channel-chat:1", "data": chat(1, "over http")}),
    )
    .await;
    assert_eq!(answer["offset"], 1);
    let publication = &publications(&mut events, 1).await[0];
    assert_eq!(chat_id(publication), Some(1));
}

#[tokio::test]
async fn trigger_fires_a_named_event_with_overrides_and_a_count() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer", 3);
    let (_client, mut events) = subscribed(&emulator, &names.info).await;
    let answer = post_ok(
        &emulator,
        "/_emulator/trigger",
        json!({"event": "raid", "channel": "streamer", "nick": "X", "count": 2,
               "overrides": {"data": {"raid": {"raiders_count": 500}}}}),
    )
    .await;
    let published = answer["published"].as_array().unwrap();
    assert_eq!(published.len(), 2, "{answer}");
    assert_eq!(published[0]["channel"], names.info);
    for publication in publications(&mut events, 2).await {
        match publication.event {
            VkEvent::Raid(raid) => {
                assert_eq!(raid.raiders_count, Some(500));
                assert_eq!(raid.source.owner.unwrap().nick, "X");
            }
            other => panic!("{other:?}"),
        }
    }
    let (status, error) = post(&emulator, "/_emulator/trigger", json!({"event": "delete"})).await;
    assert_eq!(status, 400, "nothing to delete: {error}");
    let (status, _) = post(&emulator, "/_emulator/trigger", json!({"event": "nope"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn restart_channel_sends_unsubscribe_2500_and_a_new_epoch() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let (epoch, _) = emulator.stream_position("api-channel-chat:1");
    post_ok(
        &emulator,
        "/_emulator/restart_channel",
        json!({"channel": "api-channel-chat:1"}),
    )
    .await;
    assert_ne!(emulator.stream_position("api-channel-chat:1").0, epoch);
    wait_for_event(
        &mut events,
        |e| matches!(e, Event::Subscribed { channel, .. } if channel == "api-channel-chat:1"),
    )
    .await;
}

#[tokio::test]
async fn unsubscribe_ends_a_subscription_with_a_code() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(
        &emulator,
        "/_emulator/unsubscribe",
        json!({"channel": "api-channel-chat:1", "code": 2000, "reason": "bye"}),
    )
    .await;
    let ended = wait_for_event(&mut events, |e| matches!(e, Event::Unsubscribed { .. })).await;
    assert!(
        matches!(ended, Event::Unsubscribed { code: 2000, .. }),
        "{ended:?}"
    );
}

#[tokio::test]
async fn blast_queues_frames_of_publications() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let report = post_ok(
        &emulator,
        "/_emulator/blast",
        json!({"channel": "api-channel-chat:1", "count": 250, "per_frame": 100}),
    )
    .await;
    assert_eq!(report["frames"], 3);
    assert_eq!(publications(&mut events, 250).await.len(), 250);
}

#[tokio::test]
async fn paced_publishes_in_the_background() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(
        &emulator,
        "/_emulator/paced",
        json!({"channel": "api-channel-chat:1", "count": 5, "rate": 100}),
    )
    .await;
    assert_eq!(publications(&mut events, 5).await.len(), 5);
}

#[tokio::test]
async fn close_closes_every_connection_with_the_code() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(
        &emulator,
        "/_emulator/close",
        json!({"code": 3000, "reason": "go away"}),
    )
    .await;
    let lost = wait_for_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(
            lost,
            Event::Disconnected {
                code: Some(3000),
                ..
            }
        ),
        "{lost:?}"
    );
}

#[tokio::test]
async fn abort_drops_every_connection() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(&emulator, "/_emulator/abort", json!({})).await;
    let lost = wait_for_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(lost, Event::Disconnected { code: None, .. }),
        "{lost:?}"
    );
}

#[tokio::test]
async fn silent_sends_nothing_until_switched_back() {
    let emulator = start(EmulatorConfig {
        history: false, // no offsets, so no recovery of what was dropped
        ..Default::default()
    })
    .await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    post_ok(&emulator, "/_emulator/silent", json!({"silent": true})).await;
    emulator.publish("api-channel-chat:1", chat(1, "lost"));
    post_ok(&emulator, "/_emulator/silent", json!({"silent": false})).await;
    emulator.publish("api-channel-chat:1", chat(2, "kept"));
    let first = &publications(&mut events, 1).await[0];
    assert_eq!(chat_id(first), Some(2), "the silent one was dropped");
}

#[tokio::test]
async fn send_raw_reaches_every_connection() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let push = json!({"push": {"channel": "api-channel-chat:1",
        "pub": {"data": chat(77, "raw"), "offset": 1}}});
    post_ok(
        &emulator,
        "/_emulator/send_raw",
        json!({"frame": push.to_string()}),
    )
    .await;
    assert_eq!(chat_id(&publications(&mut events, 1).await[0]), Some(77));
}

#[tokio::test]
async fn fail_subscribes_refuses_the_next_subscribe() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/fail_subscribes",
        json!({"count": 1, "code": 103, "temporary": false}),
    )
    .await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    let failed = wait_for_event(&mut events, |e| {
        matches!(e, Event::SubscriptionFailed { .. })
    })
    .await;
    assert!(
        matches!(failed, Event::SubscriptionFailed { code: 103, .. }),
        "{failed:?}"
    );
}

#[tokio::test]
async fn fail_rest_answers_the_status() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/fail_rest",
        json!({"count": 1, "status": 503}),
    )
    .await;
    let bearer = format!("Bearer {USER_TOKEN}");
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", &bearer).await,
        503
    );
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", &bearer).await,
        200
    );
}

#[tokio::test]
async fn delay_rest_answers_late() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/delay_rest",
        json!({"count": 1, "ms": 300}),
    )
    .await;
    let bearer = format!("Bearer {USER_TOKEN}");
    let started = std::time::Instant::now();
    assert_eq!(
        rest_status(&emulator, "/v1/websocket/token", &bearer).await,
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn fail_ws_upgrade_refuses_the_next_upgrade() {
    let emulator = start(EmulatorConfig::default()).await;
    post_ok(
        &emulator,
        "/_emulator/fail_ws_upgrade",
        json!({"count": 1, "status": 503}),
    )
    .await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    assert_eq!(
        rest_count(&emulator, "/v1/websocket/token"),
        2,
        "one upgrade refused"
    );
}

#[tokio::test]
async fn connections_lists_who_is_connected_and_subscribed() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, _events) = subscribed(&emulator, "api-channel-chat:1").await;
    let list = get(&emulator, "/_emulator/connections").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["user_id"], USER_ID);
    assert_eq!(list[0]["subscriptions"], json!(["api-channel-chat:1"]));
}

#[tokio::test]
async fn connection_close_closes_one_connection_with_the_code() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    post_ok(
        &emulator,
        &format!("/_emulator/connections/{id}/close"),
        json!({"code": 3001, "reason": "one"}),
    )
    .await;
    let lost = wait_for_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(
            lost,
            Event::Disconnected {
                code: Some(3001),
                ..
            }
        ),
        "{lost:?}"
    );
    let (status, _) = post(
        &emulator,
        "/_emulator/connections/9999/close",
        json!({"code": 3000}),
    )
    .await;
    assert_eq!(status, 404, "unknown connection");
}

#[tokio::test]
async fn connection_abort_drops_one_connection() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    post_ok(
        &emulator,
        &format!("/_emulator/connections/{id}/abort"),
        json!({}),
    )
    .await;
    let lost = wait_for_event(&mut events, |e| matches!(e, Event::Disconnected { .. })).await;
    assert!(
        matches!(lost, Event::Disconnected { code: None, .. }),
        "{lost:?}"
    );
}

#[tokio::test]
async fn connection_silent_silences_one_connection() {
    let emulator = start(EmulatorConfig {
        history: false, // no offsets, so no recovery of what was dropped
        ..Default::default()
    })
    .await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    let path = format!("/_emulator/connections/{id}/silent");
    post_ok(&emulator, &path, json!({"silent": true})).await;
    emulator.publish("api-channel-chat:1", chat(1, "lost"));
    post_ok(&emulator, &path, json!({"silent": false})).await;
    emulator.publish("api-channel-chat:1", chat(2, "kept"));
    assert_eq!(chat_id(&publications(&mut events, 1).await[0]), Some(2));
}

#[tokio::test]
async fn connection_drop_drops_the_next_frames() {
    let emulator = start(EmulatorConfig {
        batch_frames: false,
        history: false, // no offsets, so no recovery of what was dropped
        ..Default::default()
    })
    .await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    post_ok(
        &emulator,
        &format!("/_emulator/connections/{id}/drop"),
        json!({"frames": 2}),
    )
    .await;
    for message in 1..=3 {
        emulator.publish("api-channel-chat:1", chat(message, "x"));
    }
    // Two frames lost: the client sees the third.
    let publication = &publications(&mut events, 1).await[0];
    assert_eq!(chat_id(publication), Some(3));
}

#[tokio::test]
async fn connection_send_raw_reaches_one_connection() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    let push = json!({"push": {"channel": "api-channel-chat:1",
        "pub": {"data": chat(78, "raw"), "offset": 1}}});
    post_ok(
        &emulator,
        &format!("/_emulator/connections/{id}/send_raw"),
        json!({"frame": push.to_string()}),
    )
    .await;
    assert_eq!(chat_id(&publications(&mut events, 1).await[0]), Some(78));
}

#[tokio::test]
async fn connection_garbage_is_skipped_and_the_link_goes_on() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let id = only_connection(&emulator);
    post_ok(
        &emulator,
        &format!("/_emulator/connections/{id}/garbage"),
        json!({}),
    )
    .await;
    emulator.publish("api-channel-chat:1", chat(5, "after the garbage"));
    assert_eq!(chat_id(&publications(&mut events, 1).await[0]), Some(5));
    assert_eq!(emulator.connections().len(), 1, "no reconnect");
}

#[tokio::test]
async fn stats_counts_connections_and_subscribers() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, _events) = subscribed(&emulator, "api-channel-chat:1").await;
    let stats = get(&emulator, "/_emulator/stats").await;
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["subscribers"]["api-channel-chat:1"], 1);
}

/// A raw control POST: `headers` as given, `body` verbatim; answers the
/// status and the JSON answer.
async fn raw_post(
    emulator: &Emulator,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    within(async {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", emulator.api_url()))
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
    .await
}

const PUBLISH: &str =
    r#"{"channel":"api-channel-chat:1","data":{"type":"channel_follow_create","data":{}}}"#;

#[tokio::test]
async fn a_text_plain_post_that_any_page_could_send_is_refused_with_415() {
    let emulator = start(EmulatorConfig::default()).await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let (status, answer) = raw_post(
            &emulator,
            "/_emulator/publish",
            &[("content-type", content_type)],
            PUBLISH,
        )
        .await;
        assert_eq!(status, 415, "{content_type}: {answer}");
        assert_eq!(answer["error"], "unsupported_media_type");
    }
    // No body and no content type, as `fetch(url, {method: "POST"})` sends.
    let (status, _) = raw_post(&emulator, "/_emulator/abort", &[], "").await;
    assert_eq!(status, 415);
    assert_eq!(emulator.stream_position("api-channel-chat:1").1, 0);
    let (status, answer) = raw_post(
        &emulator,
        "/_emulator/publish",
        &[("content-type", "application/json; charset=utf-8")],
        PUBLISH,
    )
    .await;
    assert_eq!((status, answer), (200, json!({"offset": 1})));
}

#[tokio::test]
async fn a_post_from_a_foreign_origin_is_refused_with_403() {
    let emulator = start(EmulatorConfig::default()).await;
    let own = format!("http://{}", emulator.addr());
    for origin in ["https://attacker.example", "null", "http://127.0.0.1:1"] {
        let (status, answer) = raw_post(
            &emulator,
            "/_emulator/publish",
            &[("content-type", "application/json"), ("origin", origin)],
            PUBLISH,
        )
        .await;
        assert_eq!(status, 403, "{origin}: {answer}");
        assert_eq!(answer["error"], "forbidden");
    }
    assert_eq!(emulator.stream_position("api-channel-chat:1").1, 0);
    let (status, _) = raw_post(
        &emulator,
        "/_emulator/publish",
        &[("content-type", "application/json"), ("origin", &own)],
        PUBLISH,
    )
    .await;
    assert_eq!(status, 200, "its own origin {own}");
}

#[tokio::test]
async fn a_request_for_a_foreign_host_is_refused_as_dns_rebinding() {
    let emulator = start(EmulatorConfig::default()).await;
    let port = emulator.addr().port();
    let rebound = format!("attacker.example:{port}");
    let (status, _) = raw_post(
        &emulator,
        "/_emulator/publish",
        &[("content-type", "application/json"), ("host", &rebound)],
        PUBLISH,
    )
    .await;
    assert_eq!(status, 403);
    let stats = within(async {
        reqwest::Client::new()
            .get(format!("{}/_emulator/stats", emulator.api_url()))
            .header("host", &rebound)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;
    assert_eq!(stats, 403, "nothing to read through a rebound name either");
    let localhost = format!("localhost:{port}");
    let (status, _) = raw_post(
        &emulator,
        "/_emulator/publish",
        &[("content-type", "application/json"), ("host", &localhost)],
        PUBLISH,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_oversized_blast_is_refused_with_400_before_building_anything() {
    let emulator = start(EmulatorConfig::default()).await;
    let count = vklive_pubsub::emulator::MAX_BLAST_COUNT + 1;
    let (status, answer) = post(
        &emulator,
        "/_emulator/blast",
        json!({"channel": "api-channel-chat:1", "count": count, "per_frame": 1_000_000}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error_description"]
            .as_str()
            .unwrap()
            .contains("more than a blast may queue"),
        "{answer}"
    );
    assert_eq!(emulator.stream_position("api-channel-chat:1").1, 0);
    assert!(
        emulator
            .blast("api-channel-chat:1", count, 1_000_000)
            .is_err()
    );
}

#[tokio::test]
async fn a_publication_racing_a_blast_keeps_offsets_contiguous() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = subscribed(&emulator, "api-channel-chat:1").await;
    let blasting = emulator.clone();
    let blast =
        tokio::task::spawn_blocking(move || blasting.blast("api-channel-chat:1", 50_000, 500));
    // The frames are built outside the lock, so this publication may land
    // before or after them; either way offsets stay contiguous.
    let offset = emulator.publish("api-channel-chat:1", json!({"type": "x", "data": {}}));
    let report = within(blast).await.unwrap().unwrap();
    assert!(
        offset == report.first_offset - 1 || offset == report.last_offset + 1,
        "{offset} is beside {report:?}"
    );
    let received = publications(&mut events, 50_001).await;
    let offsets: Vec<u64> = received.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (1..=50_001).collect::<Vec<u64>>());
}

#[tokio::test]
async fn the_index_lists_every_route_each_tested_and_documented() {
    let emulator = start(EmulatorConfig::default()).await;
    let index = get(&emulator, "/_emulator/").await;
    let listed: Vec<(String, String)> = index["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|route| {
            (
                route["method"].as_str().unwrap().to_owned(),
                route["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let tested: Vec<(String, String)> = TESTED
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(
        listed, tested,
        "GET /_emulator/ lists exactly the tested routes"
    );
    let docs = include_str!("../docs/emulator-control.md");
    for (method, path) in &listed {
        let heading = format!("`{method} {path}`");
        assert!(
            docs.contains(&heading),
            "docs/emulator-control.md has {heading}"
        );
        let curl_path = path.replace("{id}", "1");
        assert!(
            docs.contains(&format!("$E{curl_path}")),
            "a curl example for {method} {path}"
        );
    }
}
