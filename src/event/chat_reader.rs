//! A direct reader for the payload that makes up most of the traffic,
//! `channel_chat_message_send`, without serde's visitor layers.
//!
//! Chat is nearly every publication a busy channel carries, and decoding it
//! with serde_json was half of the crate's CPU per event. This reader takes
//! the common shape only: the envelope `{"type":"channel_chat_message_send",
//! "data":{"chat_message":{…}}}` and nothing else in it, object keys without
//! escapes, each known key at most once, ids and times as plain integers.
//! On anything else (a float, a numeric string, a surrogate escape, an
//! unknown part kind, a second key in a part, any unknown key in a `strict`
//! build) it returns `None`, and the serde decoder reads the payload as
//! before. When it returns a message, that message is exactly the one serde
//! gives; `tests` below holds it to that on fixtures, odd payloads and
//! thousands of mutations.
//!
//! Keys are read by guess: each kind of object remembers the order its keys
//! came in last time (`key_order`), and a key that comes as guessed costs one
//! 16-byte comparison instead of a scan. The arms of each object's `match`
//! are the indices of its key table, in the table's order.
//!
//! Unknown keys in lenient builds are skipped by [`Reader::skip_value`],
//! which checks what it skips as serde's `IgnoredAny` does (a test holds it
//! to that). `summary` reads its few fields with the same [`Reader`].

use std::borrow::Cow;

use super::chat::{
    Author, Badge, ChatMessage, LinkPart, MentionPart, Part, Role, SmilePart, TextPart,
};
use super::key_order::KeyOrder;
use super::kind;
use super::palette::NickColor;
use super::time::Timestamp;
use crate::json_scan::{container_end, string_end, string_stop};

/// How deep a skipped value may nest: with the at most 8 levels of a chat
/// message around it, far below serde_json's limit of 128.
const MAX_SKIPPED_NESTING: usize = 32;

/// Reads a whole publication payload; `None` if it is not a chat message of
/// the common shape (decode it with serde then).
pub(super) fn read_chat_message(payload: &str) -> Option<Box<ChatMessage>> {
    read_chat_envelope(payload, |reader| reader.chat_message().map(Box::new))
}

/// Reads the envelope `{"type":"channel_chat_message_send","data":
/// {"chat_message":…}}` with nothing else in it, `read` taking the message.
pub(super) fn read_chat_envelope<'a, T>(
    payload: &'a str,
    read: impl FnOnce(&mut Reader<'a>) -> Option<T>,
) -> Option<T> {
    let mut reader = Reader::new(payload);
    reader.eat(b'{')?;
    reader.expect_key("type")?;
    if reader.unescaped_string()? != kind::CHAT_MESSAGE_SEND {
        return None;
    }
    reader.eat(b',')?;
    reader.expect_key("data")?;
    reader.eat(b'{')?;
    reader.expect_key("chat_message")?;
    let message = read(&mut reader)?;
    reader.eat(b'}')?;
    reader.eat(b'}')?;
    reader.at_end().then_some(message)
}

/// A chat message's keys, in VK's order.
pub(super) static MESSAGE_KEYS: KeyOrder<5> =
    KeyOrder::new(["id", "created_at", "is_private", "author", "parts"]);

/// An author's keys, in VK's order.
pub(super) static AUTHOR_KEYS: KeyOrder<8> = KeyOrder::new([
    "id",
    "nick",
    "nick_color",
    "avatar_url",
    "is_owner",
    "is_moderator",
    "badges",
    "roles",
]);

/// The kinds of a message part: the one key of its object.
pub(super) static PART_KINDS: KeyOrder<4> = KeyOrder::new(["text", "mention", "smile", "link"]);

/// A text part's keys.
pub(super) static TEXT_KEYS: KeyOrder<1> = KeyOrder::new(["content"]);

/// A mention's keys, in VK's order.
pub(super) static MENTION_KEYS: KeyOrder<2> = KeyOrder::new(["id", "nick"]);

/// A link's keys, in VK's order.
pub(super) static LINK_KEYS: KeyOrder<2> = KeyOrder::new(["content", "url"]);

/// A smile's keys, in VK's order.
pub(super) static SMILE_KEYS: KeyOrder<6> = KeyOrder::new([
    "id",
    "name",
    "animated",
    "small_url",
    "medium_url",
    "large_url",
]);

/// Keys of one object already read: serde rejects a known key given twice.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Marks the key with this bit read; `None` when it was read before.
    fn first(&mut self, bit: u16) -> Option<()> {
        let mask = 1 << bit;
        let fresh = self.0 & mask == 0;
        self.0 |= mask;
        fresh.then_some(())
    }
}

/// Stores a value read for a key; `None` when the value is not of the
/// common shape.
pub(super) fn put<T>(slot: &mut T, value: Option<T>) -> Option<()> {
    *slot = value?;
    Some(())
}

/// A cursor over the payload; every method returns `None` where the input
/// leaves the common shape.
pub(super) struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(text: &'a str) -> Reader<'a> {
        Reader { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte that is not JSON whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&byte) = self.bytes().get(self.at) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(byte);
            }
            self.at += 1;
        }
        None
    }

    pub(super) fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `byte` if it comes next.
    fn eat_if(&mut self, byte: u8) -> bool {
        self.eat(byte).is_some()
    }

    pub(super) fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// A string without escapes, borrowed: what keys and the type are.
    pub(super) fn unescaped_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let end = start + string_stop(&self.bytes()[start..])?;
        if self.bytes()[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.unescaped_string()?;
        self.eat(b':')?;
        Some(key)
    }

    pub(super) fn expect_key(&mut self, expected: &str) -> Option<()> {
        (self.key()? == expected).then_some(())
    }

    /// An object, `member` called with each key and the reader at its value.
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.members(|r| {
            let key = r.key()?;
            member(r, key)
        })
    }

    /// An object's braces and commas, `member` called at each member (its
    /// key and value to read).
    fn members(&mut self, mut member: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat_if(b'}') {
            return Some(());
        }
        loop {
            member(self)?;
            if !self.eat_if(b',') {
                return self.eat(b'}');
            }
        }
    }

    /// An object of a kind with known keys, `member` called with each key's
    /// index in `order` (`None` for a key the kind does not have) and the
    /// reader at its value. A known key given twice is not the common shape.
    /// Each key is first compared with the one `order` guesses, and the
    /// order met is learned for the next object of the kind.
    pub(super) fn object_of<const N: usize>(
        &mut self,
        order: &KeyOrder<N>,
        mut member: impl FnMut(&mut Self, Option<usize>) -> Option<()>,
    ) -> Option<()> {
        let mut seen = Seen::default();
        let mut previous = order.start();
        self.members(|r| {
            let index = r.known_key(order, previous)?;
            if let Some(index) = index {
                seen.first(index as u16)?;
                previous = index;
            }
            member(r, index)
        })
    }

    /// The next key and its colon, as its index in `order`: the guess for
    /// what follows `previous` if the bytes are exactly `"guess":`, else
    /// read as any key (and the order learned).
    fn known_key<const N: usize>(
        &mut self,
        order: &KeyOrder<N>,
        previous: usize,
    ) -> Option<Option<usize>> {
        self.peek()?;
        if let Some((index, length)) = order.guessed_at(previous, &self.bytes()[self.at..]) {
            self.at += length;
            return Some(Some(index));
        }
        let index = order.index_of(self.key()?);
        if let Some(index) = index {
            order.learn(previous, index);
        }
        Some(index)
    }

    /// An array, each element read by `element`.
    fn array<T>(&mut self, mut element: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut items = Vec::new();
        self.each_in_array(|r| {
            items.push(element(r)?);
            Some(())
        })?;
        Some(items)
    }

    /// An array, `element` called with the reader at each element.
    pub(super) fn each_in_array(
        &mut self,
        mut element: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'[')?;
        if self.eat_if(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if !self.eat_if(b',') {
                return self.eat(b']');
            }
        }
    }

    /// Consumes `null` if it comes next.
    pub(super) fn null(&mut self) -> bool {
        let found = self.peek() == Some(b'n') && self.bytes()[self.at..].starts_with(b"null");
        if found {
            self.at += 4;
        }
        found
    }

    /// `null` as `None`, else what `read` makes of the value.
    pub(super) fn or_null<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    /// `null` as the type's default, as `null_default` has it, else what
    /// `read` makes of the value.
    fn or_default<T: Default>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        Some(self.or_null(read)?.unwrap_or_default())
    }

    fn bool(&mut self) -> Option<bool> {
        let next = self.peek()?;
        let rest = &self.bytes()[self.at..];
        let (value, length) = match next {
            b't' if rest.starts_with(b"true") => (true, 4),
            b'f' if rest.starts_with(b"false") => (false, 5),
            _ => return None,
        };
        self.at += length;
        Some(value)
    }

    /// A JSON string, unescaped: borrowed from the payload when it has no
    /// escape (the common case), else built.
    pub(super) fn cow_string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        if let Some(text) = self.unescaped_string() {
            return Some(Cow::Borrowed(text));
        }
        self.at = start;
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let length = string_stop(&self.bytes()[self.at..])?;
            out.push_str(self.text.get(self.at..self.at + length)?);
            let stop = self.bytes()[self.at + length];
            self.at += length + 1;
            match stop {
                b'"' => return Some(Cow::Owned(out)),
                b'\\' => out.push(self.escape()?),
                _ => return None,
            }
        }
    }

    /// A JSON string, owned (one exact allocation when it has no escape).
    fn string(&mut self) -> Option<String> {
        self.cow_string().map(Cow::into_owned)
    }

    /// The character of the escape after a backslash; `None` for an invalid
    /// one and for surrogates (serde pairs them; this reader leaves them to it).
    fn escape(&mut self) -> Option<char> {
        let letter = *self.bytes().get(self.at)?;
        self.at += 1;
        Some(match letter {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hex = self.text.get(self.at..self.at + 4)?;
                if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return None;
                }
                self.at += 4;
                char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
            }
            _ => return None,
        })
    }

    /// A string id that may be a number (`string_id`): the number's text.
    fn string_id(&mut self) -> Option<String> {
        match self.peek()? {
            b'"' => self.string(),
            b'n' => self.null().then(String::new),
            _ => {
                let start = self.at;
                self.integer()?;
                Some(self.text[start..self.at].to_owned())
            }
        }
    }

    /// A plain JSON integer that fits an `i64` and that serde reads as one:
    /// no fraction, no exponent, no leading zero, not `-0`.
    pub(super) fn integer(&mut self) -> Option<i64> {
        self.peek()?;
        let bytes = self.bytes();
        let negative = bytes[self.at] == b'-';
        let start = self.at + usize::from(negative);
        let mut magnitude: u64 = 0;
        let mut end = start;
        while let Some(digit) = bytes.get(end).filter(|byte| byte.is_ascii_digit()) {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            end += 1;
        }
        let digits = end - start;
        let leading_zero = digits > 1 && bytes[start] == b'0';
        let not_integer = matches!(bytes.get(end), Some(b'.' | b'e' | b'E'));
        if digits == 0 || leading_zero || not_integer || (negative && magnitude == 0) {
            return None;
        }
        self.at = end;
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    pub(super) fn timestamp(&mut self) -> Option<Timestamp> {
        Timestamp::from_wire(self.integer()?)
    }

    /// Skips a value of a key the types do not have; a `strict` build
    /// rejects it, as its decoders deny unknown fields.
    fn skip_unknown(&mut self) -> Option<()> {
        if cfg!(feature = "strict") {
            return None;
        }
        self.skip_value()
    }

    /// Skips one value, checked as serde_json checks a value it ignores
    /// (`IgnoredAny`); `None` where serde would fail, for an object key with
    /// an escape, and past [`MAX_SKIPPED_NESTING`] (serde_json counts its
    /// nesting limit from the top of the payload, this skip from the value).
    pub(super) fn skip_value(&mut self) -> Option<()> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' if depth >= MAX_SKIPPED_NESTING => None,
            b'{' => self.object(|r, _| r.skip_nested(depth + 1)),
            b'[' => self.each_in_array(|r| r.skip_nested(depth + 1)),
            b't' | b'f' => self.bool().map(drop),
            b'n' => self.null().then_some(()),
            _ => self.skip_number(),
        }
    }

    /// Skips one value by its structure alone: a container to its matching
    /// bracket (found 64 bytes at a time, as the cut checks a payload's
    /// outline), a string to its closing quote, anything else to the next
    /// delimiter. Nothing inside is checked (`skip_value` checks): for
    /// payloads known to be JSON.
    pub(super) fn skip_structure(&mut self) -> Option<()> {
        let first = self.peek()?;
        let rest = &self.bytes()[self.at..];
        let length = match first {
            b'{' | b'[' => container_end(rest)?,
            b'"' => string_end(rest, 1)?,
            _ => rest
                .iter()
                .position(|byte| {
                    matches!(
                        byte,
                        b',' | b':' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'
                    )
                })
                .unwrap_or(rest.len()),
        };
        (length > 0).then(|| self.at += length)
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let length = string_stop(&self.bytes()[self.at..])?;
            let stop = self.bytes()[self.at + length];
            self.at += length + 1;
            match stop {
                b'"' => return Some(()),
                b'\\' => self.skip_escape()?,
                _ => return None,
            }
        }
    }

    /// Any escape serde accepts in a string it ignores: surrogates too.
    fn skip_escape(&mut self) -> Option<()> {
        let letter = *self.bytes().get(self.at)?;
        self.at += 1;
        match letter {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let hex = self.bytes().get(self.at..self.at + 4)?;
                self.at += 4;
                hex.iter().all(u8::is_ascii_hexdigit).then_some(())
            }
            _ => None,
        }
    }

    /// A JSON number: `-`, then `0` or digits not starting with `0`, then an
    /// optional fraction and exponent, each with at least one digit.
    fn skip_number(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let digits_at = |at: usize| {
            bytes[at.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count()
        };
        let mut at = self.at + usize::from(bytes.get(self.at) == Some(&b'-'));
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => at += digits_at(at),
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            let digits = digits_at(at + 1);
            if digits == 0 {
                return None;
            }
            at += 1 + digits;
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1 + usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
            let digits = digits_at(at);
            if digits == 0 {
                return None;
            }
            at += digits;
        }
        self.at = at;
        Some(())
    }

    fn chat_message(&mut self) -> Option<ChatMessage> {
        let (mut id, mut created_at, mut is_private) = (None, None, false);
        let (mut author, mut parts) = (None, Vec::new());
        self.object_of(&MESSAGE_KEYS, |r, key| match key {
            Some(0) => put(&mut id, r.integer().map(Some)),
            Some(1) => put(&mut created_at, r.or_null(Reader::timestamp)),
            Some(2) => put(&mut is_private, r.or_default(Reader::bool)),
            Some(3) => put(&mut author, r.or_null(Reader::author)),
            Some(4) => put(&mut parts, r.or_default(|r| r.array(Reader::part))),
            _ => r.skip_unknown(),
        })?;
        Some(ChatMessage {
            id: id?,
            created_at,
            is_private,
            author,
            parts,
        })
    }

    fn author(&mut self) -> Option<Author> {
        let mut id = None;
        let mut author = Author::default();
        self.object_of(&AUTHOR_KEYS, |r, key| match key {
            Some(0) => put(&mut id, r.integer().map(Some)),
            Some(1) => put(&mut author.nick, r.or_default(Reader::string)),
            Some(2) => put(
                &mut author.nick_color,
                r.or_null(|r| r.integer().map(NickColor)),
            ),
            Some(3) => put(&mut author.avatar_url, r.or_null(Reader::string)),
            Some(4) => put(&mut author.is_owner, r.or_default(Reader::bool)),
            Some(5) => put(&mut author.is_moderator, r.or_default(Reader::bool)),
            Some(6) => put(&mut author.badges, r.or_default(|r| r.array(Reader::badge))),
            Some(7) => put(&mut author.roles, r.or_default(|r| r.array(Reader::role))),
            _ => r.skip_unknown(),
        })?;
        author.id = id?;
        Some(author)
    }

    fn badge(&mut self) -> Option<Badge> {
        static KEYS: KeyOrder<6> = KeyOrder::new([
            "id",
            "name",
            "achievement_name",
            "small_url",
            "medium_url",
            "large_url",
        ]);
        let mut badge = Badge::default();
        self.object_of(&KEYS, |r, key| match key {
            Some(0) => put(&mut badge.id, r.string_id()),
            Some(1) => put(&mut badge.name, r.or_default(Reader::string)),
            Some(2) => put(&mut badge.achievement_name, r.or_default(Reader::string)),
            Some(3) => put(&mut badge.small_url, r.or_null(Reader::string)),
            Some(4) => put(&mut badge.medium_url, r.or_null(Reader::string)),
            Some(5) => put(&mut badge.large_url, r.or_null(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(badge)
    }

    fn role(&mut self) -> Option<Role> {
        static KEYS: KeyOrder<5> =
            KeyOrder::new(["id", "name", "small_url", "medium_url", "large_url"]);
        let mut role = Role::default();
        self.object_of(&KEYS, |r, key| match key {
            Some(0) => put(&mut role.id, r.string_id()),
            Some(1) => put(&mut role.name, r.or_default(Reader::string)),
            Some(2) => put(&mut role.small_url, r.or_null(Reader::string)),
            Some(3) => put(&mut role.medium_url, r.or_null(Reader::string)),
            Some(4) => put(&mut role.large_url, r.or_null(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(role)
    }

    /// A part of a known kind alone in its object (`PartVisitor` keeps any
    /// other shape raw or skips extra keys; this reader leaves both to it).
    fn part(&mut self) -> Option<Part> {
        self.eat(b'{')?;
        let part = match self.known_key(&PART_KINDS, PART_KINDS.start())? {
            Some(0) => Part::Text(self.text_part()?),
            Some(1) => Part::Mention(self.mention_part()?),
            Some(2) => Part::Smile(self.smile_part()?),
            Some(3) => Part::Link(self.link_part()?),
            _ => return None,
        };
        self.eat(b'}')?;
        Some(part)
    }

    fn text_part(&mut self) -> Option<TextPart> {
        let mut part = TextPart::default();
        self.object_of(&TEXT_KEYS, |r, key| match key {
            Some(0) => put(&mut part.content, r.or_default(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(part)
    }

    fn mention_part(&mut self) -> Option<MentionPart> {
        let mut part = MentionPart::default();
        self.object_of(&MENTION_KEYS, |r, key| match key {
            Some(0) => put(&mut part.id, r.or_null(Reader::integer)),
            Some(1) => put(&mut part.nick, r.or_default(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(part)
    }

    fn smile_part(&mut self) -> Option<SmilePart> {
        let mut part = SmilePart::default();
        self.object_of(&SMILE_KEYS, |r, key| match key {
            Some(0) => put(&mut part.id, r.string_id()),
            Some(1) => put(&mut part.name, r.or_default(Reader::string)),
            Some(2) => put(&mut part.animated, r.or_default(Reader::bool)),
            Some(3) => put(&mut part.small_url, r.or_null(Reader::string)),
            Some(4) => put(&mut part.medium_url, r.or_null(Reader::string)),
            Some(5) => put(&mut part.large_url, r.or_null(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(part)
    }

    fn link_part(&mut self) -> Option<LinkPart> {
        let mut part = LinkPart::default();
        self.object_of(&LINK_KEYS, |r, key| match key {
            Some(0) => put(&mut part.content, r.or_default(Reader::string)),
            Some(1) => put(&mut part.url, r.or_default(Reader::string)),
            _ => r.skip_unknown(),
        })?;
        Some(part)
    }
}

#[cfg(test)]
#[path = "chat_reader_tests.rs"]
pub(super) mod tests;
