//! A caller that stops reading for 60 s while 1,000 publications a second
//! arrive. Alone in its test binary, so that the resident memory it
//! measures is its own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use vklive_pubsub::Event;
use vklive_pubsub::emulator::{ChannelNames, EmulatorConfig};

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: 60 s of real time with a publisher thread; .ci/run runs it with --ignored"]
async fn a_caller_that_stops_reading_for_60_s_stays_in_budget_then_gets_the_servers_history_and_the_exact_loss()
 {
    let emulator = start(EmulatorConfig {
        ping_interval: Duration::from_secs(1),
        pong_timeout: Duration::from_millis(500),
        // The server keeps the last 300 and lets subscribers read them.
        history_size: 300,
        history_for_subscribers: true,
        ..Default::default()
    })
    .await;
    let channel = ChannelNames::for_channel_id(1).chat;
    let budget = 8 * 1024 * 1024;
    let (_client, mut events) =
        connect(builder(&emulator).channel(&channel).delivery_budget(budget)).await;
    wait_subscribed(&mut events, &[&channel]).await;

    // 60 s at 1,000 a second (about 40 MB) while the caller does not read.
    // The client stops reading at its budget, the server gives up on its
    // pongs (3012) and drops what it still had queued, and the client waits
    // for room before reconnecting.
    let baseline = resident_bytes();
    let total = 60_000u64;
    let publisher = emulator.publish_paced(&channel, total as usize, 1000.0);
    let started = Instant::now();
    let mut peak = baseline;
    while !publisher.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "publisher stuck"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(resident_bytes());
    }
    assert_eq!(publisher.join().unwrap(), total as usize);
    assert_eq!(emulator.close_codes(), [3012]);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth <= budget as u64 + 32 * 1024 * 1024,
        "resident memory grew by {growth} bytes"
    );
    eprintln!(
        "stall: resident memory grew by {:.1} MB at most (budget {} MB)",
        growth as f64 / 1e6,
        budget / 1_000_000
    );
    let (_, top) = emulator.stream_position(&channel);

    // Reading again: what was held, a gap counting exactly what the server
    // no longer has, then what it has.
    let mut delivered = Vec::new();
    let mut missed = 0;
    while delivered.len() as u64 + missed < total {
        let event = tokio::time::timeout(Duration::from_secs(60), events.next())
            .await
            .expect("no event in time")
            .expect("event stream ended");
        match event {
            Event::Publication(publication) => delivered.push(publication.offset),
            Event::Gap { missed: count, .. } => {
                missed += count.expect("offsets tell the exact count")
            }
            Event::Lagged { .. } => panic!("nothing is dropped"),
            _ => {}
        }
    }
    assert!(missed > 0, "the server dropped what it had queued");
    let (held, kept) = delivered.split_at(delivered.len() - 300);
    assert!(
        held.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "held in order"
    );
    assert_eq!(kept, (top - 299..=top).collect::<Vec<_>>());
    assert_eq!(
        held.last().copied().unwrap_or(0) + missed,
        top - 300,
        "the gap is exactly what neither held nor the history had"
    );
}
