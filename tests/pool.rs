//! Thousands of channels over a pool of connections, each at the server's
//! per-connection limit (128 here, Centrifugo's default).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Client, ClientBuilder, Event, Events, Recovery};

async fn limited_emulator() -> Emulator {
    start(EmulatorConfig {
        channel_limit: Some(128),
        ..Default::default()
    })
    .await
}

fn pooled(emulator: &Emulator, channels: &[String]) -> ClientBuilder {
    builder(emulator)
        .channels(channels.iter().cloned())
        .connection_pace(Duration::ZERO)
}

fn names(count: usize) -> Vec<String> {
    (0..count)
        .map(|id| format!("api-channel-chat:{id}"))
        .collect()
}

/// Waits until every channel in `channels` is subscribed; no channel may fail.
async fn all_subscribed(events: &mut Events, channels: &[String]) {
    let mut waiting: HashSet<&str> = channels.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        match next_event(events).await {
            Event::Subscribed { channel, .. } => {
                waiting.remove(channel.as_str());
            }
            Event::SubscriptionFailed { channel, code, .. } => {
                panic!("{channel} failed with {code}")
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_channels_fill_ceil_n_over_128_connections_with_at_most_100_token_requests() {
    let emulator = limited_emulator().await;
    let channels = names(10_000);
    let (client, mut events) = connect(pooled(&emulator, &channels)).await;
    all_subscribed(&mut events, &channels).await;
    assert_eq!(emulator.connection_count(), 10_000usize.div_ceil(128));
    let requests = rest_count(&emulator, "/v1/websocket/subscription_token");
    assert!(requests <= 100, "{requests} subscription-token requests");
    let pool = client.pool_state().await.unwrap();
    assert_eq!(pool.connections.len(), 79);
    let confirmed: usize = pool.connections.iter().map(|c| c.channels_subscribed).sum();
    assert_eq!(confirmed, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_connection_comes_back_with_its_channels_while_the_others_keep_flowing() {
    let emulator = limited_emulator().await;
    let channels = names(300);
    let (_client, mut events) = connect(pooled(&emulator, &channels)).await;
    all_subscribed(&mut events, &channels).await;
    let victim_channel = &channels[0];
    let victim = emulator.connection_subscribed_to(victim_channel).unwrap();
    let other_channel = channels
        .iter()
        .find(|c| emulator.connection_subscribed_to(c) != Some(victim))
        .unwrap();

    emulator.abort_connection(victim);
    emulator.publish(victim_channel, chat(1, "missed while down"));
    emulator.publish(other_channel, chat(2, "still flowing"));
    // The other connection's publication comes first: it never waited for
    // the aborted one to come back.
    let mut disconnects = 0;
    let mut flowing_first = None;
    let mut recovered = false;
    loop {
        match next_event(&mut events).await {
            Event::Publication(publication) if &*publication.channel == other_channel => {
                flowing_first.get_or_insert(!recovered);
            }
            Event::Disconnected { .. } => disconnects += 1,
            Event::Subscribed {
                channel, recovery, ..
            } if &channel == victim_channel => {
                assert_eq!(recovery, Recovery::Recovered);
                recovered = true;
            }
            Event::Publication(publication) if &*publication.channel == victim_channel => {
                assert!(recovered, "recovered after its resubscribe");
                assert_eq!(chat_id(&publication), Some(1));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(flowing_first, Some(true));
    assert_eq!(disconnects, 1, "only the aborted connection went down");
    assert_eq!(emulator.connection_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_all_but_ten_channels_closes_the_connections_left_empty() {
    let emulator = limited_emulator().await;
    let channels = names(300);
    let (client, mut events) = connect(pooled(&emulator, &channels)).await;
    all_subscribed(&mut events, &channels).await;
    assert_eq!(emulator.connection_count(), 3);
    for channel in &channels[10..] {
        client.unsubscribe(channel.clone()).await.unwrap();
    }
    wait_until(&emulator, "the empty connections closed", |e| {
        e.connection_count() == 1
    })
    .await;
    let pool = client.pool_state().await.unwrap();
    assert_eq!(pool.connections.len(), 1);
    assert_eq!(pool.connections[0].channels_wanted, 10);
    emulator.publish(&channels[3], chat(7, "the rest still works"));
    let received = publications(&mut events, 1).await;
    assert_eq!(chat_id(&received[0]), Some(7));
}

#[tokio::test]
async fn channels_added_at_run_time_open_a_new_connection_only_when_all_are_full() {
    let emulator = limited_emulator().await;
    let first: Vec<String> = names(128);
    let (client, mut events): (Client, Events) = connect(pooled(&emulator, &first)).await;
    all_subscribed(&mut events, &first).await;
    assert_eq!(emulator.connection_count(), 1);
    let more: Vec<String> = (128..140)
        .map(|id| format!("api-channel-chat:{id}"))
        .collect();
    for channel in &more {
        client.subscribe(channel.clone()).await.unwrap();
    }
    all_subscribed(&mut events, &more).await;
    assert_eq!(emulator.connection_count(), 2);
}
