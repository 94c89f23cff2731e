//! The one-pass publication decoder (`protocol::decode_publication` with
//! `event::TypedPayload`) agrees with the general decoder
//! (`protocol::decode_line::<Reply>` then `VkEvent::decode`) on every line it
//! accepts, accepts the common lines, and leaves everything unusual to the
//! general decoder.

use serde_json::Value;
use vklive_pubsub::VkEvent;
use vklive_pubsub::event::TypedPayload;
use vklive_pubsub::protocol::{Reply, decode_line, decode_publication};

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::{PUBLICATIONS as FIXTURES, payload};

fn push(channel: &str, data: &str, offset: u64) -> String {
    format!(r#"{{"push":{{"channel":{channel},"pub":{{"data":{data},"offset":{offset}}}}}}}"#)
}

/// What the general decoder makes of a line: `(channel, offset, event)` for a
/// publication push, `None` for anything else (including a bad line).
fn general(line: &str) -> Option<(String, u64, VkEvent)> {
    let reply = decode_line::<Reply>(1, line).ok()?;
    if reply.id != 0 {
        return None;
    }
    let push = reply.push?;
    let publication = push.publication?;
    Some((
        push.channel,
        publication.offset,
        VkEvent::decode(&publication.data),
    ))
}

fn one_pass(line: &str) -> Option<(String, u64, VkEvent)> {
    let publication = decode_publication(line, TypedPayload)?;
    Some((
        publication.channel.into_owned(),
        publication.offset,
        publication.data,
    ))
}

/// Whatever the one-pass decoder accepts, the general one decodes the same.
fn assert_agrees(line: &str) -> bool {
    match one_pass(line) {
        Some(fast) => {
            assert_eq!(Some(fast), general(line), "{line}");
            true
        }
        None => false,
    }
}

/// Every typed fixture goes through the one-pass decoder, with the same
/// event as the general one, whichever of `type` and `data` comes first;
/// stream events (raw data) are left to the general decoder.
#[test]
fn fixtures_decode_in_one_pass_with_the_same_events() {
    for name in FIXTURES {
        let type_first = payload(name);
        // What `serde_json::Value` writes (the emulator's `publish`): sorted keys.
        let data_first = serde_json::from_str::<Value>(&type_first)
            .unwrap()
            .to_string();
        assert!(data_first.starts_with("{\"data\""), "{data_first}");
        for payload in [type_first, data_first] {
            let line = push("\"api-channel-chat:1\"", &payload, 42);
            let accepted = assert_agrees(&line);
            let typed = !name.starts_with("channel_stream_");
            assert_eq!(accepted, typed, "{name}");
            if typed {
                assert!(!matches!(one_pass(&line).unwrap().2, VkEvent::Unknown(_)));
            }
        }
    }
}

/// Unusual lines are left to the general decoder, and lines the one-pass
/// decoder does take agree with it.
#[test]
fn unusual_lines_fall_back_to_the_general_decoder() {
    let chat = payload("channel_chat_message_send.json");
    let delete = r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#;
    let must_fall_back = [
        // Not a publication, or not only one.
        "{}".to_owned(),
        r#"{"id":1,"connect":{"client":"c"}}"#.to_owned(),
        r#"{"push":{"channel":"c","unsubscribe":{"code":2000}}}"#.to_owned(),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{delete}}},"join":{{}}}}}}"#),
        format!(r#"{{"id":0,"push":{{"channel":"c","pub":{{"data":{delete}}}}}}}"#),
        r#"{"push":null}"#.to_owned(),
        r#"{"push":{"channel":"c","pub":null}}"#.to_owned(),
        // Duplicates, bad JSON, trailing garbage.
        format!(r#"{{"push":{{"channel":"c","channel":"d","pub":{{"data":{delete}}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{delete},"offset":1,"offset":2}}}}}}"#),
        format!("{} x", push("\"c\"", delete, 1)),
        push("\"c\"", delete, 1).trim_end_matches('}').to_owned() + "}}",
        // Payloads that VkEvent::decode keeps raw or types from a second look.
        push(
            "\"c\"",
            r#"{"data":{"chat_message":{"id":7}},"data":{},"type":"channel_chat_message_delete"}"#,
            1,
        ),
        push("\"c\"", r#"{"data":{"x":1},"type":"something_new"}"#, 1),
        push(
            "\"c\"",
            r#"{"data":{"chat_message":{"id":"x"}},"type":"channel_chat_message_delete"}"#,
            1,
        ),
        push("\"c\"", r#"{"type":"something_new","data":{"x":1}}"#, 1),
        push(
            "\"c\"",
            r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":"seven"}}}"#,
            1,
        ),
        push(
            "\"c\"",
            r#"{"type":"channel_chat_message_send","data":null}"#,
            1,
        ),
        push("\"c\"", r#"{"type":"channel_chat_message_send"}"#, 1),
        push(
            "\"c\"",
            r#"{"type":"channel_chat_message_send","type":"x","data":{}}"#,
            1,
        ),
        push("\"c\"", &payload("channel_stream_start.json"), 1),
        push("\"c\"", r#""just a string""#, 1),
        push("\"c\"", "null", 1),
        // Metadata the general decoder rejects.
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{delete},"tags":{{"k":1}}}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{delete},"offset":-1}}}}}}"#),
    ];
    for line in &must_fall_back {
        assert!(one_pass(line).is_none(), "taken in one pass: {line}");
    }

    let accepted = [
        push(
            "\"c\"",
            r#"{"data":{"chat_message":{"id":7}},"type":"channel_chat_message_delete"}"#,
            1,
        ),
        push("\"c\"", &chat, 0),
        push(r#""api-channel-chat:\u0031""#, delete, 5),
        format!(
            r#"{{"push":{{"pub":{{"offset":9,"data":{delete}}},"channel":"c"}},"future":[1,{{}}]}}"#
        ),
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{delete},"tags":{{"k":"v"}},"info":{{"user":"u","client":"x"}}}}}}}}"#
        ),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{delete}}}}}}}"#),
        push(
            "\"c\"",
            r#"{"id":"webhook-1","type":"channel_chat_message_delete","time":5,"data":{"chat_message":{"id":7}},"extra":null}"#,
            3,
        ),
        format!(
            r#" {{ "push" : {{ "channel" : "c" , "pub" : {{ "data" : {delete} , "offset" : 2 }} }} }} "#
        ),
    ];
    for line in accepted {
        assert!(assert_agrees(&line), "not taken in one pass: {line}");
    }
}
