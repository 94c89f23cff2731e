//! Where the text of a JSON string stops: the one scan both the actor's
//! cut (`protocol::cut`) and the caller's chat reader (`event::chat_reader`)
//! run over the inside of strings, which is most of a chat payload.

use wide::u8x16;

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

#[cfg(test)]
mod tests {
    use super::*;

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
