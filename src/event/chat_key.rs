//! A chat message's [`ChatKey`] read from its payload: what the actor reads
//! of every chat publication of a channel followed with its slug, to skip
//! the messages a REST fill-in delivered already.
//!
//! The caller decodes the same payload once more, so this read must cost
//! little: the common shape goes through the direct chat reader, which takes
//! `id` and `created_at` and skips the rest; anything else goes through
//! serde. [`chat_key`] checks what it skips as serde checks what it ignores,
//! and gives serde's key; the actor's [`skim_chat_key`] skips by structure
//! alone, unchecked, for payloads known to be JSON (the tests below hold
//! both to serde).

use serde::Deserialize;

use super::chat::ChatKey;
use super::chat_reader::{MESSAGE_KEYS, Reader, put, read_chat_envelope};
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
    read_directly(payload, Reader::skip_value).or_else(|| read_with_serde(payload))
}

/// [`chat_key`] for a payload known to be JSON: the members other than
/// `id` and `created_at` are skipped by their structure, unchecked
/// (containers 64 bytes at a time, as the cut reads a payload's outline),
/// which is several times cheaper. On a payload that is not JSON it may give
/// a key where [`chat_key`] gives `None`.
///
/// The actor's de-duplication reads every chat message of a slug-followed
/// channel with it: those payloads were read by the full decoder or passed
/// the cut's outline check, and the caller's decode checks them in full.
pub(crate) fn skim_chat_key(payload: &str) -> Option<ChatKey> {
    read_directly(payload, Reader::skip_structure).or_else(|| read_with_serde(payload))
}

/// The key of a payload of the common shape, other members skipped with
/// `skip`; `None` where the reader declines (serde reads it then).
fn read_directly<'a>(payload: &'a str, skip: fn(&mut Reader<'a>) -> Option<()>) -> Option<ChatKey> {
    read_chat_envelope(payload, |reader| {
        let (mut id, mut created_at) = (None, None);
        reader.object_of(&MESSAGE_KEYS, |r, key| match key {
            Some(0) => put(&mut id, r.integer().map(Some)),
            Some(1) => put(&mut created_at, r.or_null(Reader::timestamp)),
            // Not `skip_unknown`: the key's own types take any other member,
            // strict build or not.
            _ => skip(r),
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
        let direct = read_directly(payload, Reader::skip_value);
        agrees_with_serde(payload, direct, || read_with_serde(payload))
    }

    /// The rule of the skimming read: on JSON it is [`chat_key`]; on
    /// anything else it may only differ by reading a key. Returns whether it
    /// read the payload directly.
    fn assert_skim_agrees(payload: &str) -> bool {
        let skimmed = read_directly(payload, Reader::skip_structure);
        let is_json = serde_json::from_str::<serde::de::IgnoredAny>(payload).is_ok();
        if is_json {
            assert_eq!(skim_chat_key(payload), chat_key(payload), "{payload:?}");
        } else if let Some(key) = chat_key(payload) {
            assert_eq!(skimmed.or(Some(key)), Some(key), "{payload:?}");
        }
        skimmed.is_some()
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
            assert_eq!(
                read_directly(&payload, Reader::skip_value),
                None,
                "{payload}"
            );
            assert_eq!(chat_key(&payload), read_with_serde(&payload), "{payload}");
        }
    }

    #[test]
    fn every_cut_short_payload_agrees_with_serde() {
        on_every_cut_short_base(assert_agrees);
    }

    #[test]
    fn agrees_with_serde_on_thousands_of_mutated_payloads() {
        on_mutations(0xbb67_ae85_84ca_a73b, 30_000, 10, assert_agrees);
    }

    #[test]
    fn skimming_reads_every_chat_fixture_and_shape_as_the_checked_read_does() {
        on_every_base(assert_skim_agrees);
    }

    #[test]
    fn skimming_differs_only_on_payloads_that_are_not_json() {
        on_every_cut_short_base(assert_skim_agrees);
        on_mutations(0x3c6e_f372_fe94_f82b, 30_000, 10, assert_skim_agrees);
    }
}
