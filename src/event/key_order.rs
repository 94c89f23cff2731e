//! The order an object's keys come in, learned as payloads are read: the
//! chat reader's guess for the next key.
//!
//! A server writes each kind of object with its keys in one order, every
//! time (VK in its own order, the emulator sorted). Guessing the next key
//! lets the reader compare a few bytes instead of scanning the key as a
//! string and matching it against every known name. A wrong guess costs only
//! that ordinary read, and teaches the table the order it met.

use std::sync::atomic::{AtomicU8, Ordering};

/// Room for the keys of one kind of object, plus the slot for the first key.
const SLOTS: usize = 16;

/// The known keys of one kind of object and, for each, which key came after
/// it the last time one was read. Shared by every thread: the guesses are
/// plain loads, and only a miss writes (a race costs a miss, never a wrong
/// key, since every guess is checked against the bytes).
pub(super) struct KeyOrder<const N: usize> {
    /// Each key, and how it is written (`"key":`) for the comparison.
    quoted: [Quoted; N],
    /// `after[i]`: the index of the key that followed key `i`; `after[N]`:
    /// the first key. Starts as the order given to [`KeyOrder::new`].
    after: [AtomicU8; SLOTS],
}

impl<const N: usize> KeyOrder<N> {
    /// The keys in the order to guess first (VK's order: the fixtures').
    pub(super) const fn new(keys: [&'static str; N]) -> KeyOrder<N> {
        assert!(N < SLOTS, "one slot is for the first key");
        let mut after = [const { AtomicU8::new(0) }; SLOTS];
        let mut index = 0;
        while index < N {
            after[index] = AtomicU8::new(index as u8 + 1);
            index += 1;
        }
        let mut quoted = [Quoted::EMPTY; N];
        let mut index = 0;
        while index < N {
            quoted[index] = Quoted::new(keys[index]);
            index += 1;
        }
        KeyOrder { quoted, after }
    }

    /// Where the guesses start: the slot before the first key.
    pub(super) const fn start(&self) -> usize {
        N
    }

    /// If `bytes` start with the key guessed to come after `previous` (an
    /// index, or [`Self::start`]), quoted and followed by its colon: its
    /// index and how many bytes that is. No guess after the last key.
    pub(super) fn guessed_at(&self, previous: usize, bytes: &[u8]) -> Option<(usize, usize)> {
        let index = usize::from(self.after[previous].load(Ordering::Relaxed));
        let length = self.quoted.get(index)?.length_at(bytes)?;
        Some((index, length))
    }

    /// The index of `key`, `None` for a key this kind does not have.
    pub(super) fn index_of(&self, key: &str) -> Option<usize> {
        self.quoted.iter().position(|known| known.text == key)
    }

    /// Remembers that `next` came after `previous`.
    pub(super) fn learn(&self, previous: usize, next: usize) {
        // Only a miss writes, so the table's cache line stays shared.
        if usize::from(self.after[previous].load(Ordering::Relaxed)) != next {
            self.after[previous].store(next as u8, Ordering::Relaxed);
        }
    }
}

/// A key written `"key":`, held as one 16-byte word when it fits: a
/// comparison is then an XOR and a mask instead of a call to `memcmp`.
#[derive(Clone, Copy)]
struct Quoted {
    text: &'static str,
    /// The first 16 bytes of `"key":`, little-endian, zero-padded.
    word: u128,
    /// Ones over the bytes of `word` that belong to `"key":`.
    mask: u128,
}

impl Quoted {
    const EMPTY: Quoted = Quoted {
        text: "",
        word: 0,
        mask: 0,
    };

    const fn new(text: &'static str) -> Quoted {
        let key = text.as_bytes();
        let mut bytes = [0u8; 16];
        let mut at = 0;
        while at < 16 && at < key.len() + 3 {
            bytes[at] = quoted_byte(key, at);
            at += 1;
        }
        let mask = if key.len() + 3 >= 16 {
            u128::MAX
        } else {
            (1u128 << ((key.len() + 3) * 8)) - 1
        };
        Quoted {
            text,
            word: u128::from_le_bytes(bytes),
            mask,
        }
    }

    /// How many bytes `"key":` takes if `bytes` start with it.
    fn length_at(&self, bytes: &[u8]) -> Option<usize> {
        let key = self.text.as_bytes();
        let length = key.len() + 3;
        let head = <[u8; 16]>::try_from(bytes.get(..16)?).ok()?;
        if (u128::from_le_bytes(head) ^ self.word) & self.mask != 0 {
            return None;
        }
        // A longer key: the bytes past the word, one by one.
        let tail = bytes.get(16..length.max(16))?;
        let same = (16..length)
            .zip(tail)
            .all(|(at, &byte)| byte == quoted_byte(key, at));
        same.then_some(length)
    }
}

/// The byte at `at` of `"key":`.
const fn quoted_byte(key: &[u8], at: usize) -> u8 {
    if at == 0 || at == key.len() + 1 {
        b'"'
    } else if at == key.len() + 2 {
        b':'
    } else {
        key[at - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key `order` guesses after `previous`, found by offering each.
    fn guess<const N: usize>(order: &KeyOrder<N>, previous: usize) -> Option<&'static str> {
        order.quoted.iter().map(|quoted| quoted.text).find(|key| {
            let written = format!("\"{key}\":{}", " ".repeat(16));
            order.guessed_at(previous, written.as_bytes()).is_some()
        })
    }

    #[test]
    fn guesses_start_in_the_given_order() {
        let order = KeyOrder::new(["id", "nick", "roles"]);
        assert_eq!(guess(&order, order.start()), Some("id"));
        assert_eq!(guess(&order, 0), Some("nick"));
        assert_eq!(guess(&order, 1), Some("roles"));
        assert_eq!(guess(&order, 2), None, "nothing follows the last key");
    }

    #[test]
    fn a_met_order_is_guessed_next_time() {
        let order = KeyOrder::new(["id", "nick", "roles"]);
        // Another order met: nick, id, roles.
        for (previous, next) in [(order.start(), 1), (1, 0), (0, 2)] {
            order.learn(previous, next);
        }
        assert_eq!(guess(&order, order.start()), Some("nick"));
        assert_eq!(guess(&order, 1), Some("id"));
        assert_eq!(guess(&order, 0), Some("roles"));
    }

    #[test]
    fn a_guess_matches_only_its_key_quoted_and_followed_by_a_colon() {
        let order = KeyOrder::new(["id", "achievement_name", "is_moderator"]);
        let padded = |text: &str| format!("{text}{}", " ".repeat(20));
        let at = |previous, text: &str| order.guessed_at(previous, padded(text).as_bytes());
        assert_eq!(at(order.start(), r#""id":1"#), Some((0, 5)));
        assert_eq!(at(0, r#""achievement_name":"x""#), Some((1, 19)));
        assert_eq!(at(1, r#""is_moderator":true"#), Some((2, 15)));
        for other in [
            r#""ids":1"#,
            r#""i":1"#,
            r#""id" :1"#,
            r#""i\u0064":1"#,
            r#"id":1"#,
            r#""ID":1"#,
        ] {
            assert_eq!(at(order.start(), other), None, "{other}");
        }
        for other in [
            r#""achievement_nam":"x""#,
            r#""achievement_namex":"x""#,
            r#""achievement_name" :"x""#,
            r#""achievement_namE":"x""#,
        ] {
            assert_eq!(at(0, other), None, "{other}");
        }
        // Too few bytes left to compare at once: no guess, the key is read.
        assert_eq!(order.guessed_at(order.start(), br#""id":1}"#), None);
    }

    #[test]
    fn keys_are_found_by_name() {
        let order = KeyOrder::new(["id", "nick"]);
        assert_eq!(order.index_of("nick"), Some(1));
        assert_eq!(order.index_of("nick_color"), None);
    }
}
