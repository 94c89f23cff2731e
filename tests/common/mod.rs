//! Helpers shared by the integration tests: an emulator with a known user,
//! and event waits that fail instead of hanging.
#![allow(dead_code)]

use std::time::Duration;

#[cfg(unix)]
pub mod pipe;

use futures::StreamExt;
use serde_json::json;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Client, ClientBuilder, Event, Events, Publication};

/// Upper bound for any single wait in a test.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The access token of the emulator's test user.
pub const USER_TOKEN: &str = "user-access-token-7f3a";
pub const USER_ID: u64 = 42;

pub async fn start(config: EmulatorConfig) -> Emulator {
    let emulator = tokio::time::timeout(TIMEOUT, Emulator::start(config))
        .await
        .expect("emulator start timed out")
        .expect("emulator failed to start");
    emulator.add_user(USER_TOKEN, USER_ID, "tester");
    emulator
}

/// A builder pointed at `emulator`, authenticated as the test user, with
/// short backoff so that reconnect tests run quickly.
pub fn builder(emulator: &Emulator) -> ClientBuilder {
    Client::with_user_token(USER_TOKEN)
        .api_url(emulator.api_url())
        .ws_url(emulator.ws_url())
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
}

pub async fn connect(builder: ClientBuilder) -> (Client, Events) {
    tokio::time::timeout(TIMEOUT, builder.connect())
        .await
        .expect("connect timed out")
        .expect("connect failed")
}

pub async fn next_event(events: &mut Events) -> Event {
    tokio::time::timeout(TIMEOUT, events.next())
        .await
        .expect("no event in time")
        .expect("event stream ended")
}

/// Waits for an event matching `predicate`, skipping others; returns it.
pub async fn wait_for_event(events: &mut Events, predicate: impl Fn(&Event) -> bool) -> Event {
    loop {
        let event = next_event(events).await;
        if predicate(&event) {
            return event;
        }
    }
}

/// Waits until every channel in `channels` reported `Subscribed`.
pub async fn wait_subscribed(events: &mut Events, channels: &[&str]) {
    let mut left: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    while !left.is_empty() {
        match next_event(events).await {
            Event::Subscribed { channel, .. } => left.retain(|c| *c != channel),
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => {
                panic!("subscription to {channel} failed: {code} {reason}")
            }
            _ => {}
        }
    }
}

/// Collects `count` publications, skipping lifecycle events.
pub async fn publications(events: &mut Events, count: usize) -> Vec<Publication> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if let Event::Publication(publication) = next_event(events).await {
            out.push(publication);
        }
    }
    out
}

/// A chat message envelope with `id` and `text`.
pub fn chat(id: i64, text: &str) -> serde_json::Value {
    json!({
        "type": "channel_chat_message_send",
        "data": {"chat_message": {
            "id": id, "created_at": 1_700_000_000, "is_private": false,
            "author": {"id": 7, "nick": "viewer", "nick_color": 3},
            "parts": [{"text": {"content": text}}]
        }}
    })
}

/// The chat message id of a publication, if it is one.
pub fn chat_id(publication: &Publication) -> Option<i64> {
    match &publication.event {
        vklive_pubsub::VkEvent::ChatMessage(message) => Some(message.id),
        _ => None,
    }
}

pub async fn wait_until(emulator: &Emulator, what: &str, condition: impl Fn(&Emulator) -> bool) {
    assert!(
        emulator.wait_for(condition, TIMEOUT).await,
        "timed out waiting for: {what}"
    );
}

/// Awaits `future`, failing the test instead of hanging.
pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("timed out")
}

/// How many REST calls the emulator saw on `path`.
pub fn rest_count(emulator: &Emulator, path: &str) -> usize {
    emulator
        .rest_calls()
        .iter()
        .filter(|call| call.path == path)
        .count()
}

/// Waits until every ping the emulator sent was answered. A ping may be in
/// flight at any moment, so "answered" means at most one outstanding; extra
/// pongs would show up as violations.
pub async fn wait_pings_answered(emulator: &Emulator) {
    wait_until(emulator, "a pong for every ping", |e| {
        e.pongs_received() + 1 >= e.pings_sent()
    })
    .await;
    assert!(
        emulator.pongs_received() <= emulator.pings_sent(),
        "more pongs than pings"
    );
    assert!(
        emulator.violations().is_empty(),
        "{:?}",
        emulator.violations()
    );
}
