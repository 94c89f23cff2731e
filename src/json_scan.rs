//! Where JSON strings and containers end, found without parsing: the scans
//! the actor's cut (`protocol::cut`) and the chat reader (`event::chat_reader`)
//! share. Strings are most of a chat payload; containers are what the cut
//! checks the payload's outline by.

use wide::u8x16;

/// Containers nested deeper than this are left to a full decoder, which
/// has its own limit.
pub(crate) const MAX_DEPTH: usize = 64;

/// How far a string's text runs before a `"`, a `\\` or a control character
/// (which JSON strings may not hold); `None` if none comes. Sixteen bytes at
/// a time: chat is mostly URLs and text, and keys fit one step.
#[inline]
pub(crate) fn string_stop(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 16) {
        let chunk = u8x16::new(chunk.try_into().ok()?);
        let control = chunk.min(u8x16::splat(0x1f)).simd_eq(chunk);
        let stops =
            chunk.simd_eq(u8x16::splat(b'"')) | chunk.simd_eq(u8x16::splat(b'\\')) | control;
        let mask = stops.to_bitmask();
        if mask != 0 {
            return Some(at + mask.trailing_zeros() as usize);
        }
        at += 16;
    }
    let tail = bytes[at..]
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
    Some(at + tail)
}

/// Where the string whose contents start at `from` ends (just past its
/// closing quote). Control bytes are passed over: the outline does not
/// judge a string's contents, its decoder does.
pub(crate) fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        from += string_stop(bytes.get(from..)?)?;
        match bytes[from] {
            b'"' => return Some(from + 1),
            // An escape: skip it and the character it escapes.
            b'\\' => from += 2,
            _ => from += 1,
        }
    }
}

/// Where the container opening at byte 0 closes (just past its closing
/// bracket); `None` if it does not, or nests deeper than [`MAX_DEPTH`].
///
/// Sixty-four bytes at a time, without a branch per byte: each block becomes
/// bit masks (quotes, backslashes, opening and closing brackets), strings
/// become a mask by a running XOR of the quotes, and the depth moves by the
/// brackets outside strings, walked one by one (a block of text has none).
/// Which kind of bracket closes which is not checked: a value that mixes
/// them up is not JSON, and its decoder says so; what matters here is only
/// where the value ends.
pub(crate) fn container_end(bytes: &[u8]) -> Option<usize> {
    let mut state = Outline::default();
    let mut chunks = bytes.chunks_exact(64);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let block = <&[u8; 64]>::try_from(chunk).ok()?; // the chunks are exact
        if let Some(end) = state.block(block, index * 64) {
            return end;
        }
    }
    let rest = chunks.remainder();
    let mut last = [b' '; 64];
    last[..rest.len()].copy_from_slice(rest);
    state.block(&last, bytes.len() - rest.len()).flatten()
}

/// What [`container_end`] carries from one block to the next.
#[derive(Default)]
struct Outline {
    depth: u32,
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// The previous block ended with an unescaped backslash.
    escape_pending: bool,
}

impl Outline {
    /// Reads one block starting at `offset`; once the outermost container
    /// closed, where (`Some(Some(end))`), or `Some(None)` if something is
    /// wrong (a close with nothing open, nesting past [`MAX_DEPTH`]).
    fn block(&mut self, block: &[u8; 64], offset: usize) -> Option<Option<usize>> {
        let masks = Masks::of(block);
        let escaped = self.escaped(masks.backslashes);
        let in_string = prefix_xor(masks.quotes & !escaped) ^ self.in_string;
        self.in_string = if in_string >> 63 == 1 { u64::MAX } else { 0 };
        let opens = masks.opens & !in_string & !escaped;
        let closes = masks.closes & !in_string & !escaped;
        // Bracket by bracket, a handful a block in chat (most blocks are
        // text and URLs, with none): cheaper than counting the bits of the
        // masks, which takes a dozen instructions a count on baseline
        // x86-64 (no `popcnt`).
        let mut brackets = opens | closes;
        while brackets != 0 {
            let bit = brackets.trailing_zeros();
            brackets &= brackets - 1;
            if opens >> bit & 1 == 1 {
                self.depth += 1;
                if self.depth > MAX_DEPTH as u32 {
                    return Some(None);
                }
            } else {
                match self.depth {
                    0 => return Some(None),
                    1 => return Some(Some(offset + bit as usize + 1)),
                    _ => self.depth -= 1,
                }
            }
        }
        None
    }

    /// The bytes of the block that a backslash escapes.
    fn escaped(&mut self, backslashes: u64) -> u64 {
        let mut escaped = u64::from(std::mem::take(&mut self.escape_pending));
        let mut bits = backslashes;
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            if escaped >> bit & 1 == 1 {
                continue; // an escaped backslash escapes nothing
            }
            if bit == 63 {
                self.escape_pending = true;
            } else {
                escaped |= 1 << (bit + 1);
            }
        }
        escaped
    }
}

/// One bit per byte of a block, for the bytes that shape JSON.
struct Masks {
    quotes: u64,
    backslashes: u64,
    opens: u64,
    closes: u64,
}

impl Masks {
    /// Sixteen bytes per vector compare (SSE2 on x86-64, NEON on aarch64,
    /// plain code elsewhere, through `wide`).
    fn of(block: &[u8; 64]) -> Masks {
        let mut masks = Masks {
            quotes: 0,
            backslashes: 0,
            opens: 0,
            closes: 0,
        };
        for (lane, chunk) in block.chunks_exact(16).enumerate() {
            // The chunks are exact: the fallback is never used.
            let bytes = u8x16::new(chunk.try_into().unwrap_or([b' '; 16]));
            // `[` and `{` differ only in bit 5, as do `]` and `}`.
            let folded = bytes | u8x16::splat(0x20);
            let shift = lane * 16;
            masks.quotes |= u64::from(bytes.simd_eq(u8x16::splat(b'"')).to_bitmask()) << shift;
            masks.backslashes |=
                u64::from(bytes.simd_eq(u8x16::splat(b'\\')).to_bitmask()) << shift;
            masks.opens |= u64::from(folded.simd_eq(u8x16::splat(b'{')).to_bitmask()) << shift;
            masks.closes |= u64::from(folded.simd_eq(u8x16::splat(b'}')).to_bitmask()) << shift;
        }
        masks
    }
}

/// Each bit is the XOR of itself and every bit below it: inside a string
/// from its opening quote up to (not including) its closing one.
fn prefix_xor(mut bits: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        bits ^= bits << shift;
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_end_just_past_their_closing_bracket_whatever_follows() {
        let long = format!(r#"{{"a":"{}","b":[{{}},[]]}}"#, "x\\\"}".repeat(40));
        for value in [
            r#"{}"#,
            r#"[1,"]",{"}":"\""}]"#,
            r#"{"a":{"b":{"c":[]}}}"#,
            &long,
        ] {
            for after in ["", ",", "}}}", r#","offset":5}}}"#, " [1]"] {
                let text = format!("{value}{after}");
                assert_eq!(container_end(text.as_bytes()), Some(value.len()), "{text}");
            }
        }
        for never in [r#"{"#, r#"{"a":"}"#, r#"[[]"#, r#"{"a":"\"}"#] {
            assert_eq!(container_end(never.as_bytes()), None, "{never}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(
            container_end(deep.as_bytes()),
            None,
            "deeper than the limit"
        );
    }

    #[test]
    fn strings_stop_where_the_bytewise_reading_says_across_steps() {
        let bytewise = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        };
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for length in 0..70 {
            for stop in [b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0xd0] {
                for _ in 0..8 {
                    let mut bytes = vec![b'a'; length];
                    if length > 0 {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        bytes[(seed >> 33) as usize % length] = stop;
                    }
                    assert_eq!(string_stop(&bytes), bytewise(&bytes), "{bytes:?}");
                }
            }
        }
    }
}
