//! The emulator enforces Centrifugo's server rules and VK's REST rules,
//! proven with a raw WebSocket client (tokio-tungstenite) and reqwest.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use vklive_pubsub::emulator::{Emulator, EmulatorConfig, demo_chat_message};

const STEP: Duration = Duration::from_secs(5);
const TOKEN: &str = "access-1";
const USER: u64 = 7;

/// Every await of a test goes through this: a hang fails the test.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .expect("timed out waiting")
}

async fn start(config: EmulatorConfig) -> Emulator {
    let emulator = within(Emulator::start(config))
        .await
        .expect("emulator starts");
    emulator.add_user(TOKEN, USER, "tester");
    emulator
}

fn quiet() -> EmulatorConfig {
    // Pings far away, so they do not interleave with the lines a test expects.
    EmulatorConfig {
        ping_interval: Duration::from_secs(600),
        ..EmulatorConfig::default()
    }
}

/// A raw client: sends text frames, reads replies line by line.
struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    lines: VecDeque<Value>,
}

impl Raw {
    async fn open(emulator: &Emulator) -> Raw {
        let (ws, _) = within(connect_async(emulator.ws_url()))
            .await
            .expect("websocket opens");
        Raw {
            ws,
            lines: VecDeque::new(),
        }
    }

    /// Opens and connects with a fresh connection token of `USER`.
    async fn connected(emulator: &Emulator) -> Raw {
        let mut raw = Raw::open(emulator).await;
        let token = emulator.issue_connection_token(USER, None);
        raw.send(&json!({"id": 1, "connect": {"token": token}}).to_string())
            .await;
        let reply = raw.next().await;
        assert!(reply["connect"]["client"].is_string(), "{reply}");
        raw
    }

    async fn send(&mut self, frame: &str) {
        within(self.ws.send(Message::text(frame)))
            .await
            .expect("frame sent");
    }

    /// The next JSON line from the server (frames may hold several).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return line;
            }
            match within(self.ws.next()).await {
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        self.lines
                            .push_back(serde_json::from_str(line).expect("server line is JSON"));
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads until the server's close frame and returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match within(self.ws.next()).await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("connection failed before a close frame: {error}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn get_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = within(request.send()).await.expect("request sent");
    let status = response.status().as_u16();
    let body = within(response.json::<Value>()).await.expect("JSON body");
    (status, body)
}

// ---------------------------------------------------------------------------
// Handshake and framing
// ---------------------------------------------------------------------------

/// A command before `connect` closes the connection with 3501.
#[tokio::test]
async fn command_before_connect_closes_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::open(&emulator).await;
    raw.send(r#"{"id":1,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    assert_eq!(raw.close_code().await, 3501);
    assert_eq!(emulator.close_codes(), vec![3501]);
    assert!(emulator.violations()[0].contains("subscribe before connect"));
}

/// An undecodable line closes with 3501 and is recorded as a violation.
#[tokio::test]
async fn undecodable_line_closes_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send("{not json").await;
    assert_eq!(raw.close_code().await, 3501);
    assert!(emulator.violations()[0].contains("undecodable line"));
}

/// An empty frame, or a blank line between commands, closes with 3501.
#[tokio::test]
async fn empty_frame_and_blank_line_close_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send("").await;
    assert_eq!(raw.close_code().await, 3501);

    let mut raw = Raw::connected(&emulator).await;
    raw.send("{\"id\":2,\"unsubscribe\":{\"channel\":\"api-channel-chat:1\"}}\n\n{\"id\":3,\"unsubscribe\":{\"channel\":\"api-channel-chat:1\"}}")
        .await;
    assert_eq!(raw.next().await["id"], 2);
    assert_eq!(raw.close_code().await, 3501);
}

/// A second `connect` on one connection closes with 3501.
#[tokio::test]
async fn second_connect_closes_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    let token = emulator.issue_connection_token(USER, None);
    raw.send(&json!({"id": 2, "connect": {"token": token}}).to_string())
        .await;
    assert_eq!(raw.close_code().await, 3501);
}

/// A command id with no known request field closes with 3501.
#[tokio::test]
async fn id_without_request_closes_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":5,"frobnicate":{}}"#).await;
    assert_eq!(raw.close_code().await, 3501);
}

/// No connect within the stale timeout closes with 3502.
#[tokio::test]
async fn no_connect_in_time_closes_3502_stale() {
    let emulator = start(EmulatorConfig {
        stale_timeout: Duration::from_millis(200),
        ..quiet()
    })
    .await;
    let mut raw = Raw::open(&emulator).await;
    assert_eq!(raw.close_code().await, 3502);
}

/// An unknown connection token closes with 3500; none at all with 3501.
#[tokio::test]
async fn invalid_connection_token_closes_3500() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::open(&emulator).await;
    raw.send(r#"{"id":1,"connect":{"token":"forged"}}"#).await;
    assert_eq!(raw.close_code().await, 3500);

    let mut raw = Raw::open(&emulator).await;
    raw.send(r#"{"id":1,"connect":{}}"#).await;
    assert_eq!(raw.close_code().await, 3501);
}

/// An expired connection token answers error 109; the rest of that frame
/// is ignored and any later command closes with 3501.
#[tokio::test]
async fn expired_connection_token_answers_109_and_ignores_the_rest_of_the_frame() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::open(&emulator).await;
    let token = emulator.issue_connection_token(USER, Some(Duration::ZERO));
    let frame = format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token}}),
        json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1"}})
    );
    raw.send(&frame).await;
    let reply = raw.next().await;
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["error"]["code"], 109);
    assert_eq!(emulator.subscriber_count("api-channel-chat:1"), 0);
    raw.send(r#"{"id":3,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    assert_eq!(raw.close_code().await, 3501);
}

/// `connect` and `subscribe` pipelined in one frame are answered in order.
#[tokio::test]
async fn connect_and_subscribes_pipelined_in_one_frame() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::open(&emulator).await;
    let token = emulator.issue_connection_token(USER, None);
    let frame = format!(
        "{}\n{}\n{}\n",
        json!({"id": 1, "connect": {"token": token, "name": "test"}}),
        json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1"}}),
        json!({"id": 3, "subscribe": {"channel": "api-channel-info:1"}})
    );
    raw.send(&frame).await;
    let connect = raw.next().await;
    assert_eq!(connect["id"], 1);
    assert_eq!(connect["connect"]["version"], "4.1.0-emulator");
    assert_eq!(connect["connect"]["pong"], true);
    assert!(connect["connect"].get("expires").is_none());
    let first = raw.next().await;
    assert_eq!(first["id"], 2);
    assert_eq!(first["subscribe"]["recoverable"], true);
    assert_eq!(first["subscribe"]["positioned"], true);
    assert!(first["subscribe"]["epoch"].is_string());
    assert_eq!(raw.next().await["id"], 3);
    assert_eq!(emulator.subscriber_count("api-channel-chat:1"), 1);
    assert_eq!(emulator.connection_count(), 1);
    assert_eq!(emulator.received_commands().len(), 3);
}

/// `send` has no handler: close 3508; the `ping` command answers 108.
#[tokio::test]
async fn send_closes_3508_and_ping_command_answers_108() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(raw.next().await["error"]["code"], 108);
    raw.send(r#"{"id":3,"rpc":{"method":"x"}}"#).await;
    assert_eq!(raw.next().await["error"]["code"], 104);
    raw.send(r#"{"send":{"data":{}}}"#).await;
    assert_eq!(raw.close_code().await, 3508);
}

// ---------------------------------------------------------------------------
// Ping / pong
// ---------------------------------------------------------------------------

/// A pong nobody asked for closes with 3501.
#[tokio::test]
async fn unsolicited_pong_closes_3501() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send("{}").await;
    assert_eq!(raw.close_code().await, 3501);
    assert!(emulator.violations()[0].contains("unsolicited pong"));
}

/// Pings arrive every interval; one pong each keeps the connection open.
#[tokio::test]
async fn answered_pings_keep_the_connection() {
    let emulator = start(EmulatorConfig {
        ping_interval: Duration::from_millis(200),
        // Generous: a busy machine must not turn a prompt pong into a 3012.
        pong_timeout: Duration::from_secs(2),
        ..EmulatorConfig::default()
    })
    .await;
    let mut raw = Raw::connected(&emulator).await;
    for sent in 1..=4 {
        let ping = raw.next().await;
        assert_eq!(ping, json!({}));
        // No ping goes out while one waits for its pong, so the count
        // stands at `sent` here (after the pong the next may come any time).
        assert!(emulator.wait_for(|e| e.pings_sent() == sent, STEP).await);
        raw.send("{}").await;
    }
    assert!(emulator.wait_for(|e| e.pongs_received() == 4, STEP).await);
    assert_eq!(emulator.connection_count(), 1);
    assert!(emulator.violations().is_empty());
    assert!(emulator.close_codes().is_empty());
}

/// A ping left unanswered closes with 3012 "no pong".
#[tokio::test]
async fn missing_pong_closes_3012() {
    let emulator = start(EmulatorConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(100),
        ..EmulatorConfig::default()
    })
    .await;
    let mut raw = Raw::connected(&emulator).await;
    assert_eq!(raw.next().await, json!({}));
    assert_eq!(raw.close_code().await, 3012);
}

/// While silent the server sends nothing: the subscribe reply is dropped.
#[tokio::test]
async fn silent_server_drops_replies() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    emulator.set_silent(true);
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    assert!(
        emulator
            .wait_for(|e| e.subscriber_count("api-channel-chat:1") == 1, STEP)
            .await
    );
    emulator.set_silent(false);
    raw.send(r#"{"id":3,"unsubscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    assert_eq!(raw.next().await["id"], 3);
}

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

/// A private channel without a token answers 103; with a token it works.
#[tokio::test]
async fn private_channel_needs_a_subscription_token() {
    let emulator = start(quiet()).await;
    let names = emulator.add_channel("chan", 3);
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": names.private_info}}).to_string())
        .await;
    assert_eq!(raw.next().await["error"]["code"], 103);
    raw.send(
        &json!({"id": 3, "subscribe": {"channel": names.private_info, "token": "forged"}})
            .to_string(),
    )
    .await;
    assert_eq!(raw.next().await["error"]["code"], 103);
    let token = emulator.issue_subscription_token(USER, &names.private_info, None);
    raw.send(
        &json!({"id": 4, "subscribe": {"channel": names.private_info, "token": token}}).to_string(),
    )
    .await;
    let reply = raw.next().await;
    assert_eq!(reply["id"], 4);
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(emulator.subscriber_count(&names.private_info), 1);
}

/// A subscription token of another channel closes the connection with 3500.
#[tokio::test]
async fn subscription_token_of_another_channel_closes_3500() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    let token = emulator.issue_subscription_token(USER, "api-channel-private-chat:1", None);
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": "api-channel-private-chat:2", "token": token}})
            .to_string(),
    )
    .await;
    assert_eq!(raw.close_code().await, 3500);
}

/// Unknown namespace 102, duplicate subscribe 105.
#[tokio::test]
async fn unknown_namespace_102_and_duplicate_105() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"news:1"}}"#)
        .await;
    assert_eq!(raw.next().await["error"]["code"], 102);
    raw.send(r#"{"id":3,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    assert!(raw.next().await["subscribe"].is_object());
    raw.send(r#"{"id":4,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    let reply = raw.next().await;
    assert_eq!(
        (reply["id"].clone(), reply["error"]["code"].clone()),
        (json!(4), json!(105))
    );
}

/// Subscribing past the channel limit answers 106.
#[tokio::test]
async fn channel_limit_answers_106() {
    let emulator = start(EmulatorConfig {
        channel_limit: Some(2),
        ..quiet()
    })
    .await;
    let mut raw = Raw::connected(&emulator).await;
    for (id, channel) in [
        (2, "api-channel-chat:1"),
        (3, "api-channel-chat:2"),
        (4, "api-channel-chat:3"),
    ] {
        raw.send(&json!({"id": id, "subscribe": {"channel": channel}}).to_string())
            .await;
    }
    assert!(raw.next().await["subscribe"].is_object());
    assert!(raw.next().await["subscribe"].is_object());
    assert_eq!(raw.next().await["error"]["code"], 106);
}

/// An expired subscription token answers 109.
#[tokio::test]
async fn expired_subscription_token_answers_109() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    let token =
        emulator.issue_subscription_token(USER, "api-channel-private-chat:1", Some(Duration::ZERO));
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": "api-channel-private-chat:1", "token": token}})
            .to_string(),
    )
    .await;
    assert_eq!(raw.next().await["error"]["code"], 109);
}

/// With a token TTL, replies carry expires/ttl; an unrefreshed subscription
/// gets unsubscribe push 2501 and an unrefreshed connection closes 3005.
#[tokio::test]
async fn token_expiry_is_enforced_after_the_grace() {
    let emulator = start(EmulatorConfig {
        token_ttl: Some(Duration::from_millis(300)),
        expiry_grace: Duration::from_millis(200),
        ..quiet()
    })
    .await;
    let mut raw = Raw::open(&emulator).await;
    let token = emulator.issue_connection_token(USER, Some(Duration::from_millis(900)));
    let sub_token = emulator.issue_subscription_token(USER, "api-channel-private-chat:1", None);
    raw.send(&format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token}}),
        json!({"id": 2, "subscribe": {"channel": "api-channel-private-chat:1", "token": sub_token}})
    ))
    .await;
    let connect = raw.next().await;
    assert_eq!(connect["connect"]["expires"], true);
    assert_eq!(connect["connect"]["ttl"], 1);
    let subscribe = raw.next().await;
    assert_eq!(subscribe["subscribe"]["expires"], true);
    let push = raw.next().await;
    assert_eq!(push["push"]["channel"], "api-channel-private-chat:1");
    assert_eq!(push["push"]["unsubscribe"]["code"], 2501);
    assert_eq!(raw.close_code().await, 3005);
}

/// `refresh` and `sub_refresh` move the deadlines and answer expires/ttl.
#[tokio::test]
async fn refresh_and_sub_refresh_answer_new_ttl() {
    let emulator = start(EmulatorConfig {
        token_ttl: Some(Duration::from_secs(60)),
        ..quiet()
    })
    .await;
    let mut raw = Raw::connected(&emulator).await;
    let sub_token = emulator.issue_subscription_token(USER, "api-channel-private-chat:1", None);
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": "api-channel-private-chat:1", "token": sub_token}})
            .to_string(),
    )
    .await;
    assert_eq!(raw.next().await["subscribe"]["ttl"], 60);
    let token = emulator.issue_connection_token(USER, Some(Duration::from_secs(120)));
    raw.send(&json!({"id": 3, "refresh": {"token": token}}).to_string())
        .await;
    assert_eq!(
        raw.next().await["refresh"],
        json!({"expires": true, "ttl": 120})
    );
    let sub_token = emulator.issue_subscription_token(USER, "api-channel-private-chat:1", None);
    raw.send(
        &json!({"id": 4, "sub_refresh": {"channel": "api-channel-private-chat:1", "token": sub_token}})
            .to_string(),
    )
    .await;
    assert_eq!(raw.next().await["sub_refresh"]["ttl"], 60);
    raw.send(r#"{"id":5,"sub_refresh":{"channel":"api-channel-chat:9","token":"x"}}"#)
        .await;
    assert_eq!(raw.next().await["error"]["code"], 103);
    raw.send(r#"{"id":6,"sub_refresh":{"channel":"api-channel-private-chat:1"}}"#)
        .await;
    assert_eq!(raw.next().await["error"]["code"], 107);
    let expired = emulator.issue_connection_token(USER, Some(Duration::ZERO));
    raw.send(&json!({"id": 7, "refresh": {"token": expired}}).to_string())
        .await;
    assert_eq!(raw.close_code().await, 3005);
}

// ---------------------------------------------------------------------------
// Publications and recovery
// ---------------------------------------------------------------------------

/// Publications reach subscribers in offset order.
#[tokio::test]
async fn publications_arrive_in_offset_order() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    raw.next().await;
    for n in 1..=50 {
        assert_eq!(
            emulator.publish("api-channel-chat:1", demo_chat_message(n, "привет")),
            n as u64
        );
    }
    for n in 1..=50u64 {
        let push = raw.next().await;
        assert_eq!(push["push"]["channel"], "api-channel-chat:1");
        assert_eq!(push["push"]["pub"]["offset"], n);
        assert_eq!(
            push["push"]["pub"]["data"]["type"],
            "channel_chat_message_send"
        );
    }
}

/// Resubscribing with recover + epoch + offset returns exactly the missed
/// publications; a wrong epoch or a gap beyond history does not recover.
#[tokio::test]
async fn recovery_returns_missed_publications() {
    let emulator = start(EmulatorConfig {
        history_size: 10,
        ..quiet()
    })
    .await;
    let channel = "api-channel-chat:1";
    for n in 1..=3 {
        emulator.publish(channel, json!({"type": "t", "data": {"n": n}}));
    }
    let (epoch, top) = emulator.stream_position(channel);
    assert_eq!(top, 3);
    for n in 4..=6 {
        emulator.publish(channel, json!({"type": "t", "data": {"n": n}}));
    }
    let mut raw = Raw::connected(&emulator).await;
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": channel, "recover": true, "epoch": epoch, "offset": 3}})
            .to_string(),
    )
    .await;
    let reply = raw.next().await["subscribe"].clone();
    assert_eq!(reply["recovered"], true);
    assert_eq!(reply["was_recovering"], true);
    assert_eq!(reply["offset"], 3);
    let offsets: Vec<u64> = reply["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![4, 5, 6]);

    // Wrong epoch: not recovered, current position.
    raw.send(
        &json!({"id": 3, "subscribe": {"channel": "api-channel-chat:2", "recover": true, "epoch": "nope", "offset": 1}})
            .to_string(),
    )
    .await;
    let reply = raw.next().await["subscribe"].clone();
    assert_eq!(reply["was_recovering"], true);
    assert!(reply.get("recovered").is_none());
    assert!(reply.get("publications").is_none());

    // A gap longer than the history: not recovered.
    for n in 7..=30 {
        emulator.publish(channel, json!({"type": "t", "data": {"n": n}}));
    }
    raw.send(&json!({"id": 4, "unsubscribe": {"channel": channel}}).to_string())
        .await;
    let mut skipped = 0;
    loop {
        let line = raw.next().await;
        if line["id"] == 4 {
            break;
        }
        skipped += 1;
    }
    assert_eq!(skipped, 24);
    raw.send(
        &json!({"id": 5, "subscribe": {"channel": channel, "recover": true, "epoch": epoch, "offset": 6}})
            .to_string(),
    )
    .await;
    let reply = raw.next().await["subscribe"].clone();
    assert_eq!(reply["was_recovering"], true);
    assert!(reply.get("recovered").is_none());
    assert_eq!(reply["offset"], 30);
}

/// A restarted channel has a new epoch: subscribers are told 2500.
#[tokio::test]
async fn restart_channel_sends_insufficient_state() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    let epoch = raw.next().await["subscribe"]["epoch"].clone();
    emulator.restart_channel("api-channel-chat:1");
    let push = raw.next().await;
    assert_eq!(push["push"]["unsubscribe"]["code"], 2500);
    assert_ne!(
        json!(emulator.stream_position("api-channel-chat:1").0),
        epoch
    );
}

/// `send_raw` reaches the client verbatim; `close_all` sends the code.
#[tokio::test]
async fn send_raw_and_close_all_reach_the_client() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    emulator.send_raw("{\"push\":{\"channel\":\"x\",\"message\":{\"data\":1}}}");
    assert_eq!(raw.next().await["push"]["channel"], "x");
    emulator.close_all(3011, "force reconnect");
    assert_eq!(raw.close_code().await, 3011);
    assert!(emulator.wait_for(|e| e.socket_count() == 0, STEP).await);
}

/// `abort_all` drops the TCP connection without a close frame.
#[tokio::test]
async fn abort_all_drops_without_close_frame() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    emulator.abort_all();
    match within(raw.ws.next()).await {
        None | Some(Err(_)) => {}
        other => panic!("expected a dropped connection, got {other:?}"),
    }
    assert!(emulator.close_codes().is_empty());
}

/// Revoking the access token closes the user's connections with 3500 and
/// makes the pubsub tokens it obtained useless.
#[tokio::test]
async fn revoked_access_token_closes_connections_3500() {
    let emulator = start(quiet()).await;
    let (_, body) = get_json(
        http()
            .get(format!("{}/v1/websocket/token", emulator.api_url()))
            .bearer_auth(TOKEN),
    )
    .await;
    let token = body["data"]["token"].as_str().unwrap().to_owned();
    let mut raw = Raw::open(&emulator).await;
    raw.send(&json!({"id": 1, "connect": {"token": token}}).to_string())
        .await;
    assert!(raw.next().await["connect"].is_object());
    emulator.revoke_access_token(TOKEN);
    assert_eq!(raw.close_code().await, 3500);
    let mut again = Raw::open(&emulator).await;
    again
        .send(&json!({"id": 1, "connect": {"token": token}}).to_string())
        .await;
    assert_eq!(again.close_code().await, 3500);
    let response = within(
        http()
            .get(format!("{}/v1/websocket/token", emulator.api_url()))
            .bearer_auth(TOKEN)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

// ---------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------

/// The token endpoint accepts a user Bearer or app Basic, and answers 401
/// with VK's error body otherwise.
#[tokio::test]
async fn websocket_token_needs_valid_auth() {
    let emulator = start(quiet()).await;
    emulator.add_app("app", "secret");
    let url = format!("{}/v1/websocket/token", emulator.api_url());
    let (status, body) = get_json(http().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(body["data"]["token"].as_str().unwrap().len() > 16);
    let (status, _) = get_json(http().get(&url).basic_auth("app", Some("secret"))).await;
    assert_eq!(status, 200);
    let (status, body) = get_json(http().get(&url).bearer_auth("wrong")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "unauthorized", "error_description": "Not authorized"})
    );
    let (status, _) = get_json(http().get(&url)).await;
    assert_eq!(status, 401);
    let (status, _) = get_json(http().get(&url).basic_auth("app", Some("nope"))).await;
    assert_eq!(status, 401);
    let calls = emulator.rest_calls();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[0].path, "/v1/websocket/token");
}

/// subscription_token omits denied and unknown channels, refuses apps with
/// 403, and its tokens work for subscribing.
#[tokio::test]
async fn subscription_token_omits_denied_channels() {
    let emulator = start(quiet()).await;
    emulator.add_app("app", "secret");
    let names = emulator.add_channel("chan", 5);
    emulator.deny(USER, &names.limited_chat);
    let url = format!(
        "{}/v1/websocket/subscription_token?channels={},{},{},bogus:1",
        emulator.api_url(),
        names.private_info,
        names.limited_chat,
        names.private_channel_points
    );
    let (status, body) = get_json(http().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200);
    let tokens = body["data"]["channel_tokens"].as_array().unwrap();
    let channels: Vec<&str> = tokens
        .iter()
        .map(|t| t["channel"].as_str().unwrap())
        .collect();
    assert_eq!(
        channels,
        vec![
            names.private_info.as_str(),
            names.private_channel_points.as_str()
        ]
    );
    let (status, body) = get_json(http().get(&url).basic_auth("app", Some("secret"))).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "forbidden");

    let mut raw = Raw::connected(&emulator).await;
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": names.private_info, "token": tokens[0]["token"]}})
            .to_string(),
    )
    .await;
    assert!(raw.next().await["subscribe"].is_object());

    let many: Vec<String> = (0..101).map(|n| format!("api-channel-chat:{n}")).collect();
    let url = format!(
        "{}/v1/websocket/subscription_token?channels={}",
        emulator.api_url(),
        many.join(",")
    );
    let (status, body) = get_json(http().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_param"))
    );
}

/// /v1/channel returns the channel with its web_socket_channels; unknown
/// slugs are 404, unknown methods 404 unknown_api_method.
#[tokio::test]
async fn channel_info_lists_websocket_channels() {
    let emulator = start(quiet()).await;
    let names = emulator.add_channel("mychan", 77);
    let (status, body) = get_json(
        http()
            .get(format!(
                "{}/v1/channel?channel_url=mychan",
                emulator.api_url()
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let channel = &body["data"]["channel"];
    assert_eq!(channel["id"], 77);
    assert_eq!(channel["url"], "mychan");
    assert_eq!(channel["web_socket_channels"]["chat"], names.chat.as_str());
    assert_eq!(
        channel["web_socket_channels"]["limited_private_chat"],
        names.limited_private_chat.as_str()
    );
    assert!(body["data"]["stream"]["id"].is_string());
    assert!(body["data"]["owner"]["nick"].is_string());

    let (status, body) = get_json(
        http()
            .get(format!(
                "{}/v1/channel?channel_url=nobody",
                emulator.api_url()
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, body) = get_json(http().get(format!("{}/v1/nope", emulator.api_url()))).await;
    assert_eq!(
        (status, body),
        (404, json!({"error": "unknown_api_method"}))
    );
}

/// fail_next_rest makes the next calls fail with the status, a VK error
/// body and Retry-After, then the API recovers.
#[tokio::test]
async fn fail_next_rest_injects_errors() {
    let emulator = start(quiet()).await;
    emulator.fail_next_rest(2, 429, Some(3));
    let url = format!("{}/v1/websocket/token", emulator.api_url());
    for _ in 0..2 {
        let response = within(http().get(&url).bearer_auth(TOKEN).send())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
        let body: Value = within(response.json()).await.unwrap();
        assert_eq!(body["error"], "ratelimit_exceeded");
    }
    let (status, _) = get_json(http().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(emulator.rest_calls().len(), 3);
}

/// The OAuth endpoint rotates refresh tokens, and the new access token works.
#[tokio::test]
async fn oauth_refresh_rotates_tokens() {
    let emulator = start(EmulatorConfig {
        access_token_lifetime: Some(Duration::from_secs(600)),
        ..quiet()
    })
    .await;
    emulator.add_app("app", "secret");
    emulator.add_refresh_token("refresh-1", 99, "app");
    let refresh = |token: &str| {
        http()
            .post(emulator.oauth_token_url())
            .basic_auth("app", Some("secret"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
    };
    let (status, body) = get_json(refresh("refresh-1")).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, "refresh-1");

    let (status, body) = get_json(refresh("refresh-1")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = get_json(refresh(&next)).await;
    assert_eq!(status, 200);

    let (status, body) = get_json(
        http()
            .post(emulator.oauth_token_url())
            .basic_auth("app", Some("bad"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, _) = get_json(
        http()
            .get(format!("{}/v1/websocket/token", emulator.api_url()))
            .bearer_auth(&access),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        emulator
            .rest_calls()
            .iter()
            .any(|c| c.path == "/oauth/server/token")
    );
}

/// OAuth-issued access tokens stop working after their lifetime.
#[tokio::test]
async fn oauth_access_tokens_expire_after_their_lifetime() {
    let emulator = start(EmulatorConfig {
        access_token_lifetime: Some(Duration::from_millis(100)),
        ..quiet()
    })
    .await;
    emulator.add_app("app", "secret");
    emulator.add_refresh_token("r", 1, "app");
    let asked = tokio::time::Instant::now();
    let (_, body) = get_json(
        http()
            .post(emulator.oauth_token_url())
            .basic_auth("app", Some("secret"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "r")]),
    )
    .await;
    // The token was issued between `asked` and `answered`: it is surely
    // alive until asked + 100 ms and surely dead from answered + 100 ms.
    let answered = tokio::time::Instant::now();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/websocket/token", emulator.api_url());
    let (status, _) = get_json(http().get(&url).bearer_auth(&access)).await;
    if asked.elapsed() < Duration::from_millis(100) {
        assert_eq!(status, 200);
    }
    tokio::time::sleep_until(answered + Duration::from_millis(150)).await;
    let (status, _) = get_json(http().get(&url).bearer_auth(&access)).await;
    assert_eq!(status, 401);
}

/// A triggered reward demand carries its reward's title and price (not
/// `"name": null`), so a client such as `vklive tail` can say what was
/// redeemed; the demo builders do the same.
#[tokio::test]
async fn triggered_reward_demands_carry_the_reward_s_title() {
    use vklive_pubsub::VkEvent;
    use vklive_pubsub::emulator::{DemoUser, Trigger, TriggerEvent, reward_demand_create};
    let emulator = start(quiet()).await;
    emulator.add_channel("demo", 1);
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-points:1"}}"#)
        .await;
    raw.next().await;
    emulator
        .trigger(&Trigger {
            event: TriggerEvent::Reward,
            channel: Some(String::from("api-channel-points:1")),
            ..Trigger::default()
        })
        .unwrap();
    let push = raw.next().await;
    let data = serde_json::value::to_raw_value(&push["push"]["pub"]["data"]).unwrap();
    let VkEvent::RewardDemand(demand) = VkEvent::decode(&data) else {
        panic!("not a reward demand: {push}");
    };
    assert_eq!(demand.reward.name.as_deref(), Some("Заказать трек"));
    assert_eq!(demand.reward.price, Some(500));

    let built = reward_demand_create(1, &DemoUser::new(5, "fan"), "any-reward", "hi");
    let data = serde_json::value::to_raw_value(&built).unwrap();
    let VkEvent::RewardDemand(demand) = VkEvent::decode(&data) else {
        panic!("not a reward demand: {built}");
    };
    assert!(demand.reward.name.is_some_and(|name| !name.is_empty()));
}

/// The control API publishes and reports stats.
#[tokio::test]
async fn control_endpoints_publish_and_report() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    raw.next().await;
    let (status, body) = get_json(
        http()
            .post(format!("{}/publish", emulator.control_url()))
            .json(&json!({"channel": "api-channel-chat:1", "data": {"type": "x", "data": {}}})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"offset": 1})));
    assert_eq!(raw.next().await["push"]["pub"]["offset"], 1);
    let (_, stats) = get_json(http().get(format!("{}/stats", emulator.control_url()))).await;
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["subscribers"]["api-channel-chat:1"], 1);
    assert_eq!(stats["violations"], json!([]));
    assert!(
        emulator.rest_calls().is_empty(),
        "control calls are not REST calls"
    );
}

// ---------------------------------------------------------------------------
// Robustness and extras
// ---------------------------------------------------------------------------

/// A client that cannot keep up (its queue overflows) is closed with 3008.
#[tokio::test]
async fn slow_client_is_closed_3008() {
    let emulator = start(EmulatorConfig {
        outgoing_queue_capacity: 8,
        ..quiet()
    })
    .await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-chat:1"}}"#)
        .await;
    raw.next().await;
    // On this single-threaded runtime the writer cannot run in between.
    for n in 0..100 {
        emulator.publish("api-channel-chat:1", demo_chat_message(n, "flood"));
    }
    assert_eq!(raw.close_code().await, 3008);
    assert_eq!(emulator.close_codes(), vec![3008]);
    assert_eq!(emulator.subscriber_count("api-channel-chat:1"), 0);
}

/// Publications racing a subscribe are neither lost nor duplicated: the
/// pushes continue exactly where the subscribe reply's offset ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_racing_a_subscribe_are_not_lost_or_duplicated() {
    let emulator = start(quiet()).await;
    let channel = "api-channel-chat:1";
    const LAST: u64 = 3000;
    let publisher = {
        let emulator = emulator.clone();
        tokio::spawn(async move {
            for n in 1..=LAST {
                emulator.publish(channel, json!({"type": "t", "data": {"n": n}}));
                if n % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": channel}}).to_string())
        .await;
    let reply = loop {
        let line = raw.next().await;
        if line["id"] == 2 {
            break line;
        }
    };
    let mut expected = reply["subscribe"]["offset"].as_u64().unwrap_or(0) + 1;
    while expected <= LAST {
        let push = raw.next().await;
        assert_eq!(push["push"]["pub"]["offset"], expected, "{push}");
        expected += 1;
    }
    within(publisher).await.unwrap();
}

/// Recovery racing live publications delivers every offset exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_racing_live_publications_delivers_each_offset_once() {
    let emulator = start(EmulatorConfig {
        history_size: 1000,
        ..quiet()
    })
    .await;
    let channel = "api-channel-chat:1";
    for n in 1..=20 {
        emulator.publish(channel, json!({"n": n}));
    }
    let (epoch, _) = emulator.stream_position(channel);
    const LAST: u64 = 400;
    let publisher = {
        let emulator = emulator.clone();
        tokio::spawn(async move {
            for n in 21..=LAST {
                emulator.publish(channel, json!({"n": n}));
                tokio::task::yield_now().await;
            }
        })
    };
    let mut raw = Raw::connected(&emulator).await;
    raw.send(
        &json!({"id": 2, "subscribe": {"channel": channel, "recover": true, "epoch": epoch, "offset": 5}})
            .to_string(),
    )
    .await;
    let reply = raw.next().await;
    let result = &reply["subscribe"];
    let mut seen: Vec<u64> = Vec::new();
    if result["recovered"] == true {
        assert_eq!(result["offset"], 5);
        seen.extend(
            result["publications"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["offset"].as_u64().unwrap()),
        );
    } else {
        // Too many missed already (the publisher was fast): a clean restart point.
        assert_eq!(result["was_recovering"], true);
        seen.push(result["offset"].as_u64().unwrap());
    }
    while seen.last().copied().unwrap_or(5) < LAST {
        let push = raw.next().await;
        seen.push(push["push"]["pub"]["offset"].as_u64().unwrap());
    }
    let first = seen[0];
    let expected: Vec<u64> = (first..=LAST).collect();
    assert_eq!(seen, expected);
    within(publisher).await.unwrap();
}

/// Demo traffic publishes VK-shaped chat messages on the chat channel.
#[tokio::test]
async fn demo_traffic_publishes_chat_messages() {
    let emulator = start(quiet()).await;
    let names = emulator.add_channel("demo", 1);
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": names.chat}}).to_string())
        .await;
    raw.next().await;
    let demo = emulator.start_demo(&names, 500.0);
    for _ in 0..5 {
        let push = raw.next().await;
        let data = &push["push"]["pub"]["data"];
        assert_eq!(data["type"], "channel_chat_message_send", "{push}");
        let message = &data["data"]["chat_message"];
        assert!(message["author"]["nick"].is_string());
        assert!(!message["parts"].as_array().unwrap().is_empty());
    }
    demo.abort();
}

/// An injected upgrade failure answers the HTTP status instead of upgrading.
#[tokio::test]
async fn failed_upgrade_answers_the_injected_status() {
    let emulator = start(quiet()).await;
    emulator.fail_next_ws_upgrade(1, 503);
    match within(connect_async(emulator.ws_url())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    Raw::connected(&emulator).await;
}

/// `unsubscribe_all` sends an unsubscribe push with the given code.
#[tokio::test]
async fn server_unsubscribe_push_carries_the_code() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(r#"{"id":2,"subscribe":{"channel":"api-channel-info:4"}}"#)
        .await;
    raw.next().await;
    emulator.unsubscribe_all("api-channel-info:4", 2000, "server unsubscribe");
    let push = raw.next().await;
    assert_eq!(
        push,
        json!({"push": {"channel": "api-channel-info:4", "unsubscribe": {"code": 2000, "reason": "server unsubscribe"}}})
    );
    assert_eq!(emulator.subscriber_count("api-channel-info:4"), 0);
}

/// With batching off, every line comes in its own frame.
#[tokio::test]
async fn unbatched_writer_sends_one_line_per_frame() {
    let emulator = start(EmulatorConfig {
        batch_frames: false,
        ..quiet()
    })
    .await;
    let mut raw = Raw::open(&emulator).await;
    let token = emulator.issue_connection_token(USER, None);
    raw.send(&format!(
        "{}\n{}",
        json!({"id": 1, "connect": {"token": token}}),
        json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1"}})
    ))
    .await;
    for expected in [1, 2] {
        match within(raw.ws.next()).await {
            Some(Ok(Message::Text(text))) => {
                assert!(!text.as_str().contains('\n'));
                let line: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(line["id"], expected);
            }
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// After `shutdown` open connections get 3001 and new ones are refused.
#[tokio::test]
async fn shutdown_closes_3001_and_stops_listening() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    emulator.shutdown();
    assert_eq!(raw.close_code().await, 3001);
    let refused = async {
        loop {
            if connect_async(emulator.ws_url()).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    within(refused).await;
}

/// A message over 64 KiB closes the connection with 1009.
#[tokio::test]
async fn oversize_message_closes_1009() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    let big = format!(
        "{}",
        json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1", "data": "x".repeat(70_000)}})
    );
    raw.send(&big).await;
    assert_eq!(raw.close_code().await, 1009);
    assert!(emulator.violations()[0].contains("oversize"));
}

// ---------------------------------------------------------------------------
// Benchmark load
// ---------------------------------------------------------------------------

/// `blast` queues prebuilt frames of `per_frame` push lines with offsets that
/// continue the stream, keeps history for recovery, and refuses more frames
/// than a connection's queue holds.
#[tokio::test]
async fn blast_sends_prebuilt_frames_that_continue_the_stream() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1"}}).to_string())
        .await;
    assert_eq!(raw.next().await["id"], 2);
    emulator.publish("api-channel-chat:1", demo_chat_message(1, "до"));
    assert_eq!(raw.next().await["push"]["pub"]["offset"], 1);

    let report = emulator
        .blast("api-channel-chat:1", 250, 100)
        .expect("fits");
    assert_eq!((report.first_offset, report.last_offset), (2, 251));
    assert_eq!((report.frames, report.subscribers), (3, 1));
    let mut sizes = Vec::new();
    let mut offset = 1;
    while sizes.len() < 3 {
        let Some(Ok(Message::Text(frame))) = within(raw.ws.next()).await else {
            panic!("expected a text frame");
        };
        let lines: Vec<Value> = frame
            .as_str()
            .split('\n')
            .map(|line| serde_json::from_str(line).expect("JSON line"))
            .collect();
        for line in &lines {
            offset += 1;
            assert_eq!(line["push"]["channel"], "api-channel-chat:1");
            assert_eq!(line["push"]["pub"]["offset"], offset);
            assert_eq!(
                line["push"]["pub"]["data"]["type"],
                "channel_chat_message_send"
            );
        }
        sizes.push(lines.len());
    }
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(emulator.stream_position("api-channel-chat:1").1, 251);

    // Recovery serves the blasted publications from history.
    let epoch = emulator.stream_position("api-channel-chat:1").0;
    raw.send(&json!({"id": 3, "unsubscribe": {"channel": "api-channel-chat:1"}}).to_string())
        .await;
    assert_eq!(raw.next().await["id"], 3);
    raw.send(
        &json!({"id": 4, "subscribe": {"channel": "api-channel-chat:1", "recover": true, "epoch": epoch, "offset": 241}})
            .to_string(),
    )
    .await;
    let reply = raw.next().await;
    assert_eq!(reply["subscribe"]["recovered"], true, "{reply}");
    assert_eq!(
        reply["subscribe"]["publications"].as_array().unwrap().len(),
        10
    );

    let error = emulator
        .blast("api-channel-chat:1", 100_000, 1)
        .expect_err("more frames than the queue holds");
    assert_eq!(error.kind(), vklive_pubsub::ErrorKind::InvalidArgument);
    assert!(error.to_string().contains("queue"), "{error}");
}

/// `publish_paced` publishes at the asked rate with the send time stamped
/// into the first text part.
#[tokio::test]
async fn paced_publications_carry_their_send_time() {
    let emulator = start(quiet()).await;
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": "api-channel-chat:1"}}).to_string())
        .await;
    assert_eq!(raw.next().await["id"], 2);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let paced = emulator.publish_paced("api-channel-chat:1", 5, 1000.0);
    for offset in 1..=5 {
        let line = raw.next().await;
        assert_eq!(line["push"]["pub"]["offset"], offset);
        let first = &line["push"]["pub"]["data"]["data"]["chat_message"]["parts"][0];
        let stamp = vklive_pubsub::emulator::stamp_of(first["text"]["content"].as_str().unwrap())
            .expect("a stamp");
        assert!(stamp >= before, "{stamp} < {before}");
    }
    assert_eq!(paced.join().unwrap(), 5);
}

// ---------------------------------------------------------------------------
// Chat history over REST, and a server without history
// ---------------------------------------------------------------------------

async fn chat_messages(emulator: &Emulator, query: &str) -> (u16, Value) {
    get_json(
        http()
            .get(format!("{}/v1/chat/messages?{query}", emulator.api_url()))
            .bearer_auth(TOKEN),
    )
    .await
}

fn chat_ids(body: &Value) -> Vec<i64> {
    body["data"]["chat_messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no chat_messages array in {body}"))
        .iter()
        .map(|message| message["id"].as_i64().expect("message id"))
        .collect()
}

/// `GET /v1/chat/messages` answers the channel's last N chat messages,
/// newest first, each the publication's `data.chat_message`; 20 without a
/// `limit`; the call is recorded.
#[tokio::test]
async fn chat_messages_answer_the_last_n_newest_first() {
    let emulator = start(quiet()).await;
    let names = emulator.add_channel("talk", 5);
    let mut published = Vec::new();
    for id in 1..=30 {
        let payload = demo_chat_message(id, &format!("message {id}"));
        published.push(payload["data"]["chat_message"].clone());
        emulator.publish(&names.chat, payload);
    }
    // Not chat messages of this channel's public chat.
    emulator.publish(
        &names.info,
        json!({"type": "channel_follow_create", "data": {}}),
    );
    emulator.publish("api-channel-chat:6", demo_chat_message(99, "elsewhere"));

    let (status, body) = chat_messages(&emulator, "channel_url=talk&limit=3").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(chat_ids(&body), vec![30, 29, 28]);
    assert_eq!(body["data"]["chat_messages"][0], published[29]);
    let (_, body) = chat_messages(&emulator, "channel_url=talk").await;
    assert_eq!(chat_ids(&body), (11..=30).rev().collect::<Vec<_>>());

    emulator.add_channel("silent", 7);
    let (status, body) = chat_messages(&emulator, "channel_url=silent&limit=5").await;
    assert_eq!(
        (status, body),
        (200, json!({"data": {"chat_messages": []}}))
    );
    let calls = emulator.rest_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("GET", "/v1/chat/messages")
    );
    assert_eq!(calls[0].query, "channel_url=talk&limit=3");
}

/// `limit` may be at most 200; 0, 201 or a non-number answer 400
/// `invalid_param`; an unknown slug answers what `GET /v1/channel` answers;
/// no credentials answer 401.
#[tokio::test]
async fn chat_messages_limit_is_capped_at_200() {
    let emulator = start(quiet()).await;
    let names = emulator.add_channel("busy", 3);
    for id in 1..=250 {
        emulator.publish(&names.chat, demo_chat_message(id, "hi"));
    }
    let (status, body) = chat_messages(&emulator, "channel_url=busy&limit=200").await;
    assert_eq!(status, 200);
    assert_eq!(chat_ids(&body), (51..=250).rev().collect::<Vec<_>>());
    for bad in ["0", "201", "-1", "ten", ""] {
        let (status, body) =
            chat_messages(&emulator, &format!("channel_url=busy&limit={bad}")).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_param")),
            "limit={bad}"
        );
    }
    let (status, body) = chat_messages(&emulator, "limit=5").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_param"))
    );

    let unknown = chat_messages(&emulator, "channel_url=nobody&limit=5").await;
    let channel = get_json(
        http()
            .get(format!(
                "{}/v1/channel?channel_url=nobody",
                emulator.api_url()
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(unknown, channel);
    assert_eq!(unknown.0, 404);

    let (status, body) = get_json(http().get(format!(
        "{}/v1/chat/messages?channel_url=busy",
        emulator.api_url()
    )))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
}

/// The chat log keeps what the control API and demo traffic publish, and
/// keeps it with history off: VK serves chat over REST either way.
#[tokio::test]
async fn chat_log_keeps_control_and_demo_messages_without_history() {
    let emulator = start(EmulatorConfig {
        history: false,
        ..quiet()
    })
    .await;
    let names = emulator.add_channel("demo", 1);
    let (status, body) = get_json(
        http()
            .post(format!("{}/publish", emulator.control_url()))
            .json(&json!({"channel": names.chat, "data": demo_chat_message(424_242, "control")})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"offset": 0})));
    let demo = emulator.start_demo(&names, 500.0);
    let ids = within(async {
        loop {
            let (_, body) = chat_messages(&emulator, "channel_url=demo&limit=200").await;
            let ids = chat_ids(&body);
            if ids.len() >= 5 {
                return ids;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    demo.abort();
    assert_eq!(ids.last(), Some(&424_242), "{ids:?}");
    // A deleted message leaves the log.
    emulator.publish(
        &names.chat,
        vklive_pubsub::emulator::chat_message_delete(424_242),
    );
    let (_, body) = chat_messages(&emulator, "channel_url=demo&limit=200").await;
    assert!(!chat_ids(&body).contains(&424_242));
}

/// With history off the server is Centrifugo without history: no offset on
/// publications (blasted ones included), no stream fields in subscribe
/// replies, and a recovering subscribe answers `was_recovering` with
/// `recovered` false and no publications.
#[tokio::test]
async fn without_history_publications_have_no_offset_and_recovery_fails() {
    let emulator = start(EmulatorConfig {
        history: false,
        ..quiet()
    })
    .await;
    let channel = "api-channel-chat:1";
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": channel}}).to_string())
        .await;
    assert_eq!(raw.next().await, json!({"id": 2, "subscribe": {}}));
    assert_eq!(emulator.publish(channel, demo_chat_message(1, "one")), 0);
    let push = raw.next().await;
    assert_eq!(push["push"]["pub"]["data"]["data"]["chat_message"]["id"], 1);
    assert!(push["push"]["pub"].get("offset").is_none(), "{push}");
    let report = emulator.blast(channel, 3, 2).expect("blast fits");
    assert_eq!((report.first_offset, report.last_offset), (0, 0));
    for _ in 0..3 {
        let push = raw.next().await;
        assert!(push["push"]["pub"]["data"].is_object(), "{push}");
        assert!(push["push"]["pub"].get("offset").is_none(), "{push}");
    }
    assert_eq!(emulator.stream_position(channel).1, 0);

    // A client that had a position (from a server with history) asks to
    // recover: Centrifugo echoes was_recovering and recovers nothing.
    let mut other = Raw::connected(&emulator).await;
    other
        .send(
            &json!({"id": 2, "subscribe": {"channel": channel, "recover": true, "epoch": "old", "offset": 1}})
                .to_string(),
        )
        .await;
    assert_eq!(
        other.next().await,
        json!({"id": 2, "subscribe": {"was_recovering": true}})
    );
    assert!(emulator.violations().is_empty());
}

/// `set_history` and `POST /_emulator/history` switch history at run time;
/// a switch restarts the stream, so a position from before never recovers
/// across it.
#[tokio::test]
async fn history_switches_at_run_time_and_over_the_control_route() {
    let emulator = start(quiet()).await;
    let channel = "api-channel-chat:1";
    let mut raw = Raw::connected(&emulator).await;
    raw.send(&json!({"id": 2, "subscribe": {"channel": channel}}).to_string())
        .await;
    let reply = raw.next().await["subscribe"].clone();
    assert_eq!(reply["recoverable"], true);
    let first_epoch = reply["epoch"].clone();
    emulator.publish(channel, demo_chat_message(1, "with history"));
    assert_eq!(raw.next().await["push"]["pub"]["offset"], 1);

    emulator.set_history(false);
    assert_eq!(
        emulator.publish(channel, demo_chat_message(2, "without")),
        0
    );
    let push = raw.next().await;
    assert!(push["push"]["pub"].get("offset").is_none(), "{push}");
    let mut other = Raw::connected(&emulator).await;
    other
        .send(
            &json!({"id": 2, "subscribe": {"channel": channel, "recover": true, "epoch": first_epoch, "offset": 1}})
                .to_string(),
        )
        .await;
    assert_eq!(
        other.next().await,
        json!({"id": 2, "subscribe": {"was_recovering": true}})
    );

    let history = |enabled: Value| {
        http()
            .post(format!("{}/history", emulator.control_url()))
            .json(&json!({ "enabled": enabled }))
    };
    assert_eq!(get_json(history(json!(true))).await, (200, json!({})));
    let (_, stats) = get_json(http().get(format!("{}/stats", emulator.control_url()))).await;
    assert_eq!(stats["history"], true);
    assert_eq!(emulator.publish(channel, demo_chat_message(3, "again")), 1);
    assert_eq!(raw.next().await["push"]["pub"]["offset"], 1);
    let (epoch, _) = emulator.stream_position(channel);
    assert_ne!(json!(epoch), first_epoch);
    let mut third = Raw::connected(&emulator).await;
    third
        .send(
            &json!({"id": 2, "subscribe": {"channel": channel, "recover": true, "epoch": first_epoch, "offset": 1}})
                .to_string(),
        )
        .await;
    let reply = third.next().await["subscribe"].clone();
    assert_eq!(reply["was_recovering"], true);
    assert!(reply.get("recovered").is_none(), "{reply}");
    assert_eq!(
        (reply["epoch"].as_str(), reply["offset"].as_u64()),
        (Some(epoch.as_str()), Some(1))
    );

    let (status, body) = get_json(history(json!("off"))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_param"))
    );
    assert_eq!(get_json(history(json!(false))).await, (200, json!({})));
    let (_, stats) = get_json(http().get(format!("{}/stats", emulator.control_url()))).await;
    assert_eq!(stats["history"], false);
}

/// `VkApi::chat_messages` decodes the emulator's answer into typed
/// messages, skipping one that does not decode instead of failing.
#[tokio::test]
async fn vk_api_chat_messages_decodes_the_emulator_answer() {
    use std::sync::Arc;
    use vklive_pubsub::auth::{Authorization, VkApi};

    let emulator = start(quiet()).await;
    let names = emulator.add_channel("talk", 5);
    emulator.publish(&names.chat, demo_chat_message(1, "первое"));
    emulator.publish(
        &names.chat,
        json!({"type": "channel_chat_message_send", "data": {"chat_message": {"id": "not a number"}}}),
    );
    emulator.publish(&names.chat, demo_chat_message(3, "third 👋"));
    let api =
        VkApi::new(&emulator.api_url(), Arc::new(Authorization::user(TOKEN))).expect("API client");
    let messages = within(api.chat_messages("talk", 200))
        .await
        .expect("chat messages");
    let got: Vec<(i64, String)> = messages
        .iter()
        .map(|message| (message.id, message.plain_text()))
        .collect();
    assert_eq!(
        got,
        vec![(3, String::from("third 👋")), (1, String::from("первое"))]
    );
    assert_eq!(
        messages[0].author.as_ref().map(|a| a.nick.as_str()),
        Some("viewer")
    );
    assert!(messages[0].created_at.is_some());
    let call = emulator.rest_calls().pop().expect("a REST call");
    assert_eq!(call.query, "channel_url=talk&limit=200");

    let error = within(api.chat_messages("nobody", 10))
        .await
        .expect_err("unknown slug");
    assert_eq!(error.status(), Some(404));
    assert!(
        error.to_string().contains("GET /v1/chat/messages"),
        "{error}"
    );
}
