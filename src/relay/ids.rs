//! `Nats-Msg-Id` of each message, and the positions the relay writes in its
//! headers and resumes from. Pure functions.
//!
//! The id is the same whichever relay publishes the event, so that JetStream
//! drops the second copy within its duplicate window:
//!
//! | event | id |
//! |---|---|
//! | chat message | `<channel>/chat/<message id>` |
//! | chat deletion | `<channel>/delete/<message id>` |
//! | anything else with an offset | `<channel>/<epoch>/<offset>` |
//! | follows, raids… without an offset | `<channel>/h/<FNV-1a 128 of the body>` |
//!
//! A loss (`gap`) gets a fresh id: two relays that each lost something lost
//! different things.

use crate::delivery::Publication;
use crate::event::{ChatKey, VkEvent};

/// Header: the pubsub channel, verbatim.
pub const CHANNEL_HEADER: &str = "Vklive-Channel";
/// Header: the event's `type` (`gap` for a loss).
pub const KIND_HEADER: &str = "Vklive-Kind";
/// Header: the publication's own offset (0 when it has none).
pub const OFFSET_HEADER: &str = "Vklive-Offset";
/// Header: the channel's stream position once this message is in: the
/// highest offset relayed so far. A relay taking the channel over resumes
/// from it.
pub const POSITION_HEADER: &str = "Vklive-Position";
/// Header: the id of the relay that published it (`<pid>-<hex>`).
pub const RELAY_HEADER: &str = "Vklive-Relay";
/// Header: the VK stream's epoch (`Event::Subscribed`'s), where known: a
/// position is the epoch and the offset.
pub const EPOCH_HEADER: &str = "Vklive-Epoch";

/// The `Nats-Msg-Id` of `publication` (see the module docs); `body` is the
/// message body, hashed when nothing else identifies the event.
///
/// ```
/// use std::sync::Arc;
/// use vklive_pubsub::relay::ids::message_id;
/// use vklive_pubsub::{Publication, VkEvent};
/// let payload = r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#;
/// let deleted = Publication::new(Arc::from("c:1"), 5, VkEvent::decode_str(payload));
/// assert_eq!(message_id(&deleted, "", "{}"), "c:1/delete/7");
/// ```
pub fn message_id(publication: &Publication, epoch: &str, body: &str) -> String {
    let channel = &*publication.channel;
    match &publication.event {
        VkEvent::ChatMessage(message) => format!("{channel}/chat/{}", message.id),
        VkEvent::ChatMessageDelete(deleted) => format!("{channel}/delete/{}", deleted.id),
        _ if publication.offset > 0 => format!("{channel}/{epoch}/{}", publication.offset),
        _ => format!("{channel}/h/{:032x}", fnv1a_128(body.as_bytes())),
    }
}

/// FNV-1a, 128 bits: stable across processes, versions and machines (which
/// the standard library's hashers are not).
pub fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(PRIME)
    })
}

/// Where a channel's messages in the stream end: read from the headers of
/// its newest message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resume {
    /// The stream's epoch, when the relay knew it (else empty).
    pub epoch: String,
    /// The highest offset in the stream (0: none).
    pub offset: u64,
    /// Whether the stream holds any message of the channel: then a relay
    /// taking it over must account for what came in between, even with no
    /// offset to recover from.
    pub relayed: bool,
    /// The newest chat message of the channel in the stream, where a fill-in
    /// from REST continues.
    pub last_chat: Option<ChatKey>,
}

impl Resume {
    /// The position in a message's headers, given a header lookup.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Resume {
        let number = |name| header(name).and_then(|v| v.trim().parse::<u64>().ok());
        Resume {
            epoch: header(EPOCH_HEADER).unwrap_or_default().to_owned(),
            offset: number(POSITION_HEADER)
                .or_else(|| number(OFFSET_HEADER))
                .unwrap_or(0),
            relayed: true,
            last_chat: None,
        }
    }

    /// Whether a publication at `offset` is already in the stream, so that a
    /// relay resuming from here must not publish it again. Publications
    /// without an offset (chat filled in from REST) are left to their id.
    pub fn covers(&self, offset: u64) -> bool {
        offset > 0 && offset <= self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn publication(offset: u64, payload: &str) -> Publication {
        Publication::new(Arc::from("c:1"), offset, VkEvent::decode_str(payload))
    }

    #[test]
    fn chat_is_identified_by_its_message_id_whatever_its_offset() {
        let chat =
            r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":77,"parts":[]}}}"#;
        let live = publication(12, chat);
        let mut backfilled = publication(0, chat);
        backfilled.backfilled = true;
        assert_eq!(message_id(&live, "e", "a"), "c:1/chat/77");
        assert_eq!(message_id(&backfilled, "", "b"), "c:1/chat/77");
    }

    #[test]
    fn other_events_use_the_offset_else_a_hash_of_the_body() {
        let follow = r#"{"type":"channel_follow_create","data":{"follow":{"follower":{"id":1,"nick":"x"}}}}"#;
        assert_eq!(message_id(&publication(9, follow), "ep", "x"), "c:1/ep/9");
        let a = message_id(&publication(0, follow), "", "body-a");
        let b = message_id(&publication(0, follow), "", "body-b");
        assert!(a.starts_with("c:1/h/") && a.len() == "c:1/h/".len() + 32);
        assert_ne!(a, b);
        assert_eq!(a, message_id(&publication(0, follow), "", "body-a"));
    }

    #[test]
    fn offset_ids_carry_the_epoch_so_a_restarted_vk_stream_repeats_none() {
        let follow = r#"{"type":"channel_follow_create","data":{"follow":{"follower":{"id":1,"nick":"x"}}}}"#;
        let before = message_id(&publication(1, follow), "ZtQs", "x");
        let after = message_id(&publication(1, follow), "Qa9P", "x");
        assert_eq!(before, "c:1/ZtQs/1");
        assert_eq!(after, "c:1/Qa9P/1");
        assert_ne!(before, after, "offset 1 again, in a new epoch");
    }

    #[test]
    fn fnv_matches_its_published_test_vectors() {
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn resume_reads_the_position_and_skips_only_what_is_in_the_stream() {
        let headers = [
            (POSITION_HEADER, "41"),
            (OFFSET_HEADER, "0"),
            (EPOCH_HEADER, "e"),
        ];
        let lookup = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let resume = Resume::from_headers(lookup);
        assert_eq!(
            resume,
            Resume {
                epoch: "e".into(),
                offset: 41,
                relayed: true,
                last_chat: None,
            }
        );
        assert!(resume.covers(41) && resume.covers(1));
        assert!(!resume.covers(42));
        assert!(!resume.covers(0), "no offset: left to the message id");
        let bare = Resume::from_headers(|_| None);
        assert_eq!(
            (bare.offset, bare.relayed),
            (0, true),
            "a message, no offset"
        );
        assert!(!bare.covers(1));
        assert!(!Resume::default().relayed);
    }
}
