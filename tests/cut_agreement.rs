//! The cheap cut of a publication line (`protocol::cut_publication`) agrees
//! with the full decoder (`protocol::decode_line::<Reply>`): on every fixture
//! it cuts the line and finds what the full decoder finds, and on odd lines
//! (reordered keys, extra members, escapes, whitespace, huge offsets, and
//! thousands of random mutations of real lines) it either declines, leaving
//! the line to the full decoder, or finds exactly what the full decoder
//! finds. The one difference is documented in `docs/reliability.md`: a line
//! of the common shape whose payload is not JSON is cut (its offset counts,
//! its payload is delivered raw), where the full decoder rejects the line.

use serde_json::value::RawValue;
use vklive_pubsub::protocol::{Reply, cut_publication, decode_line};

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::{PUBLICATIONS, payload};

/// Every fixture: the publication payloads and the channel info answer.
fn all_fixtures() -> impl Iterator<Item = &'static str> {
    PUBLICATIONS.into_iter().chain(["channel_info.json"])
}

/// The line as Centrifugo writes it (no `offset` member when it is 0).
fn canonical(channel: &str, data: &str, offset: u64) -> String {
    if offset == 0 {
        format!(r#"{{"push":{{"channel":"{channel}","pub":{{"data":{data}}}}}}}"#)
    } else {
        format!(r#"{{"push":{{"channel":"{channel}","pub":{{"data":{data},"offset":{offset}}}}}}}"#)
    }
}

/// What the full decoder finds: a publication push's channel, offset and
/// payload text, or `None` for any other (or a broken) line.
fn full(line: &str) -> Option<(String, u64, String)> {
    let reply = decode_line::<Reply>(1, line).ok()?;
    if reply.id != 0 || reply.error.is_some() {
        return None;
    }
    let push = reply.push?;
    let publication = push.publication?;
    let other_body = push.join.is_some()
        || push.leave.is_some()
        || push.unsubscribe.is_some()
        || push.subscribe.is_some()
        || push.message.is_some()
        || push.disconnect.is_some();
    if other_body {
        return None;
    }
    Some((
        push.channel,
        publication.offset,
        publication.data.get().to_owned(),
    ))
}

fn cut(line: &str) -> Option<(String, u64, String)> {
    let cut = cut_publication(line)?;
    Some((
        cut.channel.to_owned(),
        cut.offset,
        line[cut.data].to_owned(),
    ))
}

/// The rule every line obeys; returns whether the cut took the line.
fn assert_agrees(line: &str) -> bool {
    let Some(taken) = cut(line) else {
        return false;
    };
    if serde_json::from_str::<&RawValue>(&taken.2).is_ok() {
        assert_eq!(
            Some(&taken),
            full(line).as_ref(),
            "cut and full decoder differ: {line:?}"
        );
    } else {
        assert_eq!(
            full(line),
            None,
            "a payload that is not JSON in a valid line: {line:?}"
        );
    }
    true
}

#[test]
fn every_fixture_is_cut_with_what_the_full_decoder_finds() {
    for name in all_fixtures() {
        let data = payload(name);
        for offset in [0, 1, 42, u64::MAX] {
            for channel in ["api-channel-chat:1", "канал", "c"] {
                let line = canonical(channel, &data, offset);
                assert!(assert_agrees(&line), "not cut: {name} {line}");
            }
        }
    }
}

#[test]
fn odd_lines_are_declined_or_agree() {
    let data = payload("channel_chat_message_delete.json");
    let declined = [
        // Reordered keys.
        format!(r#"{{"push":{{"pub":{{"data":{data},"offset":1}},"channel":"c"}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"offset":1,"data":{data}}}}}}}"#),
        // Extra members, in `pub`, in `push`, at the top.
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{data},"info":{{"client":"x"}},"offset":1}}}}}}"#
        ),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"tags":{{"k":"v"}}}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1}},"join":{{}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1}}}},"id":0}}"#),
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1}},"x":{{"offset":2}}}}}}"#
        ),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1,"offset":2}}}}}}"#),
        // Escapes in the channel.
        format!(r#"{{"push":{{"channel":"api-channel-chat:\u0031","pub":{{"data":{data}}}}}}}"#),
        format!(r#"{{"push":{{"channel":"a\"b","pub":{{"data":{data}}}}}}}"#),
        // Whitespace.
        format!(r#" {{"push":{{"channel":"c","pub":{{"data":{data},"offset":1}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data": {data},"offset":1}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data} ,"offset":1}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset": 1}}}}}}"#),
        format!("{}\r", canonical("c", &data, 1)),
        // Offsets: too large, negative, a leading zero, a fraction.
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":18446744073709551616}}}}}}"#
        ),
        format!(
            r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":99999999999999999999999}}}}}}"#
        ),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":-1}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":007}}}}}}"#),
        format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1.5}}}}}}"#),
        // Not a publication.
        "{}".to_owned(),
        r#"{"id":1,"connect":{"client":"c"}}"#.to_owned(),
        r#"{"push":{"channel":"c","unsubscribe":{"code":2000}}}"#.to_owned(),
        r#"{"push":{"channel":"c","pub":{"data":}}}"#.to_owned(),
    ];
    for line in &declined {
        assert!(cut(line).is_none(), "cut, but should be declined: {line}");
    }
    // The full decoder still reads the declined lines that are publications.
    assert_eq!(full(&declined[0]).map(|p| p.1), Some(1));
    assert_eq!(full(&declined[2]).map(|p| p.1), Some(1));
    assert_eq!(
        full(&declined[8]).map(|p| p.0),
        Some("api-channel-chat:1".to_owned())
    );

    let taken = [
        canonical("c", r#""a string with \" and \\ and }]""#, 3),
        canonical("c", "[1,[2,{\"a\":[]}]]", 3),
        canonical("c", "-12.5e-3", 0),
        canonical("c", "null", 9),
        canonical("c", r#"{"offset":5}"#, 0),
        canonical("c", r#"{"s":"},\"offset\":7}}}"}"#, 0),
        canonical("c", "{ \"spaced\" : [ 1 , 2 ] }", 4),
        canonical("c", "{}", 18_446_744_073_709_551_615),
        // Payloads that are not JSON: cut, and the full decoder rejects the line.
        canonical("c", r#"{"a":tru}"#, 5),
        canonical("c", "nul", 5),
        canonical("c", "{\"raw\tcontrol\":1}", 5),
    ];
    for line in &taken {
        assert!(assert_agrees(line), "declined, but should be cut: {line}");
    }
}

/// A small deterministic generator: the test is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

/// Random edits of real lines: a byte removed, doubled or replaced by one of
/// the bytes that matter to JSON's outline, a piece moved elsewhere.
#[test]
fn random_mutations_of_real_lines_are_declined_or_agree() {
    const SPECIAL: &[u8] = b"{}[]\",:\\ 0123456789-.etnul\t";
    let mut random = Lcg(0x5eed);
    let lines: Vec<String> = all_fixtures()
        .map(|name| {
            canonical(
                "api-channel-chat:1",
                &payload(name),
                1 + random.below(1000) as u64,
            )
        })
        .collect();
    let (mut cut_count, mut total) = (0, 0);
    for round in 0..20_000 {
        let mut bytes = lines[round % lines.len()].clone().into_bytes();
        for _ in 0..1 + random.below(3) {
            let at = random.below(bytes.len());
            match random.below(4) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, bytes[at]),
                2 => bytes[at] = SPECIAL[random.below(SPECIAL.len())],
                _ => {
                    let end = (at + 1 + random.below(12)).min(bytes.len());
                    let piece: Vec<u8> = bytes.drain(at..end).collect();
                    let to = random.below(bytes.len() + 1);
                    bytes.splice(to..to, piece);
                }
            }
        }
        let Ok(line) = String::from_utf8(bytes) else {
            continue;
        };
        total += 1;
        if assert_agrees(&line) {
            cut_count += 1;
        }
    }
    // Both outcomes happen, or the mutations prove nothing.
    assert!(
        cut_count > 1_000 && cut_count < total - 1_000,
        "{cut_count} of {total} cut"
    );
}
