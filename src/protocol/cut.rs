//! The cheap cut of a publication line: channel, offset and the payload's
//! place, found by comparing bytes instead of parsing JSON.
//!
//! Centrifugo writes every publication push the same way:
//! `{"push":{"channel":"…","pub":{"data":…,"offset":…}}}` (the offset left
//! out when it is 0). [`cut_publication`] recognises exactly that line and
//! nothing else, so the payload is parsed once, by the caller's typed decode,
//! instead of being validated here first. Any other shape (an extra member,
//! another key order, an escape in the channel, whitespace, a number that is
//! not a plain offset) is declined, and the line goes through the full
//! decoder.

use std::ops::Range;

use crate::json_scan::{container_end, string_end};

/// What [`cut_publication`] found in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationCut<'a> {
    /// The channel, as written (the cut declines a channel with escapes).
    pub channel: &'a str,
    /// Position in the channel's stream (0 when the line has none).
    pub offset: u64,
    /// Where the publication's `data` is in the line.
    pub data: Range<usize>,
}

const PREFIX: &str = r#"{"push":{"channel":""#;
const AFTER_CHANNEL: &str = r#"","pub":{"data":"#;
const OFFSET_KEY: &str = r#","offset":"#;
const CLOSE: &str = "}}}";

/// Cuts a publication push written the way Centrifugo writes it; `None`
/// for any other line (decode that one with the full decoder).
///
/// The payload is checked only for its outline: one value whose brackets
/// and strings close where the `data` member ends. That is what makes the
/// cut unambiguous (an extra member after `data` cannot pass for part of
/// it); whether the payload is valid JSON is for its decoder to find out.
/// For every line the cut accepts whose payload is valid JSON, the full
/// decoder (`decode_line::<Reply>`) reads the same channel, offset and
/// payload.
///
/// ```
/// use vklive_pubsub::protocol::cut_publication;
/// let line = r#"{"push":{"channel":"chat","pub":{"data":{"a":[1,"}"]},"offset":7}}}"#;
/// let cut = cut_publication(line).unwrap();
/// assert_eq!((cut.channel, cut.offset), ("chat", 7));
/// assert_eq!(&line[cut.data], r#"{"a":[1,"}"]}"#);
/// // Another member in `pub`: not the common shape, so not cut.
/// assert!(cut_publication(r#"{"push":{"channel":"c","pub":{"data":1,"tags":{}}}}"#).is_none());
/// ```
pub fn cut_publication(line: &str) -> Option<PublicationCut<'_>> {
    let bytes = line.as_bytes();
    let rest = bytes.strip_prefix(PREFIX.as_bytes())?;
    let channel_len = memchr::memchr(b'"', rest)?;
    let channel = &rest[..channel_len];
    if channel.iter().any(|&b| b == b'\\' || b < 0x20) {
        return None;
    }
    let data_start = PREFIX.len() + channel_len + AFTER_CHANNEL.len();
    if !bytes
        .get(PREFIX.len() + channel_len..data_start)?
        .eq(AFTER_CHANNEL.as_bytes())
    {
        return None;
    }
    let body = bytes.strip_suffix(CLOSE.as_bytes())?;
    let (data_end, offset) = split_offset(body)?;
    let data = data_start..data_end;
    if data.start >= data.end || !is_one_value(&bytes[data.clone()]) {
        return None;
    }
    Some(PublicationCut {
        channel: &line[PREFIX.len()..PREFIX.len() + channel_len],
        offset,
        data,
    })
}

/// Splits `…,"offset":N` into where the payload ends and N; without the
/// member, the payload runs to the end and the offset is 0.
fn split_offset(body: &[u8]) -> Option<(usize, u64)> {
    let digits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let before_digits = body.len() - digits;
    if digits == 0 || !body[..before_digits].ends_with(OFFSET_KEY.as_bytes()) {
        // No offset member (the digits, if any, end the payload itself).
        return Some((body.len(), 0));
    }
    let number = &body[before_digits..];
    // JSON allows no leading zero; u64 takes at most 20 digits.
    if (number.len() > 1 && number[0] == b'0') || number.len() > 20 {
        return None;
    }
    let offset = number.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })?;
    Some((before_digits - OFFSET_KEY.len(), offset))
}

/// Whether `value` is one JSON value by its outline: an object or array
/// that closes at its last byte, a string that closes at its last byte, or a
/// bare word (number, `true`, …) with no structural character in it.
fn is_one_value(value: &[u8]) -> bool {
    match value[0] {
        b'{' | b'[' => container_closes_at_end(value),
        b'"' => string_end(value, 1) == Some(value.len()),
        _ => !value.iter().any(|b| {
            matches!(
                b,
                b'{' | b'}' | b'[' | b']' | b'"' | b',' | b':' | b' ' | b'\t' | b'\r' | b'\n'
            )
        }),
    }
}

/// Whether the container opening at byte 0 closes exactly at the last byte
/// (see [`container_end`]).
fn container_closes_at_end(value: &[u8]) -> bool {
    container_end(value) == Some(value.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_scan::MAX_DEPTH;

    fn cut(line: &str) -> Option<(&str, u64, &str)> {
        cut_publication(line).map(|cut| (cut.channel, cut.offset, &line[cut.data]))
    }

    #[test]
    fn cuts_the_line_centrifugo_writes() {
        let line = r#"{"push":{"channel":"api-channel-chat:1","pub":{"data":{"type":"x","data":{}},"offset":42}}}"#;
        assert_eq!(
            cut(line),
            Some(("api-channel-chat:1", 42, r#"{"type":"x","data":{}}"#))
        );
    }

    #[test]
    fn a_line_without_offset_has_offset_zero() {
        let line = r#"{"push":{"channel":"c","pub":{"data":{"offset":5}}}}"#;
        assert_eq!(cut(line), Some(("c", 0, r#"{"offset":5}"#)));
        let line = r#"{"push":{"channel":"c","pub":{"data":17}}}"#;
        assert_eq!(cut(line), Some(("c", 0, "17")));
    }

    #[test]
    fn payloads_of_every_kind_are_cut() {
        for data in [
            r#""a\"}b""#,
            "[1,[2,{}]]",
            "true",
            "-1.5e3",
            r#"{"k":"\\"}"#,
            "null",
        ] {
            let line =
                format!(r#"{{"push":{{"channel":"c","pub":{{"data":{data},"offset":1}}}}}}"#);
            assert_eq!(cut(&line), Some(("c", 1, data)), "{line}");
        }
    }

    #[test]
    fn a_member_after_data_is_not_taken_for_part_of_it() {
        for line in [
            r#"{"push":{"channel":"c","pub":{"data":1,"info":{"client":"x"},"offset":3}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":{"a":1},"tags":{"t":"1"}}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":"s","tags":{}}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":{},"offset":3},"x":{"offset":2}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":{"a":1},"offset":1,"offset":2}}}"#,
        ] {
            assert_eq!(cut(line), None, "{line}");
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_full_decoder() {
        for line in [
            r#"{"push":{"pub":{"data":1,"offset":1},"channel":"c"}}"#,
            r#"{"push":{"channel":"c\"d","pub":{"data":1,"offset":1}}}"#,
            r#"{"push":{"channel":"c\u0041","pub":{"data":1,"offset":1}}}"#,
            r#"{"push": {"channel":"c","pub":{"data":1,"offset":1}}}"#,
            r#"{"push":{"channel":"c","pub":{"data": 1,"offset":1}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":1,"offset":1}}} "#,
            r#"{"push":{"channel":"c","pub":{"offset":1,"data":1}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":1,"offset":01}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":1,"offset":-1}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":1,"offset":18446744073709551616}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":,"offset":1}}}"#,
            r#"{"push":{"channel":"c","pub":{"data":{"a":"1}}}}"#,
            r#"{"id":1,"push":{"channel":"c","pub":{"data":1}}}"#,
            "{\"push\":{\"channel\":\"c\td\",\"pub\":{\"data\":1}}}",
            "{}",
            "",
        ] {
            assert_eq!(cut(line), None, "{line}");
        }
    }

    /// `string_end` one byte at a time, to check the one built on `string_stop`.
    fn string_end_bytewise(bytes: &[u8], mut from: usize) -> Option<usize> {
        while let Some(&byte) = bytes.get(from) {
            match byte {
                b'"' => return Some(from + 1),
                b'\\' => from += 2,
                _ => from += 1,
            }
        }
        None
    }

    #[test]
    fn strings_end_at_the_first_unescaped_quote_wherever_it_falls_in_a_word() {
        let alphabet = [b'a', b'"', b'\\', 0xd0, 0x80];
        let mut seed = 7u64;
        for length in 0..40 {
            for _ in 0..200 {
                let text: Vec<u8> = (0..length)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        alphabet[(seed >> 60) as usize % alphabet.len()]
                    })
                    .collect();
                for from in 0..=text.len() {
                    assert_eq!(
                        string_end(&text, from),
                        string_end_bytewise(&text, from),
                        "{text:?} {from}"
                    );
                }
            }
        }
    }

    /// `container_closes_at_end` one byte at a time.
    fn closes_at_end_bytewise(value: &[u8]) -> bool {
        let (mut depth, mut at) = (0, 0);
        while let Some(&byte) = value.get(at) {
            at += 1;
            match byte {
                b'"' => match string_end_bytewise(value, at) {
                    Some(end) => at = end,
                    None => return false,
                },
                // As in the block reading, a backslash escapes the next
                // byte even outside a string (where JSON has none).
                b'\\' => at += 1,
                b'{' | b'[' if depth == MAX_DEPTH => return false,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return false,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return at == value.len();
                    }
                }
                _ => {}
            }
        }
        false
    }

    #[test]
    fn containers_end_where_the_bytewise_reading_says_across_blocks() {
        let alphabet = b"{}[]\"\\\\a ,:xyz01";
        let mut seed = 11u64;
        for length in 1..300 {
            for _ in 0..100 {
                let mut value: Vec<u8> = (0..length)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        alphabet[(seed >> 58) as usize % alphabet.len()]
                    })
                    .collect();
                value[0] = b'{';
                assert_eq!(
                    container_closes_at_end(&value),
                    closes_at_end_bytewise(&value),
                    "{}",
                    String::from_utf8_lossy(&value)
                );
            }
        }
        // Real payloads, well formed, at every length around block edges.
        for length in 0..200 {
            let text = "é\\\"x".repeat(length);
            let value = format!(r#"{{"a":["{text}",{{"b":"{}"}}]}}"#, "]".repeat(length));
            assert!(container_closes_at_end(value.as_bytes()), "{value}");
            assert!(
                !container_closes_at_end(format!("{value},{{}}").as_bytes()),
                "{value}"
            );
        }
    }

    #[test]
    fn the_largest_offset_is_read_exactly() {
        let line = r#"{"push":{"channel":"c","pub":{"data":0,"offset":18446744073709551615}}}"#;
        assert_eq!(cut(line), Some(("c", u64::MAX, "0")));
    }

    #[test]
    fn deep_nesting_is_left_to_the_full_decoder() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let line = format!(r#"{{"push":{{"channel":"c","pub":{{"data":{deep}}}}}}}"#);
        assert_eq!(cut(&line), None);
        let shallow = format!("{}{}", "[".repeat(64), "]".repeat(64));
        let line = format!(r#"{{"push":{{"channel":"c","pub":{{"data":{shallow}}}}}}}"#);
        assert!(cut(&line).is_some());
    }
}
