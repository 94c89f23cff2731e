//! The payloads of benchmark load ([`super::Emulator::blast`] and
//! [`super::Emulator::publish_paced`]): realistic chat messages.
//!
//! Payloads come from a fixed pool of chat messages made by the demo builders
//! (Cyrillic and Latin nicks, badges, roles, mentions, smiles, links) from a
//! fixed seed, so every client measured against one emulator gets the same
//! bytes. Each publication gets its own message id.

use std::sync::OnceLock;

use serde_json::value::RawValue;

use super::payloads::{chat_message_send, demo_users, random_parts, text_part};

/// Messages in the pool; publications cycle through it.
const POOL_SIZE: usize = 512;
/// Seed of the pool, so that the bytes are the same in every run.
const POOL_SEED: u64 = 0x5eed_c4a7;
/// Stands for the message id in a template (appears nowhere else).
const ID_MARK: i64 = 8_765_432_109_876_543;
/// Stands for the send time in a template.
const STAMP_MARK: &str = "\u{23f1}STAMP";
/// Prefix of the text part that carries the send time, see [`stamp_of`].
pub const STAMP_PREFIX: &str = "\u{23f1}";
/// First message id; ids then count up.
const FIRST_ID: i64 = 700_000_000;

/// A payload with holes for the message id and, optionally, the send time.
struct Template {
    /// Text before the id, between id and stamp, after the stamp.
    pieces: Vec<String>,
}

impl Template {
    fn new(json: &str) -> Template {
        let (head, rest) = json
            .split_once(&ID_MARK.to_string())
            .expect("the id mark is in the payload");
        let mut pieces = vec![head.to_owned()];
        match rest.split_once(STAMP_MARK) {
            Some((middle, tail)) => {
                pieces.push(middle.to_owned());
                pieces.push(tail.to_owned());
            }
            None => pieces.push(rest.to_owned()),
        }
        Template { pieces }
    }

    fn fill(&self, id: i64, stamp: Option<u128>) -> Box<RawValue> {
        let mut text =
            String::with_capacity(self.pieces.iter().map(String::len).sum::<usize>() + 40);
        text.push_str(&self.pieces[0]);
        text.push_str(&id.to_string());
        text.push_str(&self.pieces[1]);
        if let Some(tail) = self.pieces.get(2) {
            text.push_str(STAMP_PREFIX);
            text.push_str(&stamp.unwrap_or(0).to_string());
            text.push_str(tail);
        }
        // The template was valid JSON and the holes take plain digits.
        RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
    }
}

struct Pool {
    plain: Vec<Template>,
    stamped: Vec<Template>,
}

/// The VK envelope with `type` first, as VK sends it (a `serde_json::Value`
/// would sort `data` first).
fn envelope_text(value: &serde_json::Value) -> String {
    let kind = serde_json::to_string(&value["type"]).unwrap_or_default();
    let data = serde_json::to_string(&value["data"]).unwrap_or_default();
    format!("{{\"type\":{kind},\"data\":{data}}}")
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(build_pool)
}

fn build_pool() -> Pool {
    let saved = fastrand::get_seed();
    fastrand::seed(POOL_SEED);
    let users = demo_users();
    let mut plain = Vec::with_capacity(POOL_SIZE);
    let mut stamped = Vec::with_capacity(POOL_SIZE);
    for index in 0..POOL_SIZE {
        let author = &users[fastrand::usize(..users.len())];
        let parts = random_parts(&users);
        let created_at = 1_785_110_751 + index as u64;
        let message = chat_message_send(ID_MARK, created_at, author, parts.clone());
        plain.push(Template::new(&envelope_text(&message)));
        let mut with_stamp = vec![text_part(STAMP_MARK)];
        with_stamp.extend(parts);
        let message = chat_message_send(ID_MARK, created_at, author, with_stamp);
        stamped.push(Template::new(&envelope_text(&message)));
    }
    fastrand::seed(saved);
    Pool { plain, stamped }
}

/// The i-th benchmark chat payload: `channel_chat_message_send` with message
/// id `700000000 + i`, one of 512 fixed realistic messages.
pub(crate) fn chat_payload(index: usize) -> Box<RawValue> {
    let pool = pool();
    pool.plain[index % pool.plain.len()].fill(FIRST_ID + index as i64, None)
}

/// Like [`chat_payload`], with a first text part `⏱<unix time in ns>`.
pub(crate) fn stamped_payload(index: usize, stamp: u128) -> Box<RawValue> {
    let pool = pool();
    pool.stamped[index % pool.stamped.len()].fill(FIRST_ID + index as i64, Some(stamp))
}

/// The send time a paced publication carries in its first text part, in
/// nanoseconds since the Unix epoch.
pub fn stamp_of(text: &str) -> Option<u128> {
    text.strip_prefix(STAMP_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::VkEvent;

    #[test]
    fn pool_payloads_are_typed_chat_messages_with_distinct_ids() {
        for index in [0, 1, POOL_SIZE - 1, POOL_SIZE, 10 * POOL_SIZE + 3] {
            match VkEvent::decode(&chat_payload(index)) {
                VkEvent::ChatMessage(message) => {
                    assert_eq!(message.id, FIRST_ID + index as i64);
                    assert!(message.author.is_some());
                    assert!(!message.parts.is_empty());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(chat_payload(0).get().starts_with("{\"type\":"));
    }

    #[test]
    fn the_pool_is_the_same_in_every_run() {
        // Fixed seed: the payload bytes do not depend on the global generator.
        fastrand::seed(1);
        let once = build_pool();
        fastrand::seed(2);
        let again = build_pool();
        for (a, b) in once.plain.iter().zip(&again.plain) {
            assert_eq!(a.pieces, b.pieces);
        }
        let sizes: usize = (0..POOL_SIZE).map(|i| chat_payload(i).get().len()).sum();
        assert!(
            sizes / POOL_SIZE > 300,
            "mean payload {} bytes",
            sizes / POOL_SIZE
        );
    }

    #[test]
    fn stamped_payloads_carry_the_send_time_in_the_first_part() {
        let payload = stamped_payload(3, 1_785_110_751_123_456_789);
        match VkEvent::decode(&payload) {
            VkEvent::ChatMessage(message) => {
                let crate::event::Part::Text(first) = &message.parts[0] else {
                    panic!("first part is not text");
                };
                assert_eq!(stamp_of(&first.content), Some(1_785_110_751_123_456_789));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
