//! End to end against the emulator: tokens, subscriptions, ordered
//! publications, batching, pings, refusals and bad input.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use vklive_pubsub::emulator::EmulatorConfig;
use vklive_pubsub::{Client, ErrorKind, Event, Recovery};

#[tokio::test]
async fn fetches_tokens_and_subscribes_each_channel_with_its_own_token() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("somechannel", 5);
    let channels = [
        names.chat.clone(),
        names.private_chat.clone(),
        names.private_info.clone(),
    ];
    let (_client, mut events) = connect(builder(&emulator).channels(channels.clone())).await;
    let refs: Vec<&str> = channels.iter().map(String::as_str).collect();
    wait_subscribed(&mut events, &refs).await;

    let calls = emulator.rest_calls();
    assert!(calls.iter().any(|call| call.path == "/v1/websocket/token"));
    let token_calls: Vec<_> = calls
        .iter()
        .filter(|call| call.path == "/v1/websocket/subscription_token")
        .collect();
    assert_eq!(token_calls.len(), 1, "one batched token request: {calls:?}");

    let commands = emulator.received_commands();
    let connect = commands
        .iter()
        .find_map(|c| c.command.connect.as_ref())
        .expect("connect sent");
    assert!(connect.token.as_ref().is_some_and(|t| !t.is_empty()));
    let mut tokens = HashSet::new();
    for channel in &channels[1..] {
        let subscribe = commands
            .iter()
            .find_map(|c| {
                c.command
                    .subscribe
                    .as_ref()
                    .filter(|s| &s.channel == channel)
            })
            .expect("subscribe sent");
        let token = subscribe
            .token
            .as_ref()
            .expect("private channel subscribed with a token");
        assert!(
            tokens.insert(token.expose_secret().to_owned()),
            "each channel has its own token"
        );
    }
    assert!(
        emulator.violations().is_empty(),
        "{:?}",
        emulator.violations()
    );
}

#[tokio::test]
async fn delivers_publications_on_three_channels_in_order_with_offsets() {
    let emulator = start(EmulatorConfig::default()).await;
    let channels = [
        "api-channel-chat:1",
        "api-channel-chat:2",
        "api-channel-info:1",
    ];
    let (_client, mut events) = connect(builder(&emulator).channels(channels)).await;
    wait_subscribed(&mut events, &channels).await;

    for round in 0..20 {
        for (index, channel) in channels.iter().enumerate() {
            emulator.publish(channel, chat(round * 10 + index as i64, "привет 👋"));
        }
    }
    let received = publications(&mut events, 60).await;
    for (index, channel) in channels.iter().enumerate() {
        let mine: Vec<_> = received
            .iter()
            .filter(|p| &*p.channel == *channel)
            .collect();
        let offsets: Vec<u64> = mine.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, (1..=20).collect::<Vec<u64>>(), "{channel}");
        let ids: Vec<i64> = mine.iter().filter_map(|p| chat_id(p)).collect();
        let expected: Vec<i64> = (0..20).map(|round| round * 10 + index as i64).collect();
        assert_eq!(ids, expected, "{channel}");
    }
}

#[tokio::test]
async fn decodes_every_line_of_a_frame_carrying_several_pushes() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;

    let line = |id: i64| {
        serde_json::json!({"push": {"channel": "api-channel-chat:1", "pub": {"data": chat(id, "x")}}})
            .to_string()
    };
    let frame = format!("{}\n{}\n{}\n", line(1), line(2), line(3));
    emulator.send_raw(&frame);
    let ids: Vec<i64> = publications(&mut events, 3)
        .await
        .iter()
        .filter_map(chat_id)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test]
async fn answers_every_ping_exactly_once_over_several_intervals() {
    let config = EmulatorConfig {
        ping_interval: Duration::from_millis(200),
        // Generous: this proves one pong per ping, not pong speed, and a
        // busy machine must not turn a prompt pong into a 3012.
        pong_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let emulator = start(config).await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;

    wait_until(&emulator, "six pings", |e| e.pings_sent() >= 6).await;
    wait_pings_answered(&emulator).await;
    assert!(
        emulator.close_codes().is_empty(),
        "{:?}",
        emulator.close_codes()
    );
    assert_eq!(emulator.connection_count(), 1);
}

#[tokio::test]
async fn reports_a_denied_channel_while_the_others_work() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("c", 9);
    emulator.deny(USER_ID, &names.private_chat);
    let (_client, mut events) =
        connect(builder(&emulator).channels([names.chat.clone(), names.private_chat.clone()]))
            .await;

    let failed = wait_for_event(&mut events, |e| {
        matches!(e, Event::SubscriptionFailed { .. })
    })
    .await;
    match failed {
        Event::SubscriptionFailed { channel, code, .. } => {
            assert_eq!(channel, names.private_chat);
            assert_eq!(code, 103);
        }
        other => unreachable!("{other:?}"),
    }
    emulator.publish(&names.chat, chat(1, "still here"));
    let received = publications(&mut events, 1).await;
    assert_eq!(&*received[0].channel, names.chat);
}

#[tokio::test]
async fn a_401_from_the_api_is_a_permanent_error_naming_the_endpoint() {
    let emulator = start(EmulatorConfig::default()).await;
    let result = tokio::time::timeout(
        TIMEOUT,
        Client::with_user_token("not-a-valid-token")
            .api_url(emulator.api_url())
            .ws_url(emulator.ws_url())
            .channel("api-channel-chat:1")
            .connect(),
    )
    .await
    .expect("connect must fail fast, not retry a 401");
    let error = result.expect_err("a rejected token cannot connect");
    assert_eq!(error.kind(), ErrorKind::Unauthorized);
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("GET /v1/websocket/token"), "{message}");
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("not-a-valid-token"), "{message}");
    assert_eq!(emulator.connection_count(), 0);
}

#[tokio::test]
async fn skips_a_malformed_line_and_delivers_the_next_ones() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;

    let good = serde_json::json!({"push": {"channel": "api-channel-chat:1", "pub": {"data": chat(2, "ok")}}});
    emulator.send_raw(&format!("{{\"push\": oops\n{good}\n[1,2]\n\"text\""));
    emulator.publish("api-channel-chat:1", chat(3, "after"));
    let ids: Vec<i64> = publications(&mut events, 2)
        .await
        .iter()
        .filter_map(chat_id)
        .collect();
    assert_eq!(ids, [2, 3]);
    assert_eq!(
        emulator.connection_count(),
        1,
        "the bad line did not cost the connection"
    );
}

#[tokio::test]
async fn unknown_event_types_arrive_with_their_raw_json() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    emulator.publish(
        "api-channel-chat:1",
        serde_json::json!({"type": "brand_new", "data": {"x": 1}}),
    );
    let received = publications(&mut events, 1).await;
    match &received[0].event {
        vklive_pubsub::VkEvent::Unknown(unknown) => {
            assert_eq!(unknown.kind, "brand_new");
            let raw: serde_json::Value = serde_json::from_str(unknown.raw.get()).unwrap();
            assert_eq!(raw["data"]["x"], 1);
        }
        other => panic!("expected an unknown event, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let emulator = start(EmulatorConfig::default()).await;
    let (client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    assert_eq!(emulator.connection_count(), 1);
    drop(events);
    drop(client);
    wait_until(&emulator, "the connection closed", |e| {
        e.connection_count() == 0
    })
    .await;
}

#[tokio::test]
async fn close_sends_a_normal_close_frame_and_ends_the_stream() {
    let emulator = start(EmulatorConfig::default()).await;
    let (client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    tokio::time::timeout(TIMEOUT, client.close())
        .await
        .unwrap()
        .unwrap();
    let last = wait_for_event(&mut events, |e| matches!(e, Event::Closed { .. })).await;
    assert!(matches!(
        last,
        Event::Closed {
            reason: vklive_pubsub::CloseReason::Requested
        }
    ));
    assert!(
        tokio::time::timeout(TIMEOUT, futures::StreamExt::next(&mut events))
            .await
            .unwrap()
            .is_none()
    );
    wait_until(&emulator, "the connection closed", |e| {
        e.connection_count() == 0
    })
    .await;
    assert!(
        emulator.violations().is_empty(),
        "{:?}",
        emulator.violations()
    );
}

#[tokio::test]
async fn first_subscription_reports_no_recovery() {
    let emulator = start(EmulatorConfig::default()).await;
    let (_client, mut events) = connect(builder(&emulator).channel("api-channel-chat:1")).await;
    let event = wait_for_event(&mut events, |e| matches!(e, Event::Subscribed { .. })).await;
    assert!(matches!(
        event,
        Event::Subscribed {
            recovery: Recovery::NotRequested,
            ..
        }
    ));
}

/// Each subscription hands out the channel's stream epoch and offset as the
/// server has them, and a resubscription after the stream restarted the
/// new epoch.
#[tokio::test]
async fn subscribed_carries_the_streams_epoch_and_after_a_restart_the_new_one() {
    let emulator = start(EmulatorConfig::default()).await;
    let channel = "api-channel-chat:1";
    emulator.publish(channel, chat(1, "before"));
    let (before, top) = emulator.stream_position(channel);
    assert!(
        !before.is_empty() && top == 1,
        "the emulator keeps positions"
    );
    let (_client, mut events) = connect(builder(&emulator).channel(channel)).await;
    let subscribed = |e: &Event| matches!(e, Event::Subscribed { .. });
    match wait_for_event(&mut events, subscribed).await {
        Event::Subscribed { epoch, offset, .. } => assert_eq!((epoch, offset), (before.clone(), 1)),
        other => unreachable!("{other:?}"),
    }

    emulator.restart_channel(channel); // a new epoch; subscribers are pushed out
    let (after, _) = emulator.stream_position(channel);
    assert_ne!(after, before);
    match wait_for_event(&mut events, subscribed).await {
        Event::Subscribed {
            epoch, recovery, ..
        } => {
            assert_eq!(epoch, after);
            assert_eq!(recovery, Recovery::Failed);
        }
        other => unreachable!("{other:?}"),
    }
}

/// A stand-in server that answers the client's first frame (connect and
/// subscribe, pipelined) with ONE frame holding both replies, two
/// publications and a ping; returns what the client sent next.
async fn one_frame_server(listener: tokio::net::TcpListener) -> String {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use vklive_pubsub::protocol::{Command, decode_frame};

    let (tcp, _) = listener.accept().await.unwrap();
    let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let first = socket.next().await.unwrap().unwrap().into_text().unwrap();
    let ids: Vec<u32> = decode_frame::<Command>(&first)
        .map(|c| c.unwrap().id)
        .collect();
    assert_eq!(ids.len(), 2, "connect and subscribe pipelined: {first}");
    let push = |id: i64| serde_json::json!({"push": {"channel": "api-channel-chat:1", "pub": {"data": chat(id, "x"), "offset": id}}});
    let frame = format!(
        "{{\"id\":{},\"connect\":{{\"client\":\"fake\",\"ping\":25,\"pong\":true}}}}\n\
         {{\"id\":{},\"subscribe\":{{\"recoverable\":true,\"epoch\":\"e\",\"offset\":0}}}}\n{}\n{}\n{{}}\n",
        ids[0],
        ids[1],
        push(1),
        push(2)
    );
    socket.send(Message::Text(frame.into())).await.unwrap();
    let next = socket.next().await.unwrap().unwrap().into_text().unwrap();
    next.to_string()
}

#[tokio::test]
async fn one_frame_with_replies_pushes_and_a_ping_is_handled_line_by_line() {
    let emulator = start(EmulatorConfig::default()).await; // REST side only
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_url = format!(
        "ws://{}/connection/websocket",
        listener.local_addr().unwrap()
    );
    let server = tokio::spawn(one_frame_server(listener));
    let (_client, mut events) = connect(
        Client::with_user_token(USER_TOKEN)
            .api_url(emulator.api_url())
            .ws_url(ws_url)
            .channel("api-channel-chat:1"),
    )
    .await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    let received = publications(&mut events, 2).await;
    assert_eq!(
        received.iter().filter_map(chat_id).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(
        received.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [1, 2]
    );
    let after = within(server).await.unwrap();
    assert_eq!(after, "{}", "exactly one pong for the ping, nothing else");
}

#[tokio::test]
async fn follows_a_channel_by_its_url_public_channels_and_only_the_granted_private_ones() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("streamer.tv.", 2);
    emulator.deny(USER_ID, &names.private_info);
    let (client, mut events) = connect(
        builder(&emulator)
            .channel_url("https://live.vkvideo.ru/streamer.tv./")
            .channel_url("nobody-here"),
    )
    .await;
    let failed = wait_for_event(&mut events, |event| {
        matches!(event, Event::SubscriptionFailed { .. })
    })
    .await;
    assert!(
        matches!(&failed, Event::SubscriptionFailed { channel, code: 0, .. } if channel == "nobody-here"),
        "{failed:?}"
    );
    let expected = [
        &names.chat,
        &names.info,
        &names.channel_points,
        &names.private_chat,
    ];
    let expected: Vec<&str> = expected.iter().map(|name| name.as_str()).collect();
    wait_subscribed(&mut events, &expected).await;
    assert_eq!(
        emulator.subscriber_count(&names.private_info),
        0,
        "denied: not subscribed"
    );
    // At run time too; a string that is no channel is refused at once.
    let other = emulator.add_channel("other", 3);
    client.subscribe_channel_url("other").await.unwrap();
    wait_subscribed(&mut events, &[&other.chat]).await;
    let refused = client.subscribe_channel_url("https://example.org/x").await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::InvalidArgument);
}

/// Fail fast: a first connect that keeps failing gives up after the default
/// 3 attempts with an error naming the cause; the 4th attempt is never made.
#[tokio::test]
async fn connect_gives_up_after_three_failed_first_attempts_naming_the_cause() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.fail_next_rest(100, 503, None);
    let error = within(builder(&emulator).channel("api-channel-chat:1").connect())
        .await
        .expect_err("gives up");
    assert_eq!(error.kind(), ErrorKind::Timeout);
    let message = error.to_string();
    assert!(message.contains("3 failed attempts"), "{message}");
    assert!(message.contains("503"), "{message}");
    assert_eq!(rest_count(&emulator, "/v1/websocket/token"), 3);
}

/// ... within the time bound too, whichever comes first.
#[tokio::test]
async fn connect_gives_up_when_the_first_connect_bound_passes() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.delay_next_rest(1, Duration::from_secs(5));
    let started = std::time::Instant::now();
    let error = within(
        builder(&emulator)
            .channel("api-channel-chat:1")
            .first_connect(3, Duration::from_millis(300))
            .connect(),
    )
    .await
    .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error.to_string().contains("0 failed attempts"), "{error}");
}

/// Patience is explicit: retrying forever gets through a long outage.
#[tokio::test]
async fn retry_first_connect_forever_waits_out_many_failures() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.fail_next_rest(5, 503, None);
    let (_client, mut events) = connect(
        builder(&emulator)
            .channel("api-channel-chat:1")
            .backoff(Duration::from_millis(10), Duration::from_millis(20))
            .retry_first_connect_forever(),
    )
    .await;
    // The failed attempts are still reported, before Connected.
    let mut disconnected = 0;
    loop {
        match next_event(&mut events).await {
            Event::Disconnected { .. } => disconnected += 1,
            Event::Connected { .. } => break,
            _ => {}
        }
    }
    assert_eq!(disconnected, 5);
}
