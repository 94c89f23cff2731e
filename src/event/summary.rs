//! A chat message read for a few fields: the cheap alternative to building
//! a whole [`ChatMessage`](super::ChatMessage) for callers that only want who
//! wrote what.

use std::borrow::Cow;

use serde::Deserialize;

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
        let envelope: Envelope<'a> = serde_json::from_str(payload).ok()?;
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
