//! Chat events: `channel_chat_message_send` and `channel_chat_message_delete`,
//! and the message parts shared with reward demands.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::de::{Key, null_default, raw_eq, string_id};
use super::palette::NickColor;
use super::time::Timestamp;

/// `channel_chat_message_send`: one chat message (the docs' `v1Message`),
/// read from `data.chat_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChatMessage {
    /// Message id (documented as int32); the key for de-duplication.
    pub id: i64,
    /// When it was sent.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Visible only to the user whose token received it.
    #[serde(default, deserialize_with = "null_default")]
    pub is_private: bool,
    /// Who wrote it.
    #[serde(default)]
    pub author: Option<Author>,
    /// The message body, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub parts: Vec<Part>,
}

impl ChatMessage {
    /// The message as one line of text; see [`plain_text`].
    pub fn plain_text(&self) -> String {
        plain_text(&self.parts)
    }

    /// The author's user id, when VK sent an author.
    ///
    /// ```
    /// # use vklive_pubsub::event::{Author, ChatMessage};
    /// let message = ChatMessage {
    ///     id: 1, created_at: None, is_private: false,
    ///     author: Some(Author { id: 5, nick: "zed".into(), ..Default::default() }), parts: vec![],
    /// };
    /// assert_eq!((message.author_id(), message.author_nick()), (Some(5), "zed"));
    /// ```
    pub fn author_id(&self) -> Option<i64> {
        self.author.as_ref().map(|author| author.id)
    }

    /// The author's nick (empty when VK sent no author); see
    /// [`ChatMessage::author_id`].
    pub fn author_nick(&self) -> &str {
        self.author
            .as_ref()
            .map_or("", |author| author.nick.as_str())
    }

    /// Whether `user_id` wrote this message: a bot passes its own id (from
    /// [`VkApi::current_user`](crate::auth::VkApi::current_user)) so that it
    /// never answers itself.
    ///
    /// ```
    /// # use vklive_pubsub::event::{Author, ChatMessage};
    /// let message = ChatMessage {
    ///     id: 1, created_at: None, is_private: false,
    ///     author: Some(Author { id: 42, ..Default::default() }), parts: vec![],
    /// };
    /// assert!(message.is_from(42));
    /// assert!(!message.is_from(7));
    /// ```
    pub fn is_from(&self, user_id: i64) -> bool {
        self.author_id() == Some(user_id)
    }

    /// The author owns the channel; see [`ChatMessage::is_from_moderator`].
    pub fn is_from_owner(&self) -> bool {
        self.author.as_ref().is_some_and(|author| author.is_owner)
    }

    /// The author moderates the channel (the owner counts as a moderator).
    ///
    /// ```
    /// # use vklive_pubsub::event::{Author, ChatMessage};
    /// let owner = Author { id: 1, is_owner: true, ..Default::default() };
    /// let message = ChatMessage {
    ///     id: 1, created_at: None, is_private: false, author: Some(owner), parts: vec![],
    /// };
    /// assert!(message.is_from_moderator() && message.is_from_owner());
    /// ```
    pub fn is_from_moderator(&self) -> bool {
        self.author
            .as_ref()
            .is_some_and(|author| author.is_moderator || author.is_owner)
    }

    /// The author is a paid subscriber (see [`Author::is_subscriber`]).
    ///
    /// ```
    /// # use vklive_pubsub::event::{Author, Badge, ChatMessage};
    /// let badge = Badge { achievement_name: "subscription_01".into(), ..Default::default() };
    /// let fan = Author { id: 3, badges: vec![badge], ..Default::default() };
    /// let message = ChatMessage { id: 1, created_at: None, is_private: false, author: Some(fan), parts: vec![] };
    /// assert!(message.is_from_subscriber() && !message.is_from_moderator());
    /// ```
    pub fn is_from_subscriber(&self) -> bool {
        self.author.as_ref().is_some_and(Author::is_subscriber)
    }

    /// The users mentioned in the message, in order.
    ///
    /// ```
    /// # use vklive_pubsub::event::{ChatMessage, Part};
    /// let message = ChatMessage {
    ///     id: 1, created_at: None, is_private: false, author: None,
    ///     parts: vec![Part::text("hi "), Part::mention(7), Part::text(" and "), Part::mention(8)],
    /// };
    /// let ids: Vec<Option<i64>> = message.mentions().map(|m| m.id).collect();
    /// assert_eq!(ids, [Some(7), Some(8)]);
    /// assert!(message.mentions_user(8));
    /// ```
    pub fn mentions(&self) -> impl Iterator<Item = &MentionPart> + '_ {
        self.parts.iter().filter_map(|part| match part {
            Part::Mention(mention) => Some(mention),
            _ => None,
        })
    }

    /// Whether the message mentions `user_id`; see [`ChatMessage::mentions`].
    pub fn mentions_user(&self, user_id: i64) -> bool {
        self.mentions().any(|mention| mention.id == Some(user_id))
    }

    /// The command in this message, if its text starts with `prefix`
    /// (leading whitespace ignored): see [`ChatCommand::parse`].
    ///
    /// ```
    /// # use vklive_pubsub::event::{ChatMessage, Part};
    /// let message = ChatMessage {
    ///     id: 1, created_at: None, is_private: false, author: None,
    ///     parts: vec![Part::text("!so "), Part::mention(7), Part::text(" now\n")],
    /// };
    /// let command = message.command("!").unwrap();
    /// assert!(command.is("SO"));
    /// assert_eq!(command.args, ["@7", "now"]);
    /// assert!(message.command("?").is_none());
    /// ```
    pub fn command(&self, prefix: &str) -> Option<ChatCommand> {
        ChatCommand::parse(&self.plain_text(), prefix)
    }
}

/// A bot command typed in chat: `!name arg1 arg2 …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCommand {
    /// The command's name, as typed, without the prefix (`ping` for `!ping`).
    pub name: String,
    /// The words after the name, split on whitespace (mentions read `@nick`).
    pub args: Vec<String>,
    /// Everything after the name, trimmed, as typed.
    pub rest: String,
}

impl ChatCommand {
    /// Parses `text` as a command with `prefix`: the text (leading whitespace
    /// ignored) must start with `prefix` immediately followed by a name; the
    /// name ends at the first whitespace. An empty prefix accepts any text.
    ///
    /// ```
    /// use vklive_pubsub::event::ChatCommand;
    /// let command = ChatCommand::parse("  !Uptime please  now", "!").unwrap();
    /// assert_eq!(command.name, "Uptime");
    /// assert!(command.is("uptime"));
    /// assert_eq!(command.args, ["please", "now"]);
    /// assert_eq!(command.rest, "please  now");
    /// assert!(ChatCommand::parse("! ping", "!").is_none());
    /// assert!(ChatCommand::parse("ping", "!").is_none());
    /// ```
    pub fn parse(text: &str, prefix: &str) -> Option<ChatCommand> {
        let after = text.trim_start().strip_prefix(prefix)?;
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (name, rest) = after.split_at(end);
        if name.is_empty() {
            return None;
        }
        let rest = rest.trim();
        Some(ChatCommand {
            name: name.to_owned(),
            args: rest.split_whitespace().map(str::to_owned).collect(),
            rest: rest.to_owned(),
        })
    }

    /// Whether the name is `name`, ignoring case (Unicode-aware, so
    /// `!ПИНГ` is `пинг`).
    ///
    /// ```
    /// use vklive_pubsub::event::ChatCommand;
    /// assert!(ChatCommand::parse("!ПИНГ", "!").unwrap().is("пинг"));
    /// ```
    pub fn is(&self, name: &str) -> bool {
        self.name == name || self.name.to_lowercase() == name.to_lowercase()
    }
}

/// Renders parts as text: text as is, mentions as `@nick`, smiles as
/// `:name:`, links as their visible content (their URL when it is empty).
/// Unknown parts are left out.
///
/// Trailing whitespace is trimmed: VK ends many messages with a text part
/// holding only `"\n"`, which every client drops. Line breaks inside the
/// message are kept.
///
/// ```
/// use vklive_pubsub::event::{plain_text, Part, TextPart, SmilePart};
/// let parts = vec![
///     Part::Text(TextPart { content: "hi ".into() }),
///     Part::Smile(SmilePart { name: "Kappa".into(), ..Default::default() }),
///     Part::Text(TextPart { content: "\n".into() }),
/// ];
/// assert_eq!(plain_text(&parts), "hi :Kappa:");
/// ```
pub fn plain_text(parts: &[Part]) -> String {
    let mut text = String::new();
    for part in parts {
        part.push_plain(&mut text);
    }
    text.truncate(text.trim_end().len());
    text
}

/// The author of a chat message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Author {
    /// User id.
    pub id: i64,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub nick: String,
    /// Palette index of the nick colour; see [`Author::nick_color_hex`].
    #[serde(default)]
    pub nick_color: Option<NickColor>,
    /// Avatar image URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// The author owns the channel.
    #[serde(default, deserialize_with = "null_default")]
    pub is_owner: bool,
    /// The author moderates the channel.
    #[serde(default, deserialize_with = "null_default")]
    pub is_moderator: bool,
    /// Badges shown next to the nick.
    #[serde(default, deserialize_with = "null_default")]
    pub badges: Vec<Badge>,
    /// Channel roles (e.g. VIP).
    #[serde(default, deserialize_with = "null_default")]
    pub roles: Vec<Role>,
}

impl Author {
    /// The nick colour as `#RRGGBB`; `None` when absent or outside the palette.
    pub fn nick_color_hex(&self) -> Option<&'static str> {
        self.nick_color.and_then(NickColor::hex)
    }

    /// A paid subscriber: a badge whose `achievement_name` starts with
    /// `subscription` (e.g. `subscription_01`).
    pub fn is_subscriber(&self) -> bool {
        self.has_achievement(|name| name.starts_with("subscription"))
    }

    /// The platform's own bot, which posts notices such as reward
    /// redemptions: a badge with `achievement_name` `internal_chatbot`.
    pub fn is_platform_bot(&self) -> bool {
        self.has_achievement(|name| name == "internal_chatbot")
    }

    fn has_achievement(&self, test: impl Fn(&str) -> bool) -> bool {
        self.badges
            .iter()
            .any(|badge| test(&badge.achievement_name))
    }
}

/// A badge next to a nick.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Badge {
    /// Badge id.
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Display name; empty except for custom badges.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// What it stands for: `owner`, `verified_streamer`, `subscription_01`,
    /// `internal_chatbot`, …
    #[serde(default, deserialize_with = "null_default")]
    pub achievement_name: String,
    /// Small image URL.
    #[serde(default)]
    pub small_url: Option<String>,
    /// Medium image URL.
    #[serde(default)]
    pub medium_url: Option<String>,
    /// Large image URL.
    #[serde(default)]
    pub large_url: Option<String>,
}

/// A channel role of a chat author.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Role {
    /// Role id.
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Display name (e.g. `VIP`).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Small image URL.
    #[serde(default)]
    pub small_url: Option<String>,
    /// Medium image URL.
    #[serde(default)]
    pub medium_url: Option<String>,
    /// Large image URL.
    #[serde(default)]
    pub large_url: Option<String>,
}

/// `channel_chat_message_delete`: a message was removed, read from
/// `data.chat_message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChatMessageDelete {
    /// Id of the deleted message.
    pub id: i64,
}

// ---------------------------------------------------------------------------
// Parts
// ---------------------------------------------------------------------------

/// One piece of a message body. On the wire a part is an object with exactly
/// one key naming its kind: `{"text":{"content":"hi"}}`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Part {
    /// `text`.
    Text(TextPart),
    /// `mention`: a reference to a user.
    Mention(MentionPart),
    /// `smile`: an emote.
    Smile(SmilePart),
    /// `link`.
    Link(LinkPart),
    /// A part of a kind this crate does not know, kept as the whole part
    /// object (`{"kind": …}`), so nothing is lost when VK adds one.
    Unknown(Box<RawValue>),
}

/// A `text` part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct TextPart {
    /// The text, possibly just `"\n"`.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
}

/// A `mention` part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct MentionPart {
    /// The mentioned user's id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The mentioned user's nick.
    #[serde(default, deserialize_with = "null_default")]
    pub nick: String,
}

/// A `smile` (emote) part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct SmilePart {
    /// Smile id.
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Smile name, e.g. `Kappa`.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The smile is animated.
    #[serde(default, deserialize_with = "null_default")]
    pub animated: bool,
    /// Small image URL.
    #[serde(default)]
    pub small_url: Option<String>,
    /// Medium image URL.
    #[serde(default)]
    pub medium_url: Option<String>,
    /// Large image URL.
    #[serde(default)]
    pub large_url: Option<String>,
}

/// A `link` part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct LinkPart {
    /// The visible text.
    #[serde(default, deserialize_with = "null_default")]
    pub content: String,
    /// The target URL.
    #[serde(default, deserialize_with = "null_default")]
    pub url: String,
}

impl Part {
    /// A `text` part.
    ///
    /// ```
    /// use vklive_pubsub::event::Part;
    /// let parts = [Part::text("hi "), Part::mention(42), Part::smile("kappa-id"),
    ///              Part::link("https://example.org")];
    /// assert_eq!(parts.map(|p| p.kind().unwrap()), ["text", "mention", "smile", "link"]);
    /// ```
    pub fn text(content: impl Into<String>) -> Part {
        Part::Text(TextPart {
            content: content.into(),
        })
    }

    /// A `mention` of the user `user_id` (VK fills in the nick).
    ///
    /// ```
    /// use vklive_pubsub::event::{plain_text, Part};
    /// assert_eq!(plain_text(&[Part::mention(42)]), "@42");
    /// ```
    pub fn mention(user_id: i64) -> Part {
        Part::Mention(MentionPart {
            id: Some(user_id),
            nick: String::new(),
        })
    }

    /// A `smile` (emote) by its id; see [`Part::text`].
    pub fn smile(id: impl Into<String>) -> Part {
        Part::Smile(SmilePart {
            id: id.into(),
            ..SmilePart::default()
        })
    }

    /// A `link` to `url`, shown as the URL itself.
    ///
    /// ```
    /// use vklive_pubsub::event::{plain_text, Part};
    /// assert_eq!(plain_text(&[Part::link("https://e.org")]), "https://e.org");
    /// ```
    pub fn link(url: impl Into<String>) -> Part {
        let url = url.into();
        Part::Link(LinkPart {
            content: url.clone(),
            url,
        })
    }

    /// The wire key of this part (`text`, `mention`, …); for an unknown part,
    /// `None` (read its raw JSON instead).
    pub fn kind(&self) -> Option<&'static str> {
        match self {
            Part::Text(_) => Some("text"),
            Part::Mention(_) => Some("mention"),
            Part::Smile(_) => Some("smile"),
            Part::Link(_) => Some("link"),
            Part::Unknown(_) => None,
        }
    }

    fn push_plain(&self, out: &mut String) {
        match self {
            Part::Text(text) => out.push_str(&text.content),
            Part::Mention(mention) => push_mention(mention, out),
            Part::Smile(smile) => {
                out.push(':');
                out.push_str(&smile.name);
                out.push(':');
            }
            Part::Link(link) if link.content.is_empty() => out.push_str(&link.url),
            Part::Link(link) => out.push_str(&link.content),
            Part::Unknown(_) => {}
        }
    }
}

/// `@nick`, or `@<id>` when VK left the nick out.
fn push_mention(mention: &MentionPart, out: &mut String) {
    out.push('@');
    match (mention.nick.is_empty(), mention.id) {
        (true, Some(id)) => out.push_str(&id.to_string()),
        _ => out.push_str(&mention.nick),
    }
}

impl PartialEq for Part {
    fn eq(&self, other: &Part) -> bool {
        match (self, other) {
            (Part::Text(a), Part::Text(b)) => a == b,
            (Part::Mention(a), Part::Mention(b)) => a == b,
            (Part::Smile(a), Part::Smile(b)) => a == b,
            (Part::Link(a), Part::Link(b)) => a == b,
            (Part::Unknown(a), Part::Unknown(b)) => raw_eq(a, b),
            _ => false,
        }
    }
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Written back in the wire shape, so a serialized message reads back.
        match self {
            Part::Text(part) => single_entry(serializer, "text", part),
            Part::Mention(part) => single_entry(serializer, "mention", part),
            Part::Smile(part) => single_entry(serializer, "smile", part),
            Part::Link(part) => single_entry(serializer, "link", part),
            Part::Unknown(raw) => raw.serialize(serializer),
        }
    }
}

fn single_entry<S: Serializer, T: Serialize>(
    serializer: S,
    key: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, value)?;
    map.end()
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Part, D::Error> {
        deserializer.deserialize_map(PartVisitor)
    }
}

/// Decodes a part in one pass: the first key picks the type, and only an
/// unknown key pays for keeping raw JSON.
struct PartVisitor;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = Part;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message part object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
        let Some(Key(key)) = map.next_key::<Key>()? else {
            return raw_part(String::from("{}"));
        };
        let part = match key.as_ref() {
            "text" => Part::Text(map.next_value()?),
            "mention" => Part::Mention(map.next_value()?),
            "smile" => Part::Smile(map.next_value()?),
            "link" => Part::Link(map.next_value()?),
            _ => return unknown_part(&key, map),
        };
        finish_part(map)?;
        Ok(part)
    }
}

/// After the one documented key: strict builds reject a second key, lenient
/// ones skip it.
fn finish_part<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while let Some(Key(extra)) = map.next_key::<Key>()? {
        if cfg!(feature = "strict") {
            return Err(de::Error::custom(format_args!(
                "message part has a second key `{extra}`"
            )));
        }
        map.next_value::<IgnoredAny>()?;
    }
    Ok(())
}

/// Rebuilds the whole part object from its entries, values kept verbatim.
fn unknown_part<'de, A: MapAccess<'de>>(first: &str, mut map: A) -> Result<Part, A::Error> {
    let mut object = String::from("{");
    push_entry(&mut object, first, &map.next_value::<Box<RawValue>>()?)?;
    while let Some(Key(key)) = map.next_key::<Key>()? {
        object.push(',');
        push_entry(&mut object, &key, &map.next_value::<Box<RawValue>>()?)?;
    }
    object.push('}');
    raw_part(object)
}

fn push_entry<E: de::Error>(object: &mut String, key: &str, value: &RawValue) -> Result<(), E> {
    // Keys arrive unescaped; re-escape them so the object stays valid JSON.
    object.push_str(&serde_json::to_string(key).map_err(E::custom)?);
    object.push(':');
    object.push_str(value.get());
    Ok(())
}

fn raw_part<E: de::Error>(object: String) -> Result<Part, E> {
    RawValue::from_string(object)
        .map(Part::Unknown)
        .map_err(E::custom)
}

/// Where a chat message stands in its chat, for ordering and de-duplication
/// across live delivery and the REST history: its time, then its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChatKey {
    /// `created_at` in Unix milliseconds (0 when absent).
    pub created_at_millis: i64,
    /// The message id.
    pub id: i64,
}

impl ChatMessage {
    /// This message's [`ChatKey`].
    pub fn key(&self) -> ChatKey {
        ChatKey {
            created_at_millis: self.created_at.map_or(0, Timestamp::unix_millis),
            id: self.id,
        }
    }
}
