//! Delivery that loses nothing: a slow caller, a caller that stops reading,
//! and chat missed on a server without history, filled in from REST.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use vklive_pubsub::emulator::{ChannelNames, EmulatorConfig};
use vklive_pubsub::{Event, Publication, Recovery};

/// Reads one event, bounded by a timeout long enough for a debug build to
/// decode a backlog.
async fn next_slow(events: &mut vklive_pubsub::Events) -> Event {
    tokio::time::timeout(Duration::from_secs(60), events.next())
        .await
        .expect("no event in time")
        .expect("event stream ended")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 200,000 publications through a debug build, about 15 s; .ci/run runs it with --ignored"]
async fn two_hundred_thousand_publications_reach_a_slow_caller_once_and_in_order() {
    let emulator = start(EmulatorConfig {
        // The server never gives up on us (no queue limit, no ping due
        // while reading is paused, however slow this machine): the socket's
        // own back-pressure holds what the client does not read yet.
        outgoing_queue_capacity: 100_000_000,
        ping_interval: Duration::from_secs(600),
        ..Default::default()
    })
    .await;
    let channel = ChannelNames::for_channel_id(1).chat;
    let (_client, mut events) = connect(
        builder(&emulator)
            .channel(&channel)
            .delivery_budget(4 * 1024 * 1024),
    )
    .await;
    wait_subscribed(&mut events, &[&channel]).await;
    let total = 200_000u64;
    let report = emulator
        .blast(&channel, total as usize, 100)
        .expect("blast");
    let first = report.first_offset;
    let mut expected = first;
    while expected < first + total {
        match next_slow(&mut events).await {
            Event::Publication(publication) => {
                assert_eq!(publication.offset, expected, "once and in order");
                expected += 1;
                // The caller is slower than the socket: a pause every 100.
                if expected % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            event @ (Event::Lagged { .. } | Event::Gap { .. } | Event::Disconnected { .. }) => {
                panic!("nothing may be lost or reconnected: {event:?}")
            }
            _ => {}
        }
    }
    assert!(
        emulator.close_codes().is_empty(),
        "{:?}",
        emulator.close_codes()
    );
}

/// Publications of chat until `count` chat messages arrived.
async fn chat_publications(events: &mut vklive_pubsub::Events, count: usize) -> Vec<Publication> {
    let mut chat = Vec::new();
    while chat.len() < count {
        match next_event(events).await {
            Event::Publication(publication) if chat_id(&publication).is_some() => {
                chat.push(publication)
            }
            Event::Gap { .. } => panic!("no gap expected"),
            _ => {}
        }
    }
    chat
}

/// Runs under paused time (the tests below): the 5 s outage and backoff pass
/// on tokio's clock, which the emulator and the client share.
///
/// A server without history, a chat channel followed by slug, `before`
/// messages, an outage of 5 s with `during` messages, then `after` more.
async fn outage_without_history(
    during: i64,
) -> (
    Vec<Publication>,
    Vec<Event>,
    vklive_pubsub::emulator::Emulator,
) {
    let emulator = start(EmulatorConfig {
        history: false,
        ..Default::default()
    })
    .await;
    let names = emulator.add_channel("streamer.tv", 7);
    let (_client, mut events) = connect(
        builder(&emulator)
            .chat_channel(&names.chat, "streamer.tv")
            .backoff(Duration::from_secs(5), Duration::from_secs(5)),
    )
    .await;
    wait_subscribed(&mut events, &[&names.chat]).await;
    let mut id = 0;
    let mut next = || {
        id += 1;
        chat(id, "hello")
    };
    for _ in 0..10 {
        emulator.publish(&names.chat, next());
    }
    let mut received = chat_publications(&mut events, 10).await;
    emulator.abort_all();
    for _ in 0..during {
        emulator.publish(&names.chat, next());
    }
    let mut others = Vec::new();
    loop {
        let event = next_event(&mut events).await;
        let resubscribed = matches!(event, Event::Subscribed { .. });
        others.push(event);
        if resubscribed {
            break;
        }
    }
    // The fill-in arrives first; then chat goes on live.
    let filled = during.min(200) as usize;
    collect_into(&mut events, &mut received, &mut others, 10 + filled).await;
    for _ in 0..10 {
        emulator.publish(&names.chat, next());
    }
    collect_into(&mut events, &mut received, &mut others, 10 + filled + 10).await;
    (received, others, emulator)
}

/// Reads until `received` holds `count` publications; other events go to `others`.
async fn collect_into(
    events: &mut vklive_pubsub::Events,
    received: &mut Vec<Publication>,
    others: &mut Vec<Event>,
    count: usize,
) {
    while received.len() < count {
        match next_event(events).await {
            Event::Publication(publication) => received.push(publication),
            other => others.push(other),
        }
    }
}

fn ids(publications: &[Publication]) -> Vec<i64> {
    publications.iter().filter_map(chat_id).collect()
}

#[tokio::test(start_paused = true)]
async fn chat_sent_during_an_outage_is_filled_in_from_rest_once_and_in_order() {
    let (received, others, emulator) = outage_without_history(50).await;
    assert_eq!(ids(&received), (1..=70).collect::<Vec<_>>());
    let backfilled: Vec<bool> = received.iter().map(|p| p.backfilled).collect();
    assert!(backfilled[..10].iter().all(|b| !b));
    assert!(
        backfilled[10..60].iter().all(|b| *b),
        "the 50 came from REST"
    );
    assert!(backfilled[60..].iter().all(|b| !b));
    assert!(others.iter().any(|e| matches!(
        e,
        Event::Subscribed {
            recovery: Recovery::Failed,
            ..
        }
    )));
    assert!(!others.iter().any(|e| matches!(e, Event::Gap { .. })));
    assert_eq!(rest_count(&emulator, "/v1/chat/messages"), 1);
}

#[tokio::test(start_paused = true)]
async fn with_300_missed_the_newest_200_are_filled_in_and_one_gap_is_reported() {
    let (received, others, _emulator) = outage_without_history(300).await;
    let expected: Vec<i64> = (1..=10).chain(111..=320).collect();
    assert_eq!(ids(&received), expected);
    let gaps: Vec<_> = others
        .iter()
        .filter_map(|e| match e {
            Event::Gap { channel, missed } => Some((channel.clone(), *missed)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].1, None, "no offsets without history: count unknown");
}
