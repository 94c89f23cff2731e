//! A chat message read for a few fields: the cheap alternative to building
//! a whole [`ChatMessage`](super::ChatMessage) for callers that only want who
//! wrote what.

use std::borrow::Cow;

use serde::Deserialize;

use super::chat_reader::{
    AUTHOR_KEYS, LINK_KEYS, MENTION_KEYS, MESSAGE_KEYS, PART_KINDS, Reader, SMILE_KEYS, TEXT_KEYS,
    put, read_chat_envelope,
};
use super::kind;

/// The fields of a `channel_chat_message_send` most bots and overlays read,
/// borrowed from the payload where it has no escapes: no badge, role, avatar
/// or part is built, and the rest of the payload is skipped unparsed.
///
/// It agrees with the full decode: `text` is what
/// [`ChatMessage::plain_text`](super::ChatMessage::plain_text) gives, `nick`
/// what [`ChatMessage::author_nick`](super::ChatMessage::author_nick) gives.
///
/// ```
/// use vklive_pubsub::event::ChatSummary;
/// let payload = r#"{"type":"channel_chat_message_send","data":{"chat_message":{
///     "id":7,"author":{"id":5,"nick":"zed","badges":[]},
///     "parts":[{"text":{"content":"hi "}},{"mention":{"id":9,"nick":"ann"}}]}}}"#;
/// let summary = ChatSummary::decode(payload).unwrap();
/// assert_eq!((summary.id, summary.author_id), (7, Some(5)));
/// assert_eq!((summary.nick.as_ref(), summary.text.as_str()), ("zed", "hi @ann"));
/// assert!(ChatSummary::decode(r#"{"type":"channel_follow_create","data":{}}"#).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChatSummary<'a> {
    /// Message id.
    pub id: i64,
    /// The author's user id, when VK sent an author.
    pub author_id: Option<i64>,
    /// The author's nick (empty when VK sent no author).
    pub nick: Cow<'a, str>,
    /// The message as one line of text, as `ChatMessage::plain_text` renders it.
    pub text: String,
}

impl<'a> ChatSummary<'a> {
    /// Reads a publication payload; `None` when it is not a chat message, or
    /// has a field this reading does not take (decode it in full then).
    pub fn decode(payload: &'a str) -> Option<ChatSummary<'a>> {
        read_directly(payload).or_else(|| decode_with_serde(payload))
    }
}

/// The summary by serde: any shape [`read_directly`] declines.
fn decode_with_serde(payload: &str) -> Option<ChatSummary<'_>> {
    let envelope: Envelope<'_> = serde_json::from_str(payload).ok()?;
    if envelope.kind != kind::CHAT_MESSAGE_SEND {
        return None;
    }
    let message = envelope.data?.chat_message?;
    let (author_id, nick) = match message.author {
        Some(author) => (Some(author.id), author.nick.unwrap_or_default()),
        None => (None, Cow::Borrowed("")),
    };
    let mut text = String::new();
    for part in message.parts.unwrap_or_default() {
        part.push_plain(&mut text);
    }
    text.truncate(text.trim_end().len());
    Some(ChatSummary {
        id: message.id,
        author_id,
        nick,
        text,
    })
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(default, borrow)]
    chat_message: Option<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    id: i64,
    #[serde(default, borrow)]
    author: Option<Author<'a>>,
    #[serde(default, borrow)]
    parts: Option<Vec<Part<'a>>>,
}

#[derive(Deserialize)]
struct Author<'a> {
    id: i64,
    // Badges, roles and the rest are skipped, not built.
    #[serde(default, borrow)]
    nick: Option<Cow<'a, str>>,
}

/// A part, as one object with one key naming its kind.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default, borrow)]
    text: Option<Content<'a>>,
    #[serde(default, borrow)]
    mention: Option<Mention<'a>>,
    #[serde(default, borrow)]
    smile: Option<Smile<'a>>,
    #[serde(default, borrow)]
    link: Option<Link<'a>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Mention<'a> {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default, borrow)]
    nick: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Smile<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Link<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    url: Option<Cow<'a, str>>,
}

impl Part<'_> {
    /// As `Part::push_plain` renders the part. A part has one key; should
    /// one carry several, text wins, then mention, smile and link.
    fn push_plain(&self, out: &mut String) {
        if let Some(text) = &self.text {
            out.push_str(text.content.as_deref().unwrap_or(""));
        } else if let Some(mention) = &self.mention {
            out.push('@');
            match (mention.nick.as_deref().unwrap_or(""), mention.id) {
                ("", Some(id)) => out.push_str(&id.to_string()),
                (nick, _) => out.push_str(nick),
            }
        } else if let Some(smile) = &self.smile {
            out.push(':');
            out.push_str(smile.name.as_deref().unwrap_or(""));
            out.push(':');
        } else if let Some(link) = &self.link {
            match link.content.as_deref().unwrap_or("") {
                "" => out.push_str(link.url.as_deref().unwrap_or("")),
                content => out.push_str(content),
            }
        }
    }
}

/// The summary read without serde, for the common shape of the payload (see
/// `chat_reader`): the envelope with `type` then `data` and nothing else,
/// keys without escapes, each key at most once. What it skips is checked as
/// serde checks what it ignores. `None` sends the payload to serde.
fn read_directly(payload: &str) -> Option<ChatSummary<'_>> {
    read_chat_envelope(payload, read_message)
}

fn read_message<'a>(reader: &mut Reader<'a>) -> Option<ChatSummary<'a>> {
    let mut id = None;
    let mut author: Option<Author<'a>> = None;
    let mut text = String::new();
    reader.object_of(&MESSAGE_KEYS, |r, key| match key {
        Some(0) => put(&mut id, r.integer().map(Some)),
        Some(3) => put(&mut author, r.or_null(read_author)),
        Some(4) => {
            if r.null() {
                return Some(());
            }
            r.each_in_array(|r| {
                read_part(r)?.push_plain(&mut text);
                Some(())
            })
        }
        _ => r.skip_value(),
    })?;
    text.truncate(text.trim_end().len());
    let (author_id, nick) = match author {
        Some(author) => (Some(author.id), author.nick.unwrap_or_default()),
        None => (None, Cow::Borrowed("")),
    };
    Some(ChatSummary {
        id: id?,
        author_id,
        nick,
        text,
    })
}

fn read_author<'a>(reader: &mut Reader<'a>) -> Option<Author<'a>> {
    let (mut id, mut nick) = (None, None);
    reader.object_of(&AUTHOR_KEYS, |r, key| match key {
        Some(0) => put(&mut id, r.integer().map(Some)),
        Some(1) => put(&mut nick, r.or_null(Reader::cow_string)),
        _ => r.skip_value(),
    })?;
    Some(Author { id: id?, nick })
}

fn read_part<'a>(reader: &mut Reader<'a>) -> Option<Part<'a>> {
    let mut part = Part {
        text: None,
        mention: None,
        smile: None,
        link: None,
    };
    reader.object_of(&PART_KINDS, |r, key| match key {
        Some(0) => put(&mut part.text, r.or_null(read_content)),
        Some(1) => put(&mut part.mention, r.or_null(read_mention)),
        Some(2) => put(&mut part.smile, r.or_null(read_smile)),
        Some(3) => put(&mut part.link, r.or_null(read_link)),
        _ => r.skip_value(),
    })?;
    Some(part)
}

fn read_content<'a>(reader: &mut Reader<'a>) -> Option<Content<'a>> {
    let mut content = None;
    reader.object_of(&TEXT_KEYS, |r, key| match key {
        Some(0) => put(&mut content, r.or_null(Reader::cow_string)),
        _ => r.skip_value(),
    })?;
    Some(Content { content })
}

fn read_mention<'a>(reader: &mut Reader<'a>) -> Option<Mention<'a>> {
    let (mut id, mut nick) = (None, None);
    reader.object_of(&MENTION_KEYS, |r, key| match key {
        Some(0) => put(&mut id, r.or_null(Reader::integer)),
        Some(1) => put(&mut nick, r.or_null(Reader::cow_string)),
        _ => r.skip_value(),
    })?;
    Some(Mention { id, nick })
}

fn read_smile<'a>(reader: &mut Reader<'a>) -> Option<Smile<'a>> {
    let mut name = None;
    reader.object_of(&SMILE_KEYS, |r, key| match key {
        Some(1) => put(&mut name, r.or_null(Reader::cow_string)),
        _ => r.skip_value(),
    })?;
    Some(Smile { name })
}

fn read_link<'a>(reader: &mut Reader<'a>) -> Option<Link<'a>> {
    let (mut content, mut url) = (None, None);
    reader.object_of(&LINK_KEYS, |r, key| match key {
        Some(0) => put(&mut content, r.or_null(Reader::cow_string)),
        Some(1) => put(&mut url, r.or_null(Reader::cow_string)),
        _ => r.skip_value(),
    })?;
    Some(Link { content, url })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::chat_reader::tests::{
        agrees_with_serde, on_every_base, on_every_cut_short_base, on_mutations,
    };

    /// The rule every payload obeys; returns whether it was read directly.
    fn assert_agrees(payload: &str) -> bool {
        agrees_with_serde(payload, read_directly(payload), || {
            decode_with_serde(payload)
        })
    }

    #[test]
    fn reads_every_chat_fixture_and_shape_as_serde_does() {
        on_every_base(assert_agrees);
    }

    #[test]
    fn every_cut_short_payload_agrees_with_serde() {
        on_every_cut_short_base(assert_agrees);
    }

    #[test]
    fn agrees_with_serde_on_thousands_of_mutated_payloads() {
        on_mutations(0x6a09_e667_f3bc_c908, 30_000, 10, assert_agrees);
    }
}
