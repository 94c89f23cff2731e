//! Received frames: publications once and in order, batches, malformed lines.

use super::*;

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
    tracing::subscriber::with_default(subscriber, || {
        // A callsite first hit by another test's thread may cache "never".
        tracing::callsite::rebuild_interest_cache();
        work()
    });
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
