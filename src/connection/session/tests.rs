//! The session driven directly: frames and answers in, lines, actions and
//! events out, time passed in. No socket, no sleep.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::link::CLOSE_LINGER;
use super::*;
use crate::connection::Backoff;
use crate::connection::command::Command;
use crate::delivery::{Delivery, Queued, Recovery};
use crate::error::{Error, ErrorKind};
use crate::event::{ChatMessage, VkEvent, WebSocketChannels};
use crate::protocol::Frame;
use crate::secret::Secret;

const CHAT: &str = "api-channel-chat:1";
const INFO: &str = "api-channel-info:1";
/// 2023-11-14T22:13:20Z, the session's wall clock at `Harness::new`.
const START_MILLIS: i64 = 1_700_000_000_000;

struct Harness {
    session: Session,
    now: Instant,
}

fn secret(text: &str) -> Secret {
    Secret::from(text.to_owned())
}

fn api_error(status: u16) -> Error {
    Error::new(
        ErrorKind::from_status(status),
        format!("GET /v1/test: {status}"),
    )
}

impl Harness {
    fn new(channels: &[(&str, Option<&str>)]) -> Harness {
        Harness::with_config(Config::default(), channels)
    }

    fn with_config(config: Config, channels: &[(&str, Option<&str>)]) -> Harness {
        let now = Instant::now();
        let channels = channels
            .iter()
            .map(|(name, slug)| (name.to_string(), slug.map(str::to_owned)))
            .collect();
        Harness {
            session: Session::new(config.clamped(), channels, now, START_MILLIS, 7),
            now,
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.session.handle_timeout(self.now);
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.session.poll_action()).collect()
    }

    /// Every line sent since the last call, parsed.
    fn sent(&mut self) -> Vec<Value> {
        self.session
            .take_outgoing()
            .iter()
            .flat_map(|frame| frame.split('\n').map(str::to_owned).collect::<Vec<_>>())
            .map(|line| serde_json::from_str(&line).unwrap())
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        self.session
            .take_deliveries()
            .flat_map(Queued::into_events)
            .collect()
    }

    fn frame(&mut self, text: &str) {
        self.session
            .handle_frame(self.now, &Frame::from(text.to_owned()));
    }

    fn reply(&mut self, value: Value) {
        self.frame(&value.to_string());
    }

    /// Answers the token requests and the dial the session asks for; returns
    /// the lines sent on the new link (connect and subscribes).
    fn open_link(&mut self) -> Vec<Value> {
        self.session.handle_timeout(self.now);
        loop {
            let actions = self.actions();
            assert!(!actions.is_empty(), "the session is stuck");
            for action in actions {
                match action {
                    Action::FetchConnectionToken { attempt } => self
                        .session
                        .handle_connection_token(self.now, attempt, Ok(secret("conn"))),
                    Action::FetchChannelTokens {
                        attempt,
                        purpose,
                        channels,
                    } => self.session.handle_channel_tokens(
                        self.now,
                        attempt,
                        purpose,
                        channels,
                        Ok(HashMap::new()),
                    ),
                    Action::Dial { attempt } => {
                        self.session.handle_dialed(self.now, attempt, Ok(()));
                        return self.sent();
                    }
                    // The end of the previous link.
                    Action::CloseSocket { linger: false } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    /// Opens a link, answers connect (ping 25 s, pong) and every subscribe
    /// with `result`; returns the subscribe requests.
    fn connect_with(&mut self, subscribe_result: Value) -> Vec<Value> {
        let lines = self.open_link();
        assert!(lines[0]["connect"].is_object(), "{lines:?}");
        self.reply(
            json!({"id": lines[0]["id"], "connect": {"client": "c1", "ping": 25, "pong": true}}),
        );
        let subscribes: Vec<Value> = lines[1..].to_vec();
        for subscribe in &subscribes {
            self.reply(json!({"id": subscribe["id"], "subscribe": subscribe_result}));
        }
        subscribes
    }

    fn connect(&mut self) -> Vec<Value> {
        self.connect_with(json!({}))
    }

    /// Ends the link the way a dropped TCP connection does, then waits out
    /// the backoff.
    fn lose_link(&mut self) {
        self.session
            .handle_closed(self.now, None, "connection lost".into());
        let until = self.session.poll_timeout().unwrap();
        self.now = until;
    }
}

fn publication(channel: &str, offset: u64, data: Value) -> String {
    json!({"push": {"channel": channel, "pub": {"data": data, "offset": offset}}}).to_string()
}

fn chat(id: i64, seconds: i64) -> Value {
    json!({"type": "channel_chat_message_send",
           "data": {"chat_message": {"id": id, "created_at": seconds, "parts": []}}})
}

fn chat_message(id: i64, seconds: i64) -> ChatMessage {
    serde_json::from_value(chat(id, seconds)["data"]["chat_message"].clone()).unwrap()
}

/// Publications as (offset, chat id or -1, backfilled).
fn publications(events: &[Event]) -> Vec<(u64, i64, bool)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Publication(p) => Some((
                p.offset,
                match &p.event {
                    VkEvent::ChatMessage(m) => m.id,
                    _ => -1,
                },
                p.backfilled,
            )),
            _ => None,
        })
        .collect()
}

fn gaps(events: &[Event]) -> Vec<(String, Option<u64>)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Gap { channel, missed } => Some((channel.clone(), *missed)),
            _ => None,
        })
        .collect()
}

fn recovery_of(events: &[Event], channel: &str) -> Option<Recovery> {
    events.iter().find_map(|event| match event {
        Event::Subscribed {
            channel: c,
            recovery,
        } if c == channel => Some(*recovery),
        _ => None,
    })
}

fn finished(actions: &[Action]) -> Option<&CloseReason> {
    actions.iter().find_map(|action| match action {
        Action::Finish(reason) => Some(reason),
        _ => None,
    })
}

// --- connecting -----------------------------------------------------------

#[test]
fn fetches_the_connection_token_then_channel_tokens_and_pipelines_connect_with_subscribes() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    h.session.handle_timeout(h.now);
    let actions = h.actions();
    assert!(matches!(
        actions[..],
        [Action::FetchConnectionToken { attempt: 1 }]
    ));
    h.session
        .handle_connection_token(h.now, 1, Ok(secret("conn")));
    let actions = h.actions();
    let [Action::FetchChannelTokens { channels, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(channels.len(), 2);
    let tokens = HashMap::from([(CHAT.to_owned(), secret("sub"))]);
    h.session
        .handle_channel_tokens(h.now, 1, Purpose::Subscribe, channels.clone(), Ok(tokens));
    assert!(matches!(h.actions()[..], [Action::Dial { attempt: 1 }]));
    h.session.handle_dialed(h.now, 1, Ok(()));
    let frames = h.session.take_outgoing();
    assert_eq!(frames.len(), 1, "one frame for connect and both subscribes");
    let lines: Vec<Value> = frames[0]
        .split('\n')
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["connect"]["token"], "conn");
    let chat = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .unwrap();
    assert_eq!(chat["subscribe"]["token"], "sub");
    let info = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == INFO)
        .unwrap();
    assert!(
        info["subscribe"].get("token").is_none(),
        "no token, no field"
    );
    assert_eq!(h.session.state(), &State::Connecting);
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c1", "ping": 25, "pong": true}}));
    assert_eq!(h.session.state(), &State::Connected);
    assert!(matches!(&h.events()[..], [Event::Connected { client }] if client == "c1"));
}

#[test]
fn a_401_for_the_connection_token_finishes_at_once() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(401)));
    let actions = h.actions();
    assert!(
        matches!(finished(&actions), Some(CloseReason::Failed(e)) if e.kind() == ErrorKind::Unauthorized)
    );
    assert!(h.session.is_finished());
}

#[test]
fn a_503_for_a_token_retries_after_backoff_and_answers_for_an_old_attempt_are_ignored() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(503)));
    assert!(matches!(&h.events()[..], [Event::Disconnected { .. }]));
    let retry_at = h.session.poll_timeout().unwrap();
    assert!(retry_at >= h.now + Duration::from_millis(500));
    h.advance(retry_at - h.now);
    assert!(matches!(
        h.actions()[..],
        [Action::FetchConnectionToken { attempt: 2 }]
    ));
    // A late answer for attempt 1 changes nothing.
    h.session
        .handle_connection_token(h.now, 1, Ok(secret("old")));
    assert!(h.actions().is_empty());
}

#[test]
fn a_lost_connect_reply_gives_up_before_centrifugos_stale_timeout() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.open_link();
    let deadline = h.session.poll_timeout().unwrap();
    assert!(
        deadline - h.now < Duration::from_secs(10),
        "below the 10 s stale timeout"
    );
    h.advance(deadline - h.now);
    let actions = h.actions();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::CloseSocket { linger: false }))
    );
    assert!(finished(&actions).is_none(), "retried, not given up");
    assert!(matches!(&h.events()[..], [Event::Disconnected { .. }]));
}

#[test]
fn a_terminal_connect_error_finishes_and_a_temporary_one_retries() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(
        json!({"id": lines[0]["id"], "error": {"code": 3500, "message": "x", "temporary": true}}),
    );
    assert!(finished(&h.actions()).is_none());
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "error": {"code": 103, "message": "permission denied"}}));
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Failed(_))
    ));
}

// --- pings and the watchdog ------------------------------------------------

#[test]
fn answers_exactly_the_ping_line_and_skips_other_lines_without_an_id() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.sent();
    h.frame("{}");
    assert_eq!(h.sent(), [json!({})]);
    for line in [
        "[]",
        r#"{"foo":1}"#,
        r#"{"push":null}"#,
        r#"{"id":0}"#,
        "null",
        "{ } x",
    ] {
        h.frame(line);
        assert!(h.sent().is_empty(), "no pong for {line}");
    }
    assert!(h.session.is_open(), "odd lines end nothing");
    // A frame with a ping among other lines: one pong.
    h.frame("{\"foo\":1}\n{}\n[]");
    assert_eq!(h.sent(), [json!({})]);
}

#[test]
fn no_pong_when_the_server_does_not_ask_for_one() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.frame("{}");
    assert!(h.sent().is_empty());
}

#[test]
fn a_silent_link_is_dead_after_ping_plus_margin_unless_reading_is_paused() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.actions();
    h.events();
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(35))
    );
    h.session.set_paused(h.now, true);
    h.advance(Duration::from_secs(60));
    assert!(h.session.is_open(), "our pause is not the server's silence");
    h.session.set_paused(h.now, false);
    h.advance(Duration::from_secs(34));
    assert!(h.session.is_open());
    h.advance(Duration::from_secs(1));
    assert!(!h.session.is_open());
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected { code: None, .. }]
    ));
}

#[test]
fn the_servers_ping_interval_is_clamped_so_the_watchdog_always_runs() {
    for (ping, watchdog) in [(0u64, 35u64), (4_294_967_295, 610)] {
        let mut h = Harness::new(&[]);
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": ping}}));
        assert_eq!(
            h.session.poll_timeout(),
            Some(h.now + Duration::from_secs(watchdog)),
            "ping {ping}"
        );
    }
}

#[test]
fn backoff_keeps_growing_when_the_server_closes_right_after_every_connect() {
    let mut h = Harness::new(&[]);
    for round in 1..=4 {
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        assert_eq!(h.session.failures, round, "no reset after a short link");
        h.now = h.session.poll_timeout().unwrap();
    }
    // A link that stayed up resets it.
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.frame("{}");
    h.now += Duration::from_secs(31);
    h.session
        .handle_closed(h.now, Some(3001), "shutdown".into());
    assert_eq!(h.session.failures, 1);
}

#[test]
fn healthy_after_is_how_long_a_link_must_live_to_reset_the_backoff() {
    for (healthy_after, failures) in [(Duration::from_secs(60), 2), (Duration::from_secs(20), 1)] {
        let config = Config {
            healthy_after,
            ..Config::default()
        };
        let mut h = Harness::with_config(config, &[]);
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        h.now = h.session.poll_timeout().unwrap();
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.frame("{}");
        h.now += Duration::from_secs(21);
        h.frame("{}");
        h.now += Duration::from_secs(21);
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        assert_eq!(
            h.session.failures, failures,
            "a link of 42 s with healthy_after {healthy_after:?}"
        );
    }
}

#[test]
fn the_configured_backoff_is_the_wait_before_the_next_attempt_or_what_the_server_asks() {
    let config = Config {
        backoff: Backoff::new(Duration::from_secs(7), Duration::from_secs(7)),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(503)));
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(7))
    );
    h.advance(Duration::from_secs(7));
    h.actions();
    let asked = api_error(429).with_retry_after(Some(Duration::from_secs(30)));
    h.session.handle_connection_token(h.now, 2, Err(asked));
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "the server's Retry-After when it is longer"
    );
}

// --- closing -----------------------------------------------------------------

#[test]
fn reconnect_codes_reconnect_terminal_codes_finish_and_3500_gets_one_fresh_token() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.session.handle_closed(h.now, Some(3012), "no pong".into());
    assert!(finished(&h.actions()).is_none());
    h.now = h.session.poll_timeout().unwrap();
    h.connect();
    h.session
        .handle_closed(h.now, Some(3500), "invalid token".into());
    assert!(
        finished(&h.actions()).is_none(),
        "one retry with a fresh token"
    );
    h.now = h.session.poll_timeout().unwrap();
    h.connect();
    h.session
        .handle_closed(h.now, Some(3500), "invalid token".into());
    assert!(finished(&h.actions()).is_some());
    let mut h = Harness::new(&[]);
    h.connect();
    h.frame(r#"{"push":{"disconnect":{"code":3501,"reason":"bad request"}}}"#);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Failed(_))
    ));
}

#[test]
fn close_lingers_for_the_servers_close_frame_then_finishes() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    assert!(matches!(
        h.actions()[..],
        [Action::CloseSocket { linger: true }]
    ));
    // What the server still sends is delivered.
    h.frame(&publication(CHAT, 0, json!({"type": "x"})));
    h.session.handle_closed(h.now, Some(1000), String::new());
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
    assert_eq!(publications(&h.events()).len(), 1);

    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    h.actions();
    h.advance(CLOSE_LINGER);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
}

#[test]
fn close_while_waiting_to_reconnect_finishes_at_once() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.lose_link();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
}

// --- tokens ------------------------------------------------------------------

#[test]
fn tokens_are_refreshed_at_eighty_percent_of_their_life() {
    let mut h = Harness::new(&[(CHAT, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25, "expires": true, "ttl": 10}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"expires": true, "ttl": 20}}));
    h.actions();
    h.frame("{}");
    h.sent();
    h.advance(Duration::from_secs(8));
    let actions = h.actions();
    let [Action::FetchConnectionToken { attempt }] = actions[..] else {
        panic!("{actions:?}")
    };
    h.session
        .handle_connection_token(h.now, attempt, Ok(secret("fresh")));
    let sent = h.sent();
    assert_eq!(sent[0]["refresh"]["token"], "fresh");
    h.reply(json!({"id": sent[0]["id"], "refresh": {"expires": true, "ttl": 10}}));
    h.frame("{}");
    h.advance(Duration::from_secs(8));
    let actions = h.actions();
    let channels = actions
        .iter()
        .find_map(|a| match a {
            Action::FetchChannelTokens {
                purpose: Purpose::Refresh,
                channels,
                ..
            } => Some(channels.clone()),
            _ => None,
        })
        .expect("a channel token refresh");
    h.session.handle_channel_tokens(
        h.now,
        attempt,
        Purpose::Refresh,
        channels,
        Ok(HashMap::from([(CHAT.to_owned(), secret("sub2"))])),
    );
    let sent = h.sent();
    let sub_refresh = sent
        .iter()
        .find(|l| l.get("sub_refresh").is_some())
        .unwrap();
    assert_eq!(sub_refresh["sub_refresh"]["token"], "sub2");
}

#[test]
fn an_expired_subscription_token_is_fetched_again_after_backoff() {
    let mut h = Harness::new(&[(CHAT, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "error": {"code": 109, "message": "token expired"}}));
    h.actions();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::FetchChannelTokens { purpose: Purpose::Resubscribe, channels, .. } if channels[0].as_ref() == CHAT)), "{actions:?}");
}

#[test]
fn temporary_subscribe_errors_retry_and_permanent_ones_fail_only_that_channel() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    let id_of = |channel: &str| {
        lines
            .iter()
            .find(|l| l["subscribe"]["channel"] == channel)
            .unwrap()["id"]
            .clone()
    };
    h.reply(json!({"id": id_of(CHAT), "error": {"code": 111, "message": "too many", "temporary": true}}));
    h.reply(json!({"id": id_of(INFO), "error": {"code": 103, "message": "permission denied"}}));
    let events = h.events();
    assert!(events.iter().any(
        |e| matches!(e, Event::SubscriptionFailed { channel, code: 103, .. } if channel == INFO)
    ));
    h.sent();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let sent = h.sent();
    assert!(
        sent.iter().any(|l| l["subscribe"]["channel"] == CHAT),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|l| l["subscribe"]["channel"] == INFO));
}

// --- publications and recovery ---------------------------------------------------

#[test]
fn publications_arrive_once_in_order_and_a_repeated_offset_is_dropped() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 10}));
    h.events();
    let frame = [11, 12, 12, 13]
        .map(|offset| publication(CHAT, offset, chat(offset as i64, 1)))
        .join("\n");
    h.frame(&frame);
    let events = h.events();
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [11, 12, 13]
    );
    assert!(gaps(&events).is_empty());
}

#[test]
fn a_frame_goes_out_as_one_batch_per_run_of_a_channel_with_events_in_their_place() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 10}));
    h.events();
    // Two runs of CHAT around one of INFO, a repeated offset, and an offset
    // going back (a new stream: a gap, then the publication).
    let lines = [
        (CHAT, 11),
        (CHAT, 12),
        (CHAT, 12),
        (INFO, 15),
        (CHAT, 13),
        (CHAT, 3),
        (CHAT, 4),
    ];
    // Payloads that are most of the frame: it stays shared, not copied.
    let text = "x".repeat(500);
    let frame = lines
        .map(|(channel, offset)| publication(channel, offset, json!({"type": "x", "text": text})))
        .join("\n");
    h.frame(&frame);
    let deliveries: Vec<Queued> = h.session.take_deliveries().collect();
    let shape: Vec<String> = deliveries
        .iter()
        .map(|queued| match queued {
            Queued::Batch(batch) => format!("batch of {}", batch.len()),
            Queued::One(Delivery::Publication(_)) => "publication".to_owned(),
            Queued::One(Delivery::Event(_)) => "event".to_owned(),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "batch of 2",
            "batch of 1",
            "batch of 1",
            "event",
            "batch of 2"
        ],
        "CHAT 11 12 | INFO 15 | CHAT 13 | gap | CHAT 3 4 (3 delivered alone, 4 joins it)"
    );
    let events: Vec<Event> = deliveries
        .into_iter()
        .flat_map(Queued::into_events)
        .collect();
    let delivered: Vec<(String, u64)> = events
        .iter()
        .filter_map(|event| match event {
            Event::Publication(p) => Some((p.channel.to_string(), p.offset)),
            _ => None,
        })
        .collect();
    let expected = [
        (CHAT, 11),
        (CHAT, 12),
        (INFO, 15),
        (CHAT, 13),
        (CHAT, 3),
        (CHAT, 4),
    ]
    .map(|(channel, offset)| (channel.to_owned(), offset));
    assert_eq!(delivered, expected);
    assert_eq!(gaps(&events), [(CHAT.to_owned(), None)]);
}

#[test]
fn an_offset_going_backwards_is_a_new_stream_reported_as_a_gap_not_silence() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 0}));
    h.events();
    for offset in [u64::MAX, 0, 1, 2, 3] {
        h.frame(&publication(CHAT, offset, json!({"type": "x"})));
    }
    let events = h.events();
    let offsets: Vec<u64> = publications(&events).iter().map(|p| p.0).collect();
    assert_eq!(offsets, [u64::MAX, 0, 1, 2, 3], "nothing silenced");
    assert_eq!(
        gaps(&events),
        [(CHAT.to_owned(), None)],
        "one reset, reported"
    );
}

#[test]
fn a_malformed_line_is_skipped_and_the_next_lines_still_count() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.events();
    h.frame(&format!(
        "{{not json\n{}\n{}",
        publication(CHAT, 0, json!({"type": "x"})),
        "{}"
    ));
    assert_eq!(publications(&h.events()).len(), 1);
    assert!(!h.sent().is_empty(), "the ping after it was answered");
    for _ in 0..10_000 {
        h.frame("garbage");
    }
    assert!(h.session.is_open());
}

#[test]
fn a_publication_whose_payload_is_not_json_is_delivered_raw_and_its_offset_counts() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 6}));
    h.events();
    // The shape Centrifugo writes, with a payload that is not JSON: the cut
    // takes its channel and offset, the payload's decoder finds it broken.
    let broken =
        format!(r#"{{"push":{{"channel":"{CHAT}","pub":{{"data":{{"a":tru}},"offset":7}}}}}}"#);
    h.frame(&format!("{broken}\n{}", publication(CHAT, 8, chat(8, 1))));
    let events = h.events();
    assert_eq!(publications(&events), [(7, -1, false), (8, 8, false)]);
    let Event::Publication(first) = &events[0] else {
        panic!("{events:?}");
    };
    let VkEvent::Unknown(unknown) = &first.event else {
        panic!("{:?}", first.event);
    };
    assert_eq!(
        serde_json::from_str::<String>(unknown.raw.get()).unwrap(),
        r#"{"a":tru}"#,
        "the payload is kept as received"
    );
    assert!(gaps(&events).is_empty());
}

#[test]
fn a_recovered_resubscription_delivers_the_missed_publications_after_subscribed() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.frame(&publication(CHAT, 6, json!({"type": "x"})));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    let subscribe = &lines[1]["subscribe"];
    assert_eq!(
        (
            subscribe["recover"].clone(),
            subscribe["epoch"].clone(),
            subscribe["offset"].clone()
        ),
        (json!(true), json!("e"), json!(6))
    );
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 6,
        "was_recovering": true, "recovered": true,
        "publications": [{"data": {"type": "x"}, "offset": 7}, {"data": {"type": "x"}, "offset": 8}]}}));
    let events = h.events();
    assert_eq!(recovery_of(&events, CHAT), Some(Recovery::Recovered));
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [7, 8]
    );
    assert!(gaps(&events).is_empty());
    h.frame(&publication(CHAT, 8, json!({"type": "x"})));
    h.frame(&publication(CHAT, 9, json!({"type": "x"})));
    assert_eq!(
        publications(&h.events())
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [9]
    );
}

/// An info channel at offset 5 that lost its link, resubscribed, and found
/// the stream at 905: recovery failed; returns the history request sent.
fn failed_recovery_at_905() -> (Harness, Value) {
    let mut h = Harness::new(&[(INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 905, "was_recovering": true}}));
    let sent = h.sent();
    let history = sent
        .iter()
        .find(|l| l.get("history").is_some())
        .expect("a history request")
        .clone();
    assert_eq!(history["history"]["channel"], INFO);
    assert_eq!(
        history["history"]["since"],
        json!({"offset": 5, "epoch": "e"})
    );
    (h, history)
}

fn history_page(id: &Value, offsets: std::ops::RangeInclusive<u64>) -> Value {
    let publications: Vec<Value> = offsets
        .map(|offset| json!({"data": {"type": "x"}, "offset": offset}))
        .collect();
    json!({"id": id, "history": {"publications": publications, "epoch": "e", "offset": 905}})
}

#[test]
fn a_failed_recovery_without_history_access_reports_the_exact_number_missed() {
    let (mut h, history) = failed_recovery_at_905();
    let events = h.events();
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::Failed));
    // Live publications wait for the catch-up.
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    assert!(publications(&h.events()).is_empty());
    h.reply(json!({"id": history["id"], "error": {"code": 103, "message": "permission denied"}}));
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(900))]);
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [906]
    );
}

#[test]
fn a_failed_recovery_delivers_what_the_servers_history_still_has_and_counts_the_rest() {
    let (mut h, history) = failed_recovery_at_905();
    h.events();
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    // The server keeps 300: offsets 606 to 905, in pages of up to 1000.
    h.reply(history_page(&history["id"], 606..=905));
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(600))]);
    let offsets: Vec<u64> = publications(&events).iter().map(|p| p.0).collect();
    assert_eq!(offsets, (606..=906).collect::<Vec<_>>());
    let gap_at = events
        .iter()
        .position(|e| matches!(e, Event::Gap { .. }))
        .unwrap();
    assert!(
        events[..gap_at]
            .iter()
            .all(|e| !matches!(e, Event::Publication(_)))
    );
}

#[test]
fn a_long_catch_up_asks_page_after_page() {
    let mut h = Harness::new(&[(INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 2505, "was_recovering": true}}));
    let mut delivered = 0;
    let mut since = 5;
    loop {
        let sent = h.sent();
        let Some(history) = sent.iter().find(|l| l.get("history").is_some()) else {
            break;
        };
        assert_eq!(history["history"]["since"]["offset"], since);
        let last = (since + 1000).min(2505);
        let mut page = history_page(&history["id"], since + 1..=last);
        page["history"]["offset"] = json!(2505);
        h.reply(page);
        since = last;
        delivered += publications(&h.events()).len();
    }
    assert_eq!(delivered, 2500);
    assert_eq!(since, 2505);
}

#[test]
fn a_link_lost_during_a_catch_up_reports_the_rest_and_delivers_what_was_held() {
    let (mut h, _history) = failed_recovery_at_905();
    h.events();
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    h.session
        .handle_closed(h.now, None, "connection lost".into());
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(900))]);
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [906]
    );
}

#[test]
fn a_server_without_history_reports_a_possible_loss_on_resubscribe_not_a_first_subscription() {
    let mut h = Harness::new(&[(INFO, None)]);
    let events = {
        h.connect();
        h.events()
    };
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::NotRequested));
    assert!(gaps(&events).is_empty());
    h.lose_link();
    h.connect();
    let events = h.events();
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::Failed));
    assert_eq!(gaps(&events), [(INFO.to_owned(), None)]);
}

#[test]
fn unsubscribe_pushes_below_2500_end_the_channel_and_above_resubscribe_with_recovery() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 3}));
    h.events();
    h.frame(
        &json!({"push": {"channel": INFO, "unsubscribe": {"code": 2000, "reason": "server"}}})
            .to_string(),
    );
    assert!(
        h.events().iter().any(
            |e| matches!(e, Event::Unsubscribed { channel, code: 2000, .. } if channel == INFO)
        )
    );
    h.frame(&json!({"push": {"channel": CHAT, "unsubscribe": {"code": 2500, "reason": "insufficient"}}}).to_string());
    h.sent();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let sent = h.sent();
    let subscribe = sent
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .expect("resubscribed");
    assert_eq!(subscribe["subscribe"]["recover"], true);
    assert!(!sent.iter().any(|l| l["subscribe"]["channel"] == INFO));
}

#[test]
fn subscribes_while_connected_share_one_token_request_and_unsubscribe_is_sent() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session
        .handle_subscribe_burst(vec![(CHAT.into(), None), (INFO.into(), None)]);
    let actions = h.actions();
    assert!(
        matches!(&actions[..], [Action::FetchChannelTokens { channels, .. }] if channels.len() == 2)
    );
    let Action::FetchChannelTokens {
        attempt, channels, ..
    } = actions.into_iter().next().unwrap()
    else {
        unreachable!()
    };
    h.session.handle_channel_tokens(
        h.now,
        attempt,
        Purpose::Subscribe,
        channels,
        Ok(HashMap::new()),
    );
    assert_eq!(h.sent().len(), 2);
    h.session
        .handle_command(h.now, Command::Unsubscribe(CHAT.into()));
    let sent = h.sent();
    assert_eq!(sent[0]["unsubscribe"]["channel"], CHAT);
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::Unsubscribed { code: 0, .. }))
    );
}

// --- chat filled in from REST ----------------------------------------------------

/// A chat channel with slug, connected on a server without history, that
/// delivered message 1 (at START + 1 s) and then lost its link.
fn chat_after_an_outage() -> Harness {
    let mut h = Harness::new(&[(CHAT, Some("slug"))]);
    h.connect();
    h.frame(&publication(CHAT, 0, chat(1, START_MILLIS / 1000 + 1)));
    h.events();
    h.lose_link();
    h.connect();
    h
}

fn chat_request(actions: &[Action]) -> (Arc<str>, u64) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::FetchChatHistory {
                channel,
                slug,
                backfill,
            } if slug.as_ref() == "slug" => Some((channel.clone(), *backfill)),
            _ => None,
        })
        .expect("a chat history request")
}

#[test]
fn missed_chat_is_filled_in_from_rest_between_the_messages_before_and_after() {
    let mut h = chat_after_an_outage();
    let events = h.events();
    assert_eq!(recovery_of(&events, CHAT), Some(Recovery::Failed));
    assert!(
        gaps(&events).is_empty(),
        "not a gap while the fill-in may cover it"
    );
    let (channel, backfill) = chat_request(&h.actions());
    // Live chat after the reconnect waits for the fill-in, and one live
    // message is also in the REST answer.
    let t = START_MILLIS / 1000;
    h.frame(&publication(CHAT, 0, chat(5, t + 9)));
    h.frame(&publication(CHAT, 0, chat(6, t + 10)));
    assert!(publications(&h.events()).is_empty());
    let answer = vec![
        chat_message(5, t + 9),
        chat_message(4, t + 8),
        chat_message(3, t + 7),
        chat_message(2, t + 6),
        chat_message(1, t + 1),
    ];
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    let events = h.events();
    assert_eq!(
        publications(&events),
        [
            (0, 2, true),
            (0, 3, true),
            (0, 4, true),
            (0, 5, true),
            (0, 6, false)
        ]
    );
    assert!(gaps(&events).is_empty());
    // Later chat flows at once, and a repeat of a delivered id is dropped.
    h.frame(&publication(CHAT, 0, chat(7, t + 11)));
    h.frame(&publication(CHAT, 0, chat(6, t + 10)));
    assert_eq!(publications(&h.events()), [(0, 7, false)]);
}

#[test]
fn more_missed_than_one_answer_holds_delivers_the_newest_and_reports_one_gap() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    let answer: Vec<_> = (101..=300)
        .rev()
        .map(|id| chat_message(id, t + id))
        .collect();
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    let events = h.events();
    assert_eq!(gaps(&events), [(CHAT.to_owned(), None)]);
    let delivered = publications(&events);
    assert_eq!(delivered.len(), 200);
    assert_eq!(delivered.first(), Some(&(0, 101, true)));
    let gap_at = events
        .iter()
        .position(|e| matches!(e, Event::Gap { .. }))
        .unwrap();
    let first_at = events
        .iter()
        .position(|e| matches!(e, Event::Publication(_)))
        .unwrap();
    assert!(gap_at < first_at, "the gap stands where the loss is");
}

#[test]
fn a_failing_fill_in_is_retried_and_never_holds_live_chat_past_its_deadline() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    h.frame(&publication(CHAT, 0, chat(9, t + 20)));
    h.session
        .handle_chat_history(h.now, &channel, backfill, Err(api_error(503)));
    assert!(publications(&h.events()).is_empty(), "still held");
    h.advance(Config::default().backfill_hold);
    assert_eq!(
        publications(&h.events()),
        [(0, 9, false)],
        "released at the deadline"
    );
    h.frame("{}");
    let retry = h.session.poll_timeout().unwrap();
    h.advance(retry.saturating_duration_since(h.now));
    let (_, again) = chat_request(&h.actions());
    assert_eq!(again, backfill, "the same fill-in, asked again");
    h.session.handle_chat_history(
        h.now,
        &channel,
        backfill,
        Ok(vec![
            chat_message(8, t + 19),
            chat_message(9, t + 20),
            chat_message(10, t + 21),
        ]),
    );
    let events = h.events();
    // 8 is older than 9, delivered live at the deadline: it cannot come in
    // order any more, so it is a gap; 10 is new and comes, marked.
    assert_eq!(gaps(&events), [(CHAT.to_owned(), None)]);
    assert_eq!(publications(&events), [(0, 10, true)]);
}

#[test]
fn live_chat_waits_for_the_fill_in_at_most_the_configured_hold() {
    let config = Config {
        backfill_hold: Duration::from_secs(2),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(CHAT, Some("slug"))]);
    h.connect();
    h.frame(&publication(CHAT, 0, chat(1, START_MILLIS / 1000 + 1)));
    h.events();
    h.lose_link();
    h.connect();
    chat_request(&h.actions());
    h.frame(&publication(CHAT, 0, chat(9, START_MILLIS / 1000 + 20)));
    assert!(publications(&h.events()).is_empty(), "held");
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(publications(&h.events()), [(0, 9, false)], "released");
}

#[test]
fn a_chat_history_the_api_refuses_becomes_a_gap() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    h.session
        .handle_chat_history(h.now, &channel, backfill, Err(api_error(404)));
    assert_eq!(gaps(&h.events()), [(CHAT.to_owned(), None)]);
}

#[test]
fn a_quiet_chat_is_filled_in_from_the_moment_the_link_went_down() {
    let mut h = Harness::new(&[(CHAT, Some("slug"))]);
    h.connect();
    h.now += Duration::from_secs(100);
    h.lose_link();
    h.connect();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    let answer = vec![chat_message(2, t + 101), chat_message(1, t + 50)];
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    assert_eq!(publications(&h.events()), [(0, 2, true)]);
}

// --- logging ---------------------------------------------------------------------

/// Runs `work` with a subscriber that writes WARN lines into a buffer;
/// returns them.
fn warnings_during(work: impl FnOnce()) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, work);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn malformed_lines_are_counted_and_logged_at_most_once_a_second() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    let warnings = warnings_during(|| {
        let garbage = vec!["not json"; 10_000].join("\n");
        h.frame(&garbage);
        h.frame(&garbage);
        h.now += Duration::from_secs(1);
        h.frame("still not json");
    });
    let skipping: Vec<&String> = warnings
        .iter()
        .filter(|line| line.contains("skipping lines"))
        .collect();
    assert_eq!(skipping.len(), 2, "{skipping:?}");
    assert!(skipping[0].contains("skipped=1"), "{}", skipping[0]);
    assert!(skipping[1].contains("skipped=20000"), "{}", skipping[1]);
}

// --- channels by slug ----------------------------------------------------------

fn resolution_asked(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|action| match action {
        Action::ResolveChannel { slug } => Some(&**slug),
        _ => None,
    })
}

fn vk_channels() -> WebSocketChannels {
    serde_json::from_value(json!({
        "chat": "api-channel-chat:7", "info": "api-channel-info:7",
        "private_chat": "api-channel-private-chat:7", "private_info": "api-channel-private-info:7"
    }))
    .unwrap()
}

#[test]
fn a_followed_slug_subscribes_its_public_channels_and_the_granted_private_ones() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session.handle_command(
        h.now,
        Command::Follow {
            slug: "streamer.tv.".into(),
        },
    );
    assert_eq!(resolution_asked(&h.actions()), Some("streamer.tv."));
    let granted = HashSet::from(["api-channel-private-chat:7".to_owned()]);
    h.session.handle_resolved(
        h.now,
        "streamer.tv.",
        Ok(Resolved {
            channels: vk_channels(),
            granted,
        }),
    );
    let actions = h.actions();
    let [Action::Discovered(discovered)] = &actions[..] else {
        panic!("{actions:?}")
    };
    let mut discovered = discovered.clone();
    discovered.sort();
    // The public chat is followed by slug: filled in from REST after a loss.
    assert_eq!(
        discovered,
        [
            (
                "api-channel-chat:7".to_owned(),
                Some("streamer.tv.".to_owned())
            ),
            ("api-channel-info:7".to_owned(), None),
            ("api-channel-private-chat:7".to_owned(), None),
        ]
    );
}

#[test]
fn a_full_connection_hands_the_refused_channel_back_instead_of_failing_it() {
    let mut h = Harness::new(&[(CHAT, Some("slug")), (INFO, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    let chat_id = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .unwrap()["id"]
        .clone();
    h.reply(json!({"id": chat_id, "error": {"code": 106, "message": "limit exceeded"}}));
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::Refused { channel, chat_slug } if channel == CHAT && chat_slug.as_deref() == Some("slug"))), "{actions:?}");
    assert!(
        !h.events()
            .iter()
            .any(|e| matches!(e, Event::SubscriptionFailed { .. }))
    );
    assert_eq!(h.session.channel_counts(), (1, 0));
}

#[test]
fn a_lookup_that_may_work_later_is_retried_and_an_unknown_channel_is_reported() {
    let mut h = Harness::new(&[]);
    h.session.handle_command(
        h.now,
        Command::Follow {
            slug: "streamer".into(),
        },
    );
    h.actions();
    h.session
        .handle_resolved(h.now, "streamer", Err(api_error(503)));
    let retry = h.session.slugs["streamer"].retry_at.expect("a retry");
    assert!(retry > h.now);
    h.advance(retry - h.now);
    assert_eq!(resolution_asked(&h.actions()), Some("streamer"));
    h.session
        .handle_resolved(h.now, "streamer", Err(api_error(404)));
    let events = h.events();
    assert!(events.iter().any(|e| matches!(e, Event::SubscriptionFailed { channel, code: 0, .. } if channel == "streamer")), "{events:?}");
}

#[test]
fn a_channel_wanted_before_the_connect_reply_is_subscribed_on_that_link() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.session
        .handle_subscribe_burst(vec![(CHAT.to_owned(), None)]);
    let actions = h.actions();
    let [
        Action::FetchChannelTokens {
            attempt, channels, ..
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    h.session.handle_channel_tokens(
        h.now,
        *attempt,
        Purpose::Subscribe,
        channels.clone(),
        Ok(HashMap::new()),
    );
    let sent = h.sent();
    assert_eq!(sent[0]["subscribe"]["channel"], CHAT);
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.reply(json!({"id": sent[0]["id"], "subscribe": {}}));
    assert_eq!(recovery_of(&h.events(), CHAT), Some(Recovery::NotRequested));
}
