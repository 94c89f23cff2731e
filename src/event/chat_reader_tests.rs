//! The direct chat reader agrees with serde: whenever it reads a payload, the
//! message is exactly the one the serde decoder gives, and it reads the
//! payloads VK and the emulator send (so the agreement is not vacuous).

use super::*;
use crate::event::VkEvent;
use crate::event::decode::serde_one_pass;

pub(in crate::event) const FIXTURES: [&str; 2] = [
    include_str!("../../tests/fixtures/channel_chat_message_send.json"),
    include_str!("../../tests/fixtures/channel_chat_message_send_bot.json"),
];

/// A fixture as it travels: compact, `type` first (a `serde_json::Value`
/// would sort `data` first).
pub(in crate::event) fn compact(fixture: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(fixture).expect("fixture is JSON");
    format!(r#"{{"type":{},"data":{}}}"#, value["type"], value["data"])
}

/// Payloads like the emulator's: every part kind, badges, roles, escapes,
/// nulls and empty values.
pub(in crate::event) const SHAPES: [&str; 4] = [
    r#"{"type":"channel_chat_message_send","data":{"chat_message":{"author":{"avatar_url":"https://i.invalid/a/1.png","badges":[{"achievement_name":"subscription_01","id":"badge-1","large_url":"https://i.invalid/b/l.png","medium_url":"https://i.invalid/b/m.png","name":"","small_url":"https://i.invalid/b/s.png"}],"id":17919,"is_moderator":false,"is_owner":false,"nick":"Вася_Пупкин","nick_color":15,"roles":[{"id":"5f0c","name":"Модератор","small_url":"s","medium_url":"m","large_url":"l"}]},"created_at":1785110751,"id":700000001,"is_private":false,"parts":[{"text":{"content":"Привет всем \"ok\" \\ \/ \u0041\u00e9 "}},{"mention":{"id":41676,"nick":"Настя🌸"}},{"smile":{"animated":true,"id":"smile-42","large_url":"l","medium_url":"m","name":"Kappa","small_url":"s"}},{"link":{"content":"","url":"https://e.org/?a=1&b=2"}},{"text":{"content":"\n"}}]}}}"#,
    r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":-5,"created_at":null,"is_private":null,"author":null,"parts":null}}}"#,
    r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"created_at":1700000000123,"author":{"id":1,"nick":null,"nick_color":null,"avatar_url":null,"is_owner":null,"is_moderator":null,"badges":null,"roles":[]},"parts":[{"mention":{"id":null,"nick":"x"}},{"smile":{"id":42,"name":null,"animated":null}},{"link":{"content":null,"url":null}},{"text":{}}]}}}"#,
    " { \"type\" : \"channel_chat_message_send\" ,\n\t\"data\" : { \"chat_message\" : { \"id\" : 1 , \"parts\" : [ ] } } }\r\n",
];

/// The rule every payload obeys; returns whether the reader took it.
fn assert_agrees(payload: &str) -> bool {
    agrees_with_serde(
        payload,
        read_chat_message(payload).map(VkEvent::ChatMessage),
        || serde_one_pass(payload),
    )
}

/// What each direct reader's `assert_agrees` checks: `direct`, what the
/// reader made of `payload` (`None` if it declined), is what serde makes of
/// it. Returns whether the reader took the payload.
pub(in crate::event) fn agrees_with_serde<T: PartialEq + std::fmt::Debug>(
    payload: &str,
    direct: Option<T>,
    serde: impl FnOnce() -> Option<T>,
) -> bool {
    let Some(read) = direct else {
        return false;
    };
    assert_eq!(
        serde(),
        Some(read),
        "direct reader and serde differ: {payload:?}"
    );
    true
}

#[test]
fn reads_every_chat_fixture_and_shape_as_serde_does() {
    on_every_base(assert_agrees);
}

/// `payload` without the whitespace between its tokens, keys kept in the
/// order written (VK's order, for a fixture).
fn minified(payload: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in payload.chars() {
        if in_string || !c.is_ascii_whitespace() {
            out.push(c);
        }
        if in_string && !escaped && c == '"' {
            in_string = false;
        } else if !in_string && c == '"' {
            in_string = true;
        }
        escaped = in_string && !escaped && c == '\\';
    }
    out
}

/// `value` as compact JSON with every object's keys in reverse order.
fn reversed(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .rev()
                .map(|(key, value)| format!("{}:{}", serde_json::json!(key), reversed(value)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reversed).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

#[test]
fn reads_every_key_order_as_serde_does_while_the_orders_alternate() {
    for fixture in FIXTURES {
        let value: serde_json::Value = serde_json::from_str(fixture).expect("fixture is JSON");
        let envelope = |data: String| format!(r#"{{"type":{},"data":{data}}}"#, value["type"]);
        let orders = [
            minified(fixture),
            compact(fixture),
            envelope(reversed(&value["data"])),
        ];
        assert!(orders[0].starts_with(r#"{"type":"#), "{}", orders[0]);
        // Each order teaches the reader's guesses, which the next one misses.
        for round in 0..3 {
            for payload in &orders {
                assert!(
                    assert_agrees(payload),
                    "round {round}: not read directly: {payload}"
                );
            }
        }
    }
}

#[test]
fn declines_what_it_leaves_to_serde() {
    let declined = [
        // Other events, other envelopes.
        r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#,
        r#"{"data":{"chat_message":{"id":7}},"type":"channel_chat_message_send"}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7}},"id":"x"}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7},"x":1}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7}}} 1"#,
        // Numbers serde reads otherwise, or not at all.
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7.0}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7e2}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":-0}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":07}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":9223372036854775808}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"created_at":"1700000000"}}}"#,
        // Keys twice, a missing id, escapes in keys, surrogates.
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"id":8}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"parts":[]}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"\u0069d":7}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"parts":[{"text":{"content":"\ud83d\ude00"}}]}}}"#,
        // Parts PartVisitor keeps raw or reads with extra keys.
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"parts":[{}]}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"parts":[{"poll":{}}]}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"parts":[{"text":{},"x":1}]}}}"#,
        // Broken JSON.
        "{\"type\":\"channel_chat_message_send\",\"data\":{\"chat_message\":{\"id\":7,\"parts\":[{\"text\":{\"content\":\"a\u{1}\"}}]}}}",
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,}}}"#,
        r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7"#,
    ];
    for payload in declined {
        assert!(read_chat_message(payload).is_none(), "read: {payload}");
    }
}

#[test]
fn skips_unknown_keys_as_serde_does_unless_strict() {
    let payload = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"flags":{"a":[1,2.5,"x\n",null,true]},"author":{"id":1,"extra":"y"},"parts":[{"text":{"content":"hi","style":null}}]}}}"#;
    assert_eq!(assert_agrees(payload), !cfg!(feature = "strict"));
    let deep = format!(
        r#"{{"type":"channel_chat_message_send","data":{{"chat_message":{{"id":7,"x":{}1{}}}}}}}"#,
        "[".repeat(MAX_SKIPPED_NESTING + 1),
        "]".repeat(MAX_SKIPPED_NESTING + 1)
    );
    assert!(read_chat_message(&deep).is_none());
    let broken = r#"{"type":"channel_chat_message_send","data":{"chat_message":{"id":7,"x":[1,}}}"#;
    assert!(read_chat_message(broken).is_none());
}

/// A small xorshift generator: the mutations are the same in every run.
struct Mutations(u64);

impl Mutations {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound.max(1) as u64) as usize
    }

    /// One to three edits of `payload`: bytes that matter to JSON put in,
    /// taken out or swapped for others, spans doubled or dropped.
    fn mutate(&mut self, payload: &str) -> String {
        const PIECES: [&str; 24] = [
            "\"",
            "\\",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "0",
            "-",
            ".",
            "e",
            " ",
            "null",
            "true",
            "1.5",
            "\\n",
            "\\u0041",
            "\\ud800",
            "\u{1}",
            "\"x\":1,",
            "9223372036854775808",
            "é",
            "\"id\":3,",
        ];
        let mut text = payload.to_owned();
        for _ in 0..=self.below(3) {
            let at = self.boundary(&text);
            match self.below(4) {
                0 => text.insert_str(at, PIECES[self.below(PIECES.len())]),
                1 => {
                    let end = self.boundary_from(&text, at);
                    text.replace_range(at..end, "");
                }
                2 => {
                    let end = self.boundary_from(&text, at);
                    text.replace_range(at..end, PIECES[self.below(PIECES.len())]);
                }
                _ => {
                    let end = self.boundary_from(&text, at);
                    let span = text[at..end].to_owned();
                    text.insert_str(at, &span);
                }
            }
        }
        text
    }

    fn boundary(&mut self, text: &str) -> usize {
        let mut at = self.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// A char boundary a few bytes after `start`.
    fn boundary_from(&mut self, text: &str, start: usize) -> usize {
        let mut end = (start + 1 + self.below(24)).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        end.max(start)
    }
}

/// The payloads the mutations start from: the fixtures and the shapes.
fn bases() -> Vec<String> {
    FIXTURES
        .map(compact)
        .into_iter()
        .chain(SHAPES.map(str::to_owned))
        .collect()
}

/// `rounds` mutations of the bases, in turn; the same in every run for a
/// `seed`.
fn mutated_payloads(seed: u64, rounds: usize) -> Vec<String> {
    let bases = bases();
    let mut mutations = Mutations(seed);
    (0..rounds)
        .map(|round| mutations.mutate(&bases[round % bases.len()]))
        .collect()
}

/// Every base cut short at every char boundary.
fn cut_short_payloads() -> Vec<String> {
    let mut prefixes = Vec::new();
    for base in bases() {
        let ends = (0..base.len()).filter(|&end| base.is_char_boundary(end));
        prefixes.extend(ends.map(|end| base[..end].to_owned()));
    }
    prefixes
}

// Each direct reader (the message here, `ChatSummary`, `chat_key`) has an
// `assert_agrees(payload) -> bool`: it asserts that what the reader read
// equals serde's result, and says whether the reader took the payload.

/// Runs `agrees` on every base: each must be read directly.
pub(in crate::event) fn on_every_base(agrees: impl Fn(&str) -> bool) {
    for payload in bases() {
        assert!(agrees(&payload), "not read directly: {payload}");
    }
}

/// Runs `agrees` on every base cut short at every char boundary.
pub(in crate::event) fn on_every_cut_short_base(agrees: impl Fn(&str) -> bool) {
    for payload in cut_short_payloads() {
        agrees(&payload);
    }
}

/// Runs `agrees` on `rounds` mutations of the bases, of which more than one
/// in `share` must be read directly: many mutations land in a string or keep
/// the shape, and a reader that declined them all would agree vacuously.
pub(in crate::event) fn on_mutations(
    seed: u64,
    rounds: usize,
    share: usize,
    agrees: impl Fn(&str) -> bool,
) {
    let read = mutated_payloads(seed, rounds)
        .iter()
        .filter(|payload| agrees(payload))
        .count();
    assert!(
        read > rounds / share,
        "only {read} of {rounds} mutations read"
    );
}

#[test]
fn agrees_with_serde_on_thousands_of_mutated_payloads() {
    // A `strict` build declines every mutation that adds a key, hence 1/20.
    on_mutations(0x9e37_79b9_7f4a_7c15, 30_000, 20, assert_agrees);
}

#[test]
fn skipping_agrees_with_serde_ignoring() {
    let values = [
        r#"{"a":[1,-2.5e+3,0,-0,1E9,"x\n\u00e9\ud800",true,false,null,{}],"b":{"c":[]}}"#,
        r#"[0.5,-1,"\"",{"k":"v"}]"#,
        "-12.75e-2",
        r#""\/\b\f\r\t""#,
    ];
    let serde_accepts = |text: &str| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
    let skips = |text: &str| {
        let mut reader = Reader::new(text);
        reader.skip_value().is_some() && reader.at_end()
    };
    for value in values {
        assert!(skips(value) && serde_accepts(value), "{value}");
    }
    let mut mutations = Mutations(0x51_7cc1_b727_220a);
    let mut skipped = 0;
    for round in 0..20_000 {
        let mutated = mutations.mutate(values[round % values.len()]);
        if skips(&mutated) {
            assert!(
                serde_accepts(&mutated),
                "skipped what serde rejects: {mutated:?}"
            );
            skipped += 1;
        }
    }
    assert!(skipped > 1_000, "only {skipped} mutations skipped");
}

#[test]
fn every_cut_short_payload_agrees_with_serde() {
    on_every_cut_short_base(assert_agrees);
}
