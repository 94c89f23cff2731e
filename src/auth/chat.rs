//! What a bot does over REST: send chat (with the stream id looked up and
//! cached, a per-channel rate limit and typed errors), answer reward
//! demands, and check its token. See `docs/bots.md`.

use std::time::{Duration, SystemTime};

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use super::api::VkApi;
use super::channel_name::{MAX_CHANNEL_NAME_BYTES, invalid_channel};
use super::http::MAX_RETRY_AFTER;
use crate::error::{Error, ErrorKind};
use crate::event::{ChannelResponse, ChatMessage, MentionPart, Part, StreamInfo, Timestamp};

/// An outgoing chat message: text, mentions, smiles and links, in order.
///
/// ```
/// use vklive_pubsub::auth::Message;
/// let message = Message::new().mention(42).text(" pong ").smile("kappa-id").link("https://example.org");
/// assert_eq!(message.parts().len(), 4);
/// assert_eq!(
///     message.to_json(),
///     r#"{"parts":[{"mention":{"id":42}},{"text":{"content":" pong "}},{"smile":{"id":"kappa-id"}},{"link":{"url":"https://example.org"}}]}"#,
/// );
/// let plain: Message = "hello".into();
/// assert_eq!(plain.plain_text(), "hello");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    parts: Vec<Part>,
}

impl Message {
    /// An empty message; add parts with the builder methods.
    ///
    /// ```
    /// # use vklive_pubsub::auth::Message;
    /// let message = Message::new().text("hi ").mention(7);
    /// assert!(!message.is_empty());
    /// assert_eq!(message.plain_text(), "hi @7");
    /// ```
    pub fn new() -> Message {
        Message::default()
    }

    /// Appends a text part.
    pub fn text(self, content: impl Into<String>) -> Message {
        self.part(Part::text(content))
    }

    /// Appends a mention of the user `user_id`.
    pub fn mention(self, user_id: i64) -> Message {
        self.part(Part::mention(user_id))
    }

    /// Appends a smile (emote) by its id.
    pub fn smile(self, id: impl Into<String>) -> Message {
        self.part(Part::smile(id))
    }

    /// Appends a link.
    pub fn link(self, url: impl Into<String>) -> Message {
        self.part(Part::link(url))
    }

    /// Appends any part.
    ///
    /// ```
    /// # use vklive_pubsub::{auth::Message, event::Part};
    /// let message = Message::new().part(Part::text("a")).part(Part::link("https://e.org"));
    /// assert_eq!(message.parts(), [Part::text("a"), Part::link("https://e.org")]);
    /// ```
    pub fn part(mut self, part: Part) -> Message {
        self.parts.push(part);
        self
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the message has no part.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The message as text (see [`plain_text`](crate::event::plain_text)).
    pub fn plain_text(&self) -> String {
        crate::event::plain_text(&self.parts)
    }

    /// The body of `POST /v1/chat/message/send`: `{"parts":[…]}` with only
    /// the documented fields of each part (`text.content`, `mention.id`,
    /// `smile.id`, `link.url`); an unknown part is sent as it is.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from(r#"{"parts":[]}"#))
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::new().text(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::new().text(text)
    }
}

impl From<Vec<Part>> for Message {
    fn from(parts: Vec<Part>) -> Message {
        Message { parts }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Parts<'a>(&'a [Part]);
        impl Serialize for Parts<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for part in self.0 {
                    seq.serialize_element(&SendPart(part))?;
                }
                seq.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("parts", &Parts(&self.parts))?;
        map.end()
    }
}

/// A part in the shape the send endpoint documents (vk-devapi.md §3.5).
struct SendPart<'a>(&'a Part);

impl Serialize for SendPart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde_json::json;
        let value = match self.0 {
            Part::Text(text) => json!({"text": {"content": text.content}}),
            Part::Mention(mention) => json!({"mention": {"id": mention.id}}),
            Part::Smile(smile) => json!({"smile": {"id": smile.id}}),
            Part::Link(link) => json!({"link": {"url": link.url}}),
            other => return other.serialize(serializer),
        };
        value.serialize(serializer)
    }
}

/// The slug of a channel given as a slug or as its page's URL (the crate's
/// one slug reader: [`ClientBuilder::channel_url`](crate::ClientBuilder::channel_url)
/// uses it too), or an error: [`ErrorKind::InvalidArgument`] naming the
/// input when it holds no slug, [`ErrorKind::InvalidChannel`] when the slug
/// is longer than [`MAX_CHANNEL_NAME_BYTES`](crate::auth::MAX_CHANNEL_NAME_BYTES).
///
/// ```
/// use vklive_pubsub::auth::channel_slug;
/// assert_eq!(channel_slug("some.channel.").unwrap(), "some.channel.");
/// assert_eq!(channel_slug("https://live.vkvideo.ru/some.channel/?x=1").unwrap(), "some.channel");
/// assert_eq!(channel_slug("live.vkvideo.ru/abc").unwrap(), "abc");
/// assert!(channel_slug("https://live.vkvideo.ru/").is_err());
/// assert!(channel_slug("https://example.org/abc").is_err());
/// ```
pub fn channel_slug(input: &str) -> Result<String, Error> {
    let Some(slug) = crate::event::channel_slug(input) else {
        let shown: String = input.chars().take(64).collect();
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("not a VK channel slug or URL: {shown:?}"),
        ));
    };
    if slug.len() > MAX_CHANNEL_NAME_BYTES {
        return Err(invalid_channel("channel slug", slug, "is too long"));
    }
    Ok(slug.to_owned())
}

/// The live stream of a `GET /v1/channel` answer: `stream` when it is live
/// and has an id, else the first such entry of `streams` (a channel may have
/// several stream slots; sends go to the main one).
///
/// ```
/// use vklive_pubsub::{auth::live_stream, event::ChannelResponse};
/// let answer = ChannelResponse::from_json(
///     r#"{"data":{"channel":{"id":1},"stream":{"id":"s1","started_at":1700000000,"ended_at":null}}}"#,
/// ).unwrap();
/// assert_eq!(live_stream(&answer).unwrap().id, "s1");
/// ```
pub fn live_stream(answer: &ChannelResponse) -> Option<&StreamInfo> {
    let usable = |stream: &&StreamInfo| stream.is_live() && !stream.id.is_empty();
    answer
        .stream
        .as_ref()
        .filter(usable)
        .or_else(|| answer.streams.iter().find(usable))
}

/// What `GET /v1/token` says about the token in use.
///
/// ```
/// use vklive_pubsub::auth::TokenInfo;
/// let info: TokenInfo = serde_json::from_str(r#"{"expired_at":1700000000,"type":"user"}"#).unwrap();
/// assert_eq!(info.kind.as_deref(), Some("user"));
/// assert!(info.is_expired(std::time::SystemTime::now()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// When the token expires (`None` when VK sent none, `null` or 0).
    #[serde(default, deserialize_with = "optional_time")]
    pub expired_at: Option<Timestamp>,
    /// The token's type, as VK names it (the values are undocumented).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl TokenInfo {
    /// Whether the token had expired at `now` (never, when no expiry is
    /// known); see [`TokenInfo`].
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expired_at.is_some_and(|at| at.system_time() <= now)
    }
}

fn optional_time<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Timestamp>, D::Error> {
    let value = Option::<Timestamp>::deserialize(deserializer)?;
    Ok(value.filter(|at| at.unix_millis() != 0))
}

/// The user a token belongs to, from `GET /v1/current_user`.
///
/// ```
/// use vklive_pubsub::auth::CurrentUser;
/// let body = r#"{"user":{"id":7,"nick":"bot"},"channel":{"url":"botchannel"}}"#;
/// let me: CurrentUser = serde_json::from_str(body).unwrap();
/// assert_eq!((me.user.id, me.user.nick.as_str()), (7, "bot"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    /// The user.
    pub user: CurrentUserInfo,
    /// The user's own channel, if any.
    #[serde(default)]
    pub channel: Option<CurrentUserChannel>,
}

/// The `user` of [`CurrentUser`] (example there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUserInfo {
    /// User id: what [`ChatMessage::is_from`] takes.
    pub id: i64,
    /// Display name.
    #[serde(default)]
    pub nick: String,
}

/// The `channel` of [`CurrentUser`] (example there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUserChannel {
    /// The channel's slug.
    #[serde(default)]
    pub url: String,
}

#[derive(Serialize)]
struct Demands<'a> {
    demands: Vec<DemandId<'a>>,
}

#[derive(Serialize)]
struct DemandId<'a> {
    id: &'a i64,
}

/// Whether the server asked us to slow down: `send_too_fast`, or a 429
/// (`ratelimit_exceeded`); both are retried after a pause.
fn slowed_down(error: &Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::SendTooFast | ErrorKind::RateLimited
    )
}

/// Whether a failed send may be due to a stream id that is no longer the
/// live one. VK documents no code for that, so any rejection of the request
/// itself other than the three chat codes counts (see `docs/bots.md`).
fn maybe_stale_stream(error: &Error) -> bool {
    error.kind() == ErrorKind::InvalidRequest
}

impl VkApi {
    /// `GET /v1/channel?channel_url=SLUG`, the whole answer: channel, owner
    /// and streams. `channel_url` may be a slug or a channel URL.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// let answer = api.channel_response("https://live.vkvideo.ru/somechannel").await?;
    /// println!("{:?}", answer.stream.map(|stream| stream.title));
    /// # Ok(()) }
    /// ```
    pub async fn channel_response(&self, channel_url: &str) -> Result<ChannelResponse, Error> {
        let slug = channel_slug(channel_url)?;
        self.get("/v1/channel", &[("channel_url", &slug)]).await
    }

    /// The channel's live stream (see [`live_stream`]); a channel that is
    /// offline is an [`ErrorKind::NoLiveStream`] error.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// let stream = api.live_stream("somechannel").await?;
    /// println!("live since {:?}", stream.started_at);
    /// # Ok(()) }
    /// ```
    pub async fn live_stream(&self, channel_url: &str) -> Result<StreamInfo, Error> {
        let answer = self.channel_response(channel_url).await?;
        live_stream(&answer).cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::NoLiveStream,
                format!("GET /v1/channel: {channel_url:?} has no live stream to send chat to"),
            )
        })
    }

    /// Sends `message` to the chat of a channel (a slug or a channel URL):
    /// `POST /v1/chat/message/send?channel_url=&stream_id=` with
    /// `{"parts":[…]}`. Needs a user token with the `chat:message:send` scope.
    ///
    /// - The stream id comes from `GET /v1/channel` and is cached per
    ///   channel; when a send is refused in a way that may mean the stream
    ///   changed, the id is looked up once more and the send repeated once
    ///   if it did change. No live stream: [`ErrorKind::NoLiveStream`].
    /// - Sends to one channel go one at a time, paced by the rate limit of
    ///   [`ChatSettings`](crate::auth::ChatSettings) (one per 1.5 s by default), so a bot answering a
    ///   flood waits instead of being refused.
    /// - `send_too_fast` and a 429 are retried after a pause (the server's
    ///   `Retry-After`, capped at [`MAX_RETRY_AFTER`](crate::auth::MAX_RETRY_AFTER),
    ///   or the interval, doubling), within
    ///   [`ChatSettings::retry_too_fast_for`](crate::auth::ChatSettings::retry_too_fast_for), then returned as
    ///   [`ErrorKind::SendTooFast`] or [`ErrorKind::RateLimited`].
    /// - `message_too_long` and `same_message` come back as
    ///   [`ErrorKind::MessageTooLong`] and [`ErrorKind::SameMessage`]; a user
    ///   who may not write there gets [`ErrorKind::Forbidden`] (403).
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// use vklive_pubsub::{auth::Message, ErrorKind};
    /// api.send_message("somechannel", "hello, chat").await?;
    /// match api.send_message("somechannel", Message::new().text("see ").link("https://example.org")).await {
    ///     Err(error) if error.kind() == ErrorKind::NoLiveStream => println!("offline"),
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_message(
        &self,
        channel_url: &str,
        message: impl Into<Message>,
    ) -> Result<(), Error> {
        let message = message.into();
        if message.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a chat message needs at least one part",
            ));
        }
        let slug = channel_slug(channel_url)?;
        let settings = &self.chat.settings;
        let slot = self.chat.slot(&slug);
        let mut cached = slot.stream_id.lock().await;
        // No deadline when the bound is too far to add to the clock.
        let deadline = tokio::time::Instant::now().checked_add(settings.retry_too_fast_for);
        let mut pause = settings.interval.max(Duration::from_millis(100));
        let mut looked_up = false;
        loop {
            let stream_id = match cached.as_ref() {
                Some(id) => id.clone(),
                None => {
                    looked_up = true;
                    let id = self.live_stream(&slug).await?.id;
                    *cached = Some(id.clone());
                    id
                }
            };
            if let Some(limiter) = &slot.limiter {
                limiter.until_ready().await;
            }
            let error = match self
                .send_message_to_stream(&slug, &stream_id, &message)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if slowed_down(&error) {
                let wait = error.retry_after().unwrap_or(pause).min(MAX_RETRY_AFTER);
                let retry_at = tokio::time::Instant::now().checked_add(wait);
                if deadline.is_some_and(|deadline| retry_at.is_none_or(|at| at > deadline)) {
                    return Err(error);
                }
                tracing::debug!(channel = %slug, kind = ?error.kind(), wait_ms = wait.as_millis() as u64, "sending too fast: retrying");
                tokio::time::sleep(wait).await;
                pause = pause.saturating_mul(2);
                continue;
            }
            if looked_up || !maybe_stale_stream(&error) {
                return Err(error);
            }
            looked_up = true;
            match self.live_stream(&slug).await {
                Ok(stream) if stream.id != stream_id => {
                    tracing::debug!(channel = %slug, "the stream changed: sending again");
                    *cached = Some(stream.id);
                }
                Ok(_) => return Err(error),
                Err(offline) => {
                    *cached = None;
                    return Err(offline);
                }
            }
        }
    }

    /// One `POST /v1/chat/message/send` to a given stream, with no lookup,
    /// pacing or retry: [`VkApi::send_message`] is what a bot wants.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// let stream = api.live_stream("somechannel").await?;
    /// api.send_message_to_stream("somechannel", &stream.id, &"hi".into()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_message_to_stream(
        &self,
        channel_url: &str,
        stream_id: &str,
        message: &Message,
    ) -> Result<(), Error> {
        let slug = channel_slug(channel_url)?;
        self.post(
            "/v1/chat/message/send",
            &[("channel_url", &slug), ("stream_id", stream_id)],
            message.to_json(),
        )
        .await
    }

    /// Answers `to` in the chat of `channel_url`: a mention of its author,
    /// a space, then `message`; sent as [`VkApi::send_message`] sends.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi, message: vklive_pubsub::event::ChatMessage) -> Result<(), vklive_pubsub::Error> {
    /// if message.command("!").is_some_and(|command| command.is("ping")) {
    ///     api.reply("somechannel", &message, "pong").await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn reply(
        &self,
        channel_url: &str,
        to: &ChatMessage,
        message: impl Into<Message>,
    ) -> Result<(), Error> {
        self.send_message(channel_url, reply_message(to, message.into()))
            .await
    }

    /// `POST /v1/channel_point/reward/demand/accept` with
    /// `{"demands":[{"id":…}]}`: grants reward redemptions. Needs the
    /// channel owner's token (scope `channel:points:rewards:demands`, per the
    /// scope list). No ids: no request.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi, demand: vklive_pubsub::event::RewardDemand) -> Result<(), vklive_pubsub::Error> {
    /// api.accept_demands(&[demand.id]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn accept_demands(&self, ids: &[i64]) -> Result<(), Error> {
        self.decide_demands("/v1/channel_point/reward/demand/accept", ids)
            .await
    }

    /// `POST /v1/channel_point/reward/demand/reject`: refuses reward
    /// redemptions (VK returns the points). As [`VkApi::accept_demands`].
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// api.reject_demands(&[9179, 9180]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reject_demands(&self, ids: &[i64]) -> Result<(), Error> {
        self.decide_demands("/v1/channel_point/reward/demand/reject", ids)
            .await
    }

    async fn decide_demands(&self, path: &str, ids: &[i64]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = Demands {
            demands: ids.iter().map(|id| DemandId { id }).collect(),
        };
        let body = serde_json::to_string(&body).unwrap_or_default();
        self.post(path, &[], body).await
    }

    /// `GET /v1/token`: the current token's expiry and type, without
    /// spending a refresh.
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// let info = api.token_info().await?;
    /// println!("expires at {:?}", info.expired_at);
    /// # Ok(()) }
    /// ```
    pub async fn token_info(&self) -> Result<TokenInfo, Error> {
        self.get("/v1/token", &[]).await
    }

    /// `GET /v1/current_user`: who the token belongs to (a bot's own id,
    /// for [`ChatMessage::is_from`]).
    ///
    /// ```no_run
    /// # async fn run(api: vklive_pubsub::auth::VkApi) -> Result<(), vklive_pubsub::Error> {
    /// let me = api.current_user().await?;
    /// println!("signed in as {} ({})", me.user.nick, me.user.id);
    /// # Ok(()) }
    /// ```
    pub async fn current_user(&self) -> Result<CurrentUser, Error> {
        self.get("/v1/current_user", &[]).await
    }
}

/// `message` prefixed with a mention of `to`'s author and a space.
pub(crate) fn reply_message(to: &ChatMessage, message: Message) -> Message {
    let Some(author) = to.author_id() else {
        return message;
    };
    let mut rest = message.parts.into_iter().peekable();
    let first = match rest.peek() {
        Some(Part::Text(text)) if text.content.starts_with(char::is_whitespace) => None,
        Some(Part::Text(_)) => match rest.next() {
            Some(Part::Text(text)) => Some(Part::text(format!(" {}", text.content))),
            _ => None,
        },
        _ => Some(Part::text(" ")),
    };
    let mention = Part::Mention(MentionPart {
        id: Some(author),
        nick: to.author_nick().to_owned(),
    });
    let parts = std::iter::once(mention).chain(first).chain(rest).collect();
    Message { parts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Author;

    #[test]
    fn slugs_come_from_slugs_and_urls() {
        for (input, slug) in [
            ("abc", "abc"),
            (" a.b. ", "a.b."),
            ("https://live.vkvideo.ru/a.b", "a.b"),
            ("http://live.vkvideo.ru/a.b/", "a.b"),
            ("https://live.vkvideo.ru/abc?utm=1#x", "abc"),
            ("live.vkvideo.ru/abc", "abc"),
            ("/abc", "abc"),
        ] {
            assert_eq!(channel_slug(input).unwrap(), slug, "{input}");
        }
        for input in [
            "",
            "  ",
            "https://live.vkvideo.ru",
            "https://live.vkvideo.ru/?a=b",
        ] {
            assert!(channel_slug(input).is_err(), "{input}");
        }
    }

    #[test]
    fn received_parts_are_sent_with_only_the_documented_fields() {
        let received: Vec<Part> = serde_json::from_str(
            r#"[{"mention":{"id":5,"nick":"x"}},{"smile":{"id":"s","name":"Kappa","animated":true}},
                {"link":{"content":"here","url":"https://e.org"}},{"poll":{"id":1}}]"#,
        )
        .unwrap();
        assert_eq!(
            Message::from(received).to_json(),
            r#"{"parts":[{"mention":{"id":5}},{"smile":{"id":"s"}},{"link":{"url":"https://e.org"}},{"poll":{"id":1}}]}"#
        );
    }

    #[test]
    fn a_reply_mentions_the_author_first() {
        let to = ChatMessage {
            id: 1,
            created_at: None,
            is_private: false,
            author: Some(Author {
                id: 9,
                ..Author::default()
            }),
            parts: vec![],
        };
        let reply = reply_message(&to, "pong".into());
        assert_eq!(reply.parts(), [Part::mention(9), Part::text(" pong")]);
        let reply = reply_message(&to, " pong".into());
        assert_eq!(reply.parts(), [Part::mention(9), Part::text(" pong")]);
        let reply = reply_message(&to, Message::new().smile("s"));
        assert_eq!(
            reply.parts(),
            [Part::mention(9), Part::text(" "), Part::smile("s")]
        );
    }

    #[test]
    fn the_live_stream_is_the_main_one_or_the_first_live_slot() {
        let answer = ChannelResponse::from_json(
            r#"{"data":{"channel":{"id":1},"stream":null,
                "streams":[{"id":"old","ended_at":5},{"id":"b","ended_at":null}]}}"#,
        )
        .unwrap();
        assert_eq!(live_stream(&answer).map(|s| s.id.as_str()), Some("b"));
        let answer =
            ChannelResponse::from_json(r#"{"data":{"channel":{"id":1},"stream":{"id":""}}}"#)
                .unwrap();
        assert!(live_stream(&answer).is_none());
    }

    #[test]
    fn token_info_reads_null_and_zero_as_no_expiry() {
        for body in [r#"{"expired_at":null}"#, r#"{"expired_at":0}"#, "{}"] {
            let info: TokenInfo = serde_json::from_str(body).unwrap();
            assert_eq!(info.expired_at, None, "{body}");
            assert!(!info.is_expired(SystemTime::now()));
        }
    }
}
