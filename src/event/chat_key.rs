//! A chat message's [`ChatKey`] read from its payload: what the actor reads
//! of every chat publication of a channel followed with its slug, to skip
//! the messages a REST fill-in delivered already.
//!
//! The caller decodes the same payload once more, so this read must cost
//! little: the common shape goes through the direct chat reader, which takes
//! `id` and `created_at` and skips the rest (checked as serde checks what it
//! ignores); anything else goes through serde, as before. Both give the same
//! key (the tests below hold the reader to serde).

use serde::Deserialize;

use super::chat::ChatKey;
use super::chat_reader::{Reader, Seen, read_chat_envelope};
use super::kind;
use super::time::Timestamp;

/// Reads the [`ChatKey`] of a `channel_chat_message_send` payload without
/// building the message; `None` for any other payload.
///
/// ```
/// use vklive_pubsub::event::{chat_key, ChatKey};
/// let payload = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"created_at":1700000000,"parts":[]}}}"#;
/// assert_eq!(chat_key(payload), Some(ChatKey { created_at_millis: 1_700_000_000_000, id: 7 }));
/// assert_eq!(chat_key(r#"{"type":"channel_follow_create","data":{}}"#), None);
/// ```
pub fn chat_key(payload: &str) -> Option<ChatKey> {
    read_directly(payload).or_else(|| read_with_serde(payload))
}

/// The key of a payload of the common shape; `None` where the reader
/// declines (serde reads it then).
fn read_directly(payload: &str) -> Option<ChatKey> {
    read_chat_envelope(payload, |reader| {
        let (mut id, mut created_at) = (None, None);
        let mut seen = Seen::default();
        reader.object(|r, key| match key {
            "id" => seen.set(0, &mut id, r.integer().map(Some)),
            "created_at" => seen.set(1, &mut created_at, r.or_null(Reader::timestamp)),
            // Not `skip_unknown`: the key's own types take any other member,
            // strict build or not.
            _ => r.skip_value(),
        })?;
        Some(key_of(id?, created_at))
    })
}

fn read_with_serde(payload: &str) -> Option<ChatKey> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        data: Option<Data>,
    }
    #[derive(Deserialize)]
    struct Data {
        chat_message: Option<MessageKey>,
    }
    #[derive(Deserialize)]
    struct MessageKey {
        id: i64,
        #[serde(default)]
        created_at: Option<Timestamp>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(payload).ok()?;
    if envelope.kind.as_deref() != Some(kind::CHAT_MESSAGE_SEND) {
        return None;
    }
    let key = envelope.data?.chat_message?;
    Some(key_of(key.id, key.created_at))
}

fn key_of(id: i64, created_at: Option<Timestamp>) -> ChatKey {
    ChatKey {
        created_at_millis: created_at.map_or(0, Timestamp::unix_millis),
        id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::chat_reader::tests::{
        agrees_with_serde, on_every_base, on_every_cut_short_base, on_mutations,
    };

    /// The rule every payload obeys; returns whether it was read directly.
    fn assert_agrees(payload: &str) -> bool {
        agrees_with_serde(payload, read_directly(payload), || read_with_serde(payload))
    }

    #[test]
    fn reads_every_chat_fixture_and_shape_as_serde_does() {
        on_every_base(assert_agrees);
    }

    #[test]
    fn declines_duplicate_keys_and_odd_numbers_for_serde_to_judge() {
        let envelope = |message: &str| {
            format!(r#"{{"type":"channel_chat_message_send","data":{{"chat_message":{message}}}}}"#)
        };
        for message in [
            r#"{"id":1,"id":2}"#,
            r#"{"id":1,"created_at":5,"created_at":6}"#,
            r#"{"id":1.0}"#,
            r#"{"id":-0}"#,
            r#"{"id":"1"}"#,
            r#"{"created_at":5}"#,
            r#"{"id":1,"parts":[1,]}"#,
        ] {
            let payload = envelope(message);
            assert_eq!(read_directly(&payload), None, "{payload}");
            assert_eq!(chat_key(&payload), read_with_serde(&payload), "{payload}");
        }
    }

    #[test]
    fn every_cut_short_payload_agrees_with_serde() {
        on_every_cut_short_base(assert_agrees);
    }

    #[test]
    fn agrees_with_serde_on_thousands_of_mutated_payloads() {
        let rounds = 30_000;
        let read = on_mutations(0xbb67_ae85_84ca_a73b, rounds, assert_agrees);
        assert!(read > rounds / 10, "only {read} of {rounds} mutations read");
    }
}
