//! Publications left undecoded (`Events::next_lazy`) and the chat summary
//! (`ChatSummary`) agree with the full decode: the same publications in the
//! same order, and, for chat, the same id, author, nick and plain text.

mod common;

use common::*;
use serde_json::Value;
use vklive_pubsub::emulator::EmulatorConfig;
use vklive_pubsub::event::ChatSummary;
use vklive_pubsub::{Event, LazyEvent, VkEvent};

/// What the summary must equal, read from the full decode.
fn expected(event: &VkEvent) -> Option<(i64, Option<i64>, String, String)> {
    match event {
        VkEvent::ChatMessage(message) => Some((
            message.id,
            message.author_id(),
            message.author_nick().to_owned(),
            message.plain_text(),
        )),
        _ => None,
    }
}

fn summary_of(payload: &str) -> Option<(i64, Option<i64>, String, String)> {
    ChatSummary::decode(payload).map(|s| (s.id, s.author_id, s.nick.into_owned(), s.text))
}

#[test]
fn the_summary_agrees_with_the_full_decode_on_fixtures_and_odd_parts() {
    let mut payloads = Vec::new();
    for name in [
        "channel_chat_message_send.json",
        "channel_chat_message_send_bot.json",
        "channel_chat_message_delete.json",
        "channel_follow_create.json",
        "channel_raid_income.json",
    ] {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        payloads.push(value.to_string());
    }
    for parts in [
        r#"[{"mention":{"id":9}}]"#,
        r#"[{"mention":{"id":9,"nick":null}},{"text":{"content":" \n"}}]"#,
        r#"[{"link":{"content":"","url":"https://x.example"}},{"smile":{"name":"Kappa"}}]"#,
        r#"[{"text":{"content":"esc\"aped \\ \u00e9"}},{"something_new":{"a":1}}]"#,
        r#"null"#,
        r#"[]"#,
    ] {
        payloads.push(format!(
            r#"{{"type":"channel_chat_message_send","data":{{"chat_message":{{"id":5,"parts":{parts}}}}}}}"#
        ));
    }
    payloads.push(
        r#"{"data":{"chat_message":{"id":6,"author":{"id":2,"nick":"ann"},"parts":[]}},"type":"channel_chat_message_send"}"#
            .to_owned(),
    );
    let mut chats = 0;
    for payload in &payloads {
        let full = expected(&VkEvent::decode_str(payload));
        chats += usize::from(full.is_some());
        assert_eq!(summary_of(payload), full, "{payload}");
    }
    assert_eq!(chats, payloads.len() - 3, "every chat payload was one");
}

#[tokio::test]
async fn lazy_publications_decode_to_what_the_stream_hands_out_in_the_same_order() {
    let emulator = start(EmulatorConfig::default()).await;
    let chat = "api-channel-chat:1";
    let (_client, mut events) = connect(builder(&emulator).channel(chat)).await;
    loop {
        match within(events.next_lazy()).await.expect("stream ended") {
            LazyEvent::Other(Event::Subscribed { .. }) => break,
            LazyEvent::Publication(p) => panic!("publication before subscribing: {p:?}"),
            _ => {}
        }
    }
    let count = 1_000;
    emulator.blast(chat, count, 50).expect("blast");
    let mut offsets = Vec::new();
    while offsets.len() < count {
        let LazyEvent::Publication(lazy) = within(events.next_lazy()).await.expect("stream ended")
        else {
            continue;
        };
        assert_eq!(lazy.channel().as_ref(), chat);
        let summary = summary_of(lazy.payload());
        let offset = lazy.offset();
        let publication = lazy.decode();
        assert_eq!(publication.offset, offset);
        assert_eq!(
            summary,
            expected(&publication.event),
            "{:?}",
            publication.event
        );
        assert!(summary.is_some(), "the blast sends chat messages");
        offsets.push(offset);
    }
    let in_order: Vec<u64> = (1..=count as u64).collect();
    assert_eq!(offsets, in_order, "every publication once, in order");
}
