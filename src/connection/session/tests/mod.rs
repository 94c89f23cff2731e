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
            ..
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

mod catch_up;
mod fill_in;
mod ingest;
mod link;
mod slugs;
mod subscriptions;
mod tokens;
