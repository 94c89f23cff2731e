//! Centrifugo client protocol v2 in JSON: the wire types and the pure codec.
//!
//! No I/O lives here: text in, values out, and values in, text out. Both the
//! connector (which encodes [`Command`]s and decodes [`Reply`]s) and the
//! emulator (which does the opposite) use these types, so one set of serde
//! attributes defines the wire format for both sides.
//!
//! Wire rules implemented here (see `centrifugo-protocol.md`):
//! - one JSON object per line, several lines per WebSocket text frame,
//!   separated by exactly one `\n`; empty lines are skipped on receive;
//! - snake_case field names; zero values are omitted when encoding;
//! - `data` payloads are embedded raw JSON, kept as [`RawValue`] so they are
//!   never parsed twice;
//! - a server ping is exactly the line `{}` ([`is_ping_line`]), and the
//!   client's pong is an empty command (`{}`).
//!
//! Decoding never panics: a bad line becomes a [`DecodeError`] and the lines
//! after it still decode.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::secret::Secret;

mod cut;
mod frame;
// Internal (benches, tests, the fuzzer): not part of the public API.
#[doc(hidden)]
pub use cut::{PublicationCut, cut_publication};
pub(crate) use frame::Frame;

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_u64(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Centrifugo sends `null` for an empty list; `#[serde(default)]` alone rejects `null`.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Client → server
// ---------------------------------------------------------------------------

/// One client command: an `id` and exactly one request field.
///
/// `Command::default()` encodes as `{}`, which is the pong a client sends in
/// answer to each server ping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Command {
    /// Client-chosen id, echoed in the reply; 0 (absent) for a pong or a `send`.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    /// Authenticate the connection; must be the first command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectRequest>,
    /// Subscribe to a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeRequest>,
    /// Unsubscribe from a channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<UnsubscribeRequest>,
    /// Replace the connection token before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshRequest>,
    /// Replace a subscription token before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_refresh: Option<SubRefreshRequest>,
    /// Publish into a channel (not used by the connector; the emulator answers it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Box<RawValue>>,
    /// Presence of a channel (not used by the connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Box<RawValue>>,
    /// Presence counters of a channel (not used by the connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_stats: Option<Box<RawValue>>,
    /// History of a channel (not used by the connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Box<RawValue>>,
    /// Asynchronous message to the server, with no id and no reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<Box<RawValue>>,
    /// Remote procedure call (not used by the connector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<Box<RawValue>>,
    /// The `ping` command, which v2 servers answer with error 108.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<Box<RawValue>>,
}

impl Command {
    /// Whether this is a pong: no id and no request field at all.
    pub fn is_pong(&self) -> bool {
        self.id == 0 && self.request_name().is_none()
    }

    /// The name of the request field this command carries, if any.
    pub fn request_name(&self) -> Option<&'static str> {
        let fields: [(bool, &'static str); 12] = [
            (self.connect.is_some(), "connect"),
            (self.subscribe.is_some(), "subscribe"),
            (self.unsubscribe.is_some(), "unsubscribe"),
            (self.refresh.is_some(), "refresh"),
            (self.sub_refresh.is_some(), "sub_refresh"),
            (self.publish.is_some(), "publish"),
            (self.presence.is_some(), "presence"),
            (self.presence_stats.is_some(), "presence_stats"),
            (self.history.is_some(), "history"),
            (self.send.is_some(), "send"),
            (self.rpc.is_some(), "rpc"),
            (self.ping.is_some(), "ping"),
        ];
        fields
            .iter()
            .find(|(present, _)| *present)
            .map(|(_, name)| *name)
    }
}

/// The `connect` request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// The connection token (a JWT from `GET /v1/websocket/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Client name (at most 16 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Client version (at most 64 characters).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Custom connect data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
}

/// The `subscribe` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// Channel name, verbatim from `web_socket_channels`.
    pub channel: String,
    /// Subscription token, for channels that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Ask the server to recover missed publications from `epoch`/`offset`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recover: bool,
    /// Epoch of the stream position to recover from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Offset of the last publication seen.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Ask for a recoverable subscription (history positions in replies).
    #[serde(default, skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Ask for a positioned subscription.
    #[serde(default, skip_serializing_if = "is_false")]
    pub positioned: bool,
}

/// The `unsubscribe` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnsubscribeRequest {
    /// Channel name.
    pub channel: String,
}

/// The `refresh` request: a new connection token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The new connection token.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// The `sub_refresh` request: a new subscription token for one channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubRefreshRequest {
    /// Channel name (always sent: an empty one makes the server close 3501).
    #[serde(default)]
    pub channel: String,
    /// The new subscription token.
    #[serde(default)]
    pub token: Option<Secret>,
}

// ---------------------------------------------------------------------------
// Server → client
// ---------------------------------------------------------------------------

/// One server line: a reply to a command (`id` set), a push (`push` set), or,
/// with neither, a ping.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Id of the command this answers; 0 for pushes and pings.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub id: u32,
    /// The command failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
    /// An asynchronous push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
    /// Result of `connect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectResult>,
    /// Result of `subscribe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubscribeResult>,
    /// Result of `unsubscribe` (empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<Empty>,
    /// Result of `refresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<RefreshResult>,
    /// Result of `sub_refresh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_refresh: Option<RefreshResult>,
    /// Result of `publish` (empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Empty>,
    /// Result of `history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryResult>,
}

/// Whether a received line is a server ping: exactly `{}`, with nothing but
/// JSON whitespace (space, tab, CR, LF) around it. Other ASCII whitespace
/// (form feed) is not JSON, so such a line is not even a valid reply.
///
/// Decide pings on the line, not on a decoded [`Reply`]: `[]`, `{"foo":1}`,
/// `{"push":null}` and `{"id":0}` all decode to an empty `Reply`, and
/// answering any of them with a pong is an unsolicited pong, which
/// Centrifugo answers with close 3501 (terminal).
///
/// ```
/// use vklive_pubsub::protocol::is_ping_line;
/// assert!(is_ping_line("{}"));
/// assert!(is_ping_line(" {}\r"));
/// assert!(!is_ping_line("{\"id\":0}"));
/// assert!(!is_ping_line("[]"));
/// ```
pub fn is_ping_line(line: &str) -> bool {
    line.trim_matches([' ', '\t', '\r', '\n']) == "{}"
}

/// An empty result object (`{}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A reply error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Error code (see [`codes`]).
    pub code: u32,
    /// The server's message.
    #[serde(default)]
    pub message: String,
    /// The server says retrying may succeed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub temporary: bool,
}

/// Result of `connect`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConnectResult {
    /// Client id the server assigned.
    #[serde(default)]
    pub client: String,
    /// Server version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The connection expires and must be refreshed within `ttl` seconds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the connection token expires.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// Custom data from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// Server-side subscriptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subs: Option<HashMap<String, SubscribeResult>>,
    /// Server ping interval, seconds (0: no pings).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ping: u32,
    /// The server expects a pong for each ping.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pong: bool,
}

/// Result of `subscribe`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SubscribeResult {
    /// The subscription expires and must be refreshed within `ttl` seconds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the subscription token expires.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
    /// The channel keeps history, so positions can be recovered.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recoverable: bool,
    /// Epoch of the channel's stream.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
    /// Recovered publications, in order.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub publications: Vec<Publication>,
    /// The missed publications were all recovered.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recovered: bool,
    /// Stream offset: the top, or the requested offset after a successful recovery.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Positioning is on.
    #[serde(default, skip_serializing_if = "is_false")]
    pub positioned: bool,
    /// Custom data from the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Box<RawValue>>,
    /// The client asked for recovery.
    #[serde(default, skip_serializing_if = "is_false")]
    pub was_recovering: bool,
}

/// Result of `refresh` and `sub_refresh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshResult {
    /// The new token expires too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub expires: bool,
    /// Seconds until the new token expires.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub ttl: u32,
}

/// Result of `history`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HistoryResult {
    /// Publications, in order (may be `null` on the wire).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub publications: Vec<Publication>,
    /// Epoch of the stream.
    #[serde(default)]
    pub epoch: String,
    /// Top offset of the stream.
    #[serde(default)]
    pub offset: u64,
}

/// An asynchronous push: a channel and exactly one body.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Push {
    /// The channel the push is about (empty for `message` and `disconnect`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    /// A publication.
    #[serde(rename = "pub", default, skip_serializing_if = "Option::is_none")]
    pub publication: Option<Publication>,
    /// Someone joined the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<JoinLeave>,
    /// Someone left the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave: Option<JoinLeave>,
    /// The server ended the subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<UnsubscribePush>,
    /// The server added a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Box<RawValue>>,
    /// An asynchronous message to this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<RawValue>>,
    /// Disconnect advice (non-WebSocket transports; parsed anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<DisconnectPush>,
}

/// A message published into a channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publication {
    /// The payload: for VK, the envelope `{"type": …, "data": …}`.
    pub data: Box<RawValue>,
    /// Position in the channel's stream (0 when the channel keeps no history).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub offset: u64,
    /// Who published it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// Publication tags (a JSON object of strings), kept as received: the
    /// connector never reads them, and a huge object must not cost a map.
    /// `serde_json::from_str::<HashMap<String, String>>(tags.get())` builds
    /// one if you need it. A line whose `tags` is not an object of strings
    /// is rejected, as Centrifugo's schema says.
    #[serde(
        default,
        deserialize_with = "tags_unbuilt",
        skip_serializing_if = "Option::is_none"
    )]
    pub tags: Option<Box<RawValue>>,
}

/// Reads `tags` as raw text after checking its shape (an object of strings,
/// or `null`) without building anything: both publication decoders accept
/// exactly what a `HashMap<String, String>` would.
fn tags_unbuilt<'de, D>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(raw) = Option::<Box<RawValue>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    // The error is not passed on: serde's message could quote a tag's value.
    serde_json::from_str::<one_pass::TagsShape>(raw.get())
        .map_err(|_| serde::de::Error::custom("tags is not an object of strings"))?;
    Ok(Some(raw))
}

/// Information about a connected client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    /// User id.
    #[serde(default)]
    pub user: String,
    /// Client id.
    #[serde(default)]
    pub client: String,
    /// Connection info (raw JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_info: Option<Box<RawValue>>,
    /// Channel info (raw JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chan_info: Option<Box<RawValue>>,
}

/// Body of a `join` or `leave` push.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JoinLeave {
    /// The client that joined or left.
    #[serde(default)]
    pub info: ClientInfo,
}

/// Body of an `unsubscribe` push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribePush {
    /// Unsubscribe code: below 2500 terminal, 2500 and above resubscribe.
    #[serde(default)]
    pub code: u32,
    /// The server's reason.
    #[serde(default)]
    pub reason: String,
}

/// Body of a `disconnect` push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectPush {
    /// Disconnect code.
    #[serde(default)]
    pub code: u32,
    /// The server's reason.
    #[serde(default)]
    pub reason: String,
    /// Whether the client should reconnect.
    #[serde(default)]
    pub reconnect: bool,
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// A line of a frame that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("line {line} of the frame is not a valid protocol message: {source}")]
pub struct DecodeError {
    /// 1-based line number within the frame.
    pub line: usize,
    /// What the JSON decoder said.
    #[source]
    pub source: serde_json::Error,
}

/// Splits a frame into its non-empty lines and decodes each one.
///
/// Each item is independent: a bad line yields an `Err` and decoding goes on
/// with the next line.
///
/// ```
/// use vklive_pubsub::protocol::{decode_frame, Reply};
/// let frame = "{\"id\":1,\"connect\":{\"client\":\"c\"}}\nnot json\n{}\n";
/// let lines: Vec<_> = decode_frame::<Reply>(frame).collect();
/// assert_eq!(lines.len(), 3);
/// assert!(lines[1].is_err());
/// assert!(lines[2].as_ref().unwrap().push.is_none()); // `{}`: a ping, told by `is_ping_line`
/// ```
pub fn decode_frame<T: DeserializeOwned>(
    frame: &str,
) -> impl Iterator<Item = Result<T, DecodeError>> + '_ {
    frame_lines(frame).map(|(number, line)| decode_line(number, line))
}

/// The non-empty lines of a frame with their 1-based numbers: the split
/// [`decode_frame`] makes, for callers that decode line by line.
#[doc(hidden)]
pub fn frame_lines(frame: &str) -> impl Iterator<Item = (usize, &str)> + '_ {
    // `memchr` finds the line breaks sixteen or more bytes at a time; a
    // frame of a hundred publications is tens of kilobytes.
    let mut start = 0;
    let breaks = memchr::memchr_iter(b'\n', frame.as_bytes()).chain(std::iter::once(frame.len()));
    breaks
        .map(move |end| {
            // Splitting at an ASCII `\n` always lands on a char boundary.
            let line = &frame[start..end];
            start = end + 1;
            line
        })
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line))
}

/// Decodes one line as [`decode_frame`] does; `number` is its 1-based line
/// number within the frame.
pub fn decode_line<T: DeserializeOwned>(number: usize, line: &str) -> Result<T, DecodeError> {
    serde_json::from_str(line).map_err(|source| DecodeError {
        line: number,
        source,
    })
}

// ---------------------------------------------------------------------------
// Publications in one pass
// ---------------------------------------------------------------------------

/// A publication push decoded by [`decode_publication`].
#[doc(hidden)]
#[derive(Debug)]
pub struct PublicationLine<'a, T> {
    /// The channel, borrowed from the line unless it has escapes.
    pub channel: Cow<'a, str>,
    /// Position in the channel's stream (0 when absent).
    pub offset: u64,
    /// The publication's `data`, decoded by the seed.
    pub data: T,
}

/// Decodes a line that is a plain publication push,
/// `{"push":{"channel":…,"pub":{"data":…,"offset":…}}}`, in one pass: the
/// publication's `data` goes straight to `seed` instead of being copied into
/// a [`RawValue`] and scanned again.
///
/// `None` means "not decoded here": the line is something else (a reply, a
/// ping, another push), or something about it is unusual (an unknown key in
/// `push`, a `null`, a duplicate key, bad JSON), or `seed` failed. Decode such
/// a line with [`decode_line`]`::<Reply>`, which gives the answer the
/// connector always gave; whatever `decode_publication` returns agrees with it.
///
/// ```
/// use std::borrow::Cow;
/// use vklive_pubsub::protocol::decode_publication;
/// use serde::de::IgnoredAny;
/// let line = r#"{"push":{"channel":"chat","pub":{"data":{"a":1},"offset":7}}}"#;
/// let publication = decode_publication(line, std::marker::PhantomData::<IgnoredAny>).unwrap();
/// assert_eq!((publication.channel, publication.offset), (Cow::Borrowed("chat"), 7));
/// assert!(decode_publication("{}", std::marker::PhantomData::<IgnoredAny>).is_none());
/// ```
#[doc(hidden)]
pub fn decode_publication<'a, S>(line: &'a str, seed: S) -> Option<PublicationLine<'a, S::Value>>
where
    S: DeserializeSeed<'a>,
{
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let publication = deserializer
        .deserialize_map(one_pass::LineVisitor(seed))
        .ok()?;
    deserializer.end().ok()?;
    Some(publication)
}

/// The visitors of [`decode_publication`]. They accept exactly what the
/// derived `Reply`/`Push`/`Publication` decoders accept for a publication
/// push and nothing more; everything else is an error, and the caller falls
/// back to those decoders.
mod one_pass {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    use super::{ClientInfo, PublicationLine};

    /// Keys of `Reply` other than `push` (a line with any is not a plain push).
    const REPLY_KEYS: [&str; 9] = [
        "id",
        "error",
        "connect",
        "subscribe",
        "unsubscribe",
        "refresh",
        "sub_refresh",
        "publish",
        "history",
    ];
    /// Keys of `Push` other than `channel` and `pub`.
    const PUSH_KEYS: [&str; 6] = [
        "join",
        "leave",
        "unsubscribe",
        "subscribe",
        "message",
        "disconnect",
    ];

    fn unusual<E: de::Error>(what: &str) -> E {
        E::custom(format_args!("not a plain publication push: {what}"))
    }

    /// A key, borrowed unless it has escapes.
    #[derive(serde::Deserialize)]
    #[serde(transparent)]
    struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

    /// A `tags` object checked, not built: a map of strings to strings, read
    /// as a `HashMap<String, String>` would read it (same errors, duplicate
    /// keys allowed) but without allocating.
    pub(super) struct TagsShape;

    impl<'de> de::Deserialize<'de> for TagsShape {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(TagsShape)
        }
    }

    impl<'de> Visitor<'de> for TagsShape {
        type Value = TagsShape;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_key::<AnyStr>()?.is_some() {
                map.next_value::<AnyStr>()?;
            }
            Ok(TagsShape)
        }
    }

    /// A string, checked and dropped.
    struct AnyStr;

    impl<'de> de::Deserialize<'de> for AnyStr {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(AnyStr)
        }
    }

    impl<'de> Visitor<'de> for AnyStr {
        type Value = AnyStr;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(AnyStr)
        }
    }

    /// `{"push": …}`.
    pub(super) struct LineVisitor<S>(pub(super) S);

    impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for LineVisitor<S> {
        type Value = PublicationLine<'de, S::Value>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a publication push")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seed = Some(self.0);
            let mut found = None;
            while let Some(Key(key)) = map.next_key()? {
                if key == "push" {
                    let seed = seed.take().ok_or_else(|| unusual("duplicate push"))?;
                    found = Some(map.next_value_seed(PushSeed(seed))?);
                } else if REPLY_KEYS.contains(&key.as_ref()) {
                    return Err(unusual("a reply field"));
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            found.ok_or_else(|| unusual("no push"))
        }
    }

    struct PushSeed<S>(S);

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for PushSeed<S> {
        type Value = PublicationLine<'de, S::Value>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for PushSeed<S> {
        type Value = PublicationLine<'de, S::Value>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a push object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seed = Some(self.0);
            let mut channel: Option<Cow<'de, str>> = None;
            let mut publication = None;
            while let Some(Key(key)) = map.next_key()? {
                match key.as_ref() {
                    "channel" if channel.is_none() => channel = Some(map.next_value::<Key>()?.0),
                    "pub" => {
                        let seed = seed.take().ok_or_else(|| unusual("duplicate pub"))?;
                        publication = Some(map.next_value_seed(PublicationSeed(seed))?);
                    }
                    other if other == "channel" || PUSH_KEYS.contains(&other) => {
                        return Err(unusual("another push body or a duplicate key"));
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let (offset, data) = publication.ok_or_else(|| unusual("no pub"))?;
            Ok(PublicationLine {
                channel: channel.unwrap_or_default(),
                offset,
                data,
            })
        }
    }

    struct PublicationSeed<S>(S);

    impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for PublicationSeed<S> {
        type Value = (u64, S::Value);

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for PublicationSeed<S> {
        type Value = (u64, S::Value);

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a publication object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seed = Some(self.0);
            let mut data = None;
            let mut offset = None;
            let (mut info, mut tags) = (false, false);
            while let Some(Key(key)) = map.next_key()? {
                match key.as_ref() {
                    "data" => {
                        let seed = seed.take().ok_or_else(|| unusual("duplicate data"))?;
                        data = Some(map.next_value_seed(seed)?);
                    }
                    "offset" if offset.is_none() => offset = Some(map.next_value::<u64>()?),
                    // Read as the derived decoder reads them, so that a line
                    // it rejects is rejected here too; the values are unused.
                    "info" if !info => {
                        info = true;
                        map.next_value::<Option<ClientInfo>>()?;
                    }
                    "tags" if !tags => {
                        tags = true;
                        map.next_value::<Option<TagsShape>>()?;
                    }
                    "offset" | "info" | "tags" => return Err(unusual("a duplicate key")),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            let data = data.ok_or_else(|| unusual("no data"))?;
            Ok((offset.unwrap_or(0), data))
        }
    }
}

/// Encodes messages as one frame: one JSON line each, joined by `\n`, no
/// trailing newline, no blank lines.
pub fn encode_frame<T: Serialize>(messages: &[T]) -> String {
    let mut frame = String::new();
    for message in messages {
        append_line(&mut frame, message);
    }
    frame
}

/// Appends one message to a frame under construction, adding the `\n`
/// separator when the frame already has a line.
pub fn append_line<T: Serialize>(frame: &mut String, message: &T) {
    if !frame.is_empty() {
        frame.push('\n');
    }
    // Serializing these types into a String cannot fail: every map key is a
    // string and every raw value was valid JSON when it was built.
    let line = serde_json::to_string(message).unwrap_or_else(|_| String::from("{}"));
    frame.push_str(&line);
}

// ---------------------------------------------------------------------------
// Code classes
// ---------------------------------------------------------------------------

/// Centrifugo's error, close and unsubscribe codes.
pub mod codes {
    /// Reply error: internal server error (temporary).
    pub const INTERNAL: u32 = 100;
    /// Reply error: unauthorized.
    pub const UNAUTHORIZED: u32 = 101;
    /// Reply error: unknown channel.
    pub const UNKNOWN_CHANNEL: u32 = 102;
    /// Reply error: permission denied (private channel without a valid token).
    pub const PERMISSION_DENIED: u32 = 103;
    /// Reply error: method not found.
    pub const METHOD_NOT_FOUND: u32 = 104;
    /// Reply error: already subscribed.
    pub const ALREADY_SUBSCRIBED: u32 = 105;
    /// Reply error: limit exceeded (e.g. channels per connection).
    pub const LIMIT_EXCEEDED: u32 = 106;
    /// Reply error: bad request.
    pub const BAD_REQUEST: u32 = 107;
    /// Reply error: not available.
    pub const NOT_AVAILABLE: u32 = 108;
    /// Reply error: token expired.
    pub const TOKEN_EXPIRED: u32 = 109;
    /// Reply error: expired.
    pub const EXPIRED: u32 = 110;
    /// Reply error: too many requests (temporary).
    pub const TOO_MANY_REQUESTS: u32 = 111;
    /// The position asked for (`since`) is not in the stream any more (another epoch).
    pub const UNRECOVERABLE_POSITION: u32 = 112;

    /// Close code: server shutdown (reconnect).
    pub const CLOSE_SHUTDOWN: u16 = 3001;
    /// Close code: connection expired (reconnect with a fresh token).
    pub const CLOSE_CONNECTION_EXPIRED: u16 = 3005;
    /// Close code: subscription expired (reconnect).
    pub const CLOSE_SUBSCRIPTION_EXPIRED: u16 = 3006;
    /// Close code: no pong in time (reconnect).
    pub const CLOSE_NO_PONG: u16 = 3012;
    /// Close code: invalid token (terminal).
    pub const CLOSE_INVALID_TOKEN: u16 = 3500;
    /// Close code: bad request (terminal).
    pub const CLOSE_BAD_REQUEST: u16 = 3501;
    /// Close code: stale, no connect in time (terminal).
    pub const CLOSE_STALE: u16 = 3502;
    /// Close code: `send` without a handler (terminal).
    pub const CLOSE_NOT_AVAILABLE: u16 = 3508;

    /// Unsubscribe push: server unsubscribe (terminal).
    pub const UNSUBSCRIBE_SERVER: u32 = 2000;
    /// Unsubscribe push: insufficient state (resubscribe).
    pub const UNSUBSCRIBE_INSUFFICIENT_STATE: u32 = 2500;
    /// Unsubscribe push: subscription expired (resubscribe with a fresh token).
    pub const UNSUBSCRIBE_EXPIRED: u32 = 2501;

    /// What to do after the server closed the WebSocket with a code.
    #[doc(hidden)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CloseAction {
        /// Reconnect with backoff.
        Reconnect,
        /// Do not reconnect with the same credentials.
        Terminal,
    }

    /// Close-code policy: 3500–3999 and 4500–4999 are terminal, everything
    /// else (transport codes below 3000, 3000–3499, 4000–4499, 5000 and up)
    /// reconnects.
    #[doc(hidden)]
    pub fn close_action(code: u16) -> CloseAction {
        match code {
            3500..=3999 | 4500..=4999 => CloseAction::Terminal,
            _ => CloseAction::Reconnect,
        }
    }

    /// Whether a terminal close code is about the token, so that one retry with
    /// a freshly fetched token is worth it before giving up.
    #[doc(hidden)]
    pub fn close_is_token_problem(code: u16) -> bool {
        code == CLOSE_INVALID_TOKEN
    }

    /// Unsubscribe-push policy: below 2500 the subscription ends; 2500 and up
    /// the client resubscribes.
    #[doc(hidden)]
    pub fn unsubscribe_resubscribes(code: u32) -> bool {
        code >= 2500
    }

    /// What to do after a `connect`, `subscribe` or refresh command failed.
    #[doc(hidden)]
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ErrorAction {
        /// Fetch a fresh token and try again (error 109).
        RefreshToken,
        /// Try again later with backoff (temporary errors and client-side codes).
        Retry,
        /// Give up on this subscription or connection.
        Fail,
    }

    /// Reply-error policy shared by connect and subscribe: 109 asks for a new
    /// token, `temporary` errors and client-side codes (below 100) are retried,
    /// everything else fails. The `temporary` flag is trusted over code lists.
    #[doc(hidden)]
    pub fn error_action(code: u32, temporary: bool) -> ErrorAction {
        if code == TOKEN_EXPIRED {
            ErrorAction::RefreshToken
        } else if temporary || code < 100 {
            ErrorAction::Retry
        } else {
            ErrorAction::Fail
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn close_codes_split_into_reconnect_and_terminal_ranges() {
            for code in [
                1000, 1001, 1006, 1009, 3000, 3001, 3005, 3012, 3499, 4000, 4499, 5000,
            ] {
                assert_eq!(close_action(code), CloseAction::Reconnect, "{code}");
            }
            for code in [3500, 3501, 3502, 3999, 4500, 4999] {
                assert_eq!(close_action(code), CloseAction::Terminal, "{code}");
            }
        }

        #[test]
        fn only_invalid_token_close_is_a_token_problem() {
            assert!(close_is_token_problem(3500));
            assert!(!close_is_token_problem(3501));
        }

        #[test]
        fn unsubscribe_codes_below_2500_are_terminal() {
            assert!(!unsubscribe_resubscribes(2000));
            assert!(!unsubscribe_resubscribes(2499));
            assert!(unsubscribe_resubscribes(2500));
            assert!(unsubscribe_resubscribes(2501));
            assert!(unsubscribe_resubscribes(2502));
        }

        #[test]
        fn reply_errors_follow_temporary_flag_and_token_expiry() {
            assert_eq!(error_action(109, false), ErrorAction::RefreshToken);
            assert_eq!(error_action(100, true), ErrorAction::Retry);
            assert_eq!(error_action(111, true), ErrorAction::Retry);
            assert_eq!(error_action(3, false), ErrorAction::Retry);
            assert_eq!(error_action(103, false), ErrorAction::Fail);
            assert_eq!(error_action(106, false), ErrorAction::Fail);
            assert_eq!(error_action(400, true), ErrorAction::Retry);
        }
    }
}

#[cfg(test)]
mod tests {
    /// A decoded reply with nothing in it, as a ping (`{}`) decodes.
    fn is_empty_reply(reply: &Reply) -> bool {
        serde_json::to_string(reply).unwrap() == "{}"
    }

    use super::*;

    #[test]
    fn pong_is_an_empty_object() {
        assert_eq!(encode_frame(&[Command::default()]), "{}");
        assert!(Command::default().is_pong());
    }

    #[test]
    fn commands_encode_snake_case_and_omit_zero_values() {
        let commands = [
            Command {
                id: 1,
                connect: Some(ConnectRequest {
                    token: Some(Secret::new("t")),
                    name: "vklive-pubsub".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Command {
                id: 2,
                sub_refresh: Some(SubRefreshRequest {
                    channel: "c".into(),
                    token: Some(Secret::new("s")),
                }),
                ..Default::default()
            },
        ];
        assert_eq!(
            encode_frame(&commands),
            "{\"id\":1,\"connect\":{\"token\":\"t\",\"name\":\"vklive-pubsub\"}}\n\
             {\"id\":2,\"sub_refresh\":{\"channel\":\"c\",\"token\":\"s\"}}"
        );
    }

    #[test]
    fn subscribe_with_recovery_carries_epoch_and_offset() {
        let command = Command {
            id: 3,
            subscribe: Some(SubscribeRequest {
                channel: "chat".into(),
                recover: true,
                epoch: "e1".into(),
                offset: 41,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            encode_frame(&[command]),
            "{\"id\":3,\"subscribe\":{\"channel\":\"chat\",\"recover\":true,\"epoch\":\"e1\",\"offset\":41}}"
        );
    }

    #[test]
    fn one_frame_with_reply_push_and_ping_decodes_line_by_line() {
        let frame = concat!(
            "{\"id\":1,\"connect\":{\"client\":\"abc\",\"ping\":25,\"pong\":true,\"expires\":true,\"ttl\":600}}\n",
            "{\"id\":2,\"subscribe\":{\"recoverable\":true,\"epoch\":\"E\",\"offset\":41,\"publications\":null}}\n",
            "{\"push\":{\"channel\":\"chat\",\"pub\":{\"data\":{\"type\":\"x\",\"data\":{}},\"offset\":42}}}\n",
            "{}\n"
        );
        let replies: Vec<Reply> = decode_frame(frame).map(Result::unwrap).collect();
        assert_eq!(replies.len(), 4);
        let connect = replies[0].connect.as_ref().unwrap();
        assert_eq!((connect.ping, connect.pong, connect.ttl), (25, true, 600));
        let subscribe = replies[1].subscribe.as_ref().unwrap();
        assert!(subscribe.publications.is_empty());
        assert_eq!((subscribe.epoch.as_str(), subscribe.offset), ("E", 41));
        let push = replies[2].push.as_ref().unwrap();
        let publication = push.publication.as_ref().unwrap();
        assert_eq!(publication.offset, 42);
        assert_eq!(publication.data.get(), "{\"type\":\"x\",\"data\":{}}");
        assert!(is_empty_reply(&replies[3]));
        assert!(!is_empty_reply(&replies[0]));
        let stray: Vec<Reply> = decode_frame("{\"connect\":{}}")
            .map(Result::unwrap)
            .collect();
        assert!(
            !is_empty_reply(&stray[0]),
            "a result without an id is not a ping"
        );
    }

    #[test]
    fn only_the_empty_object_is_a_ping_line() {
        for line in ["{}", " {}", "{}\r", "\t{} \n"] {
            assert!(is_ping_line(line), "{line:?}");
        }
        for line in [
            "[]",
            "{\"foo\":1}",
            "{\"push\":null}",
            "{\"id\":0}",
            "{ }",
            "{}{}",
            "{}\n{}",
            "",
            "{",
            "null",
            "{\"id\":1,\"connect\":{}}",
            "\u{a0}{}",
            // Found by the fuzzer: ASCII whitespace, but not JSON's.
            "{}\u{c}",
        ] {
            assert!(!is_ping_line(line), "{line:?}");
        }
        // What a decoded reply cannot tell apart, the line test does.
        for line in ["[]", "{\"foo\":1}", "{\"push\":null}", "{\"id\":0}"] {
            let reply: Reply = decode_line(1, line).unwrap();
            assert!(is_empty_reply(&reply), "{line}: an empty reply");
            assert!(!is_ping_line(line), "{line}");
        }
    }

    #[test]
    fn frame_lines_skip_blank_lines_and_keep_their_numbers() {
        fn lines(frame: &str) -> Vec<(usize, &str)> {
            frame_lines(frame).collect()
        }
        assert_eq!(lines("a\n\nb\n"), [(1, "a"), (3, "b")]);
        assert_eq!(lines("x"), [(1, "x")]);
        assert_eq!(lines("\n \r\n"), []);
        assert_eq!(lines(""), []);
        assert_eq!(lines("é\n{}\r"), [(1, "é"), (2, "{}\r")]);
    }

    #[test]
    fn bad_lines_are_errors_and_later_lines_still_decode() {
        let frame = "{\"id\":1,\"error\":{\"code\":103,\"message\":\"permission denied\"}}\n{oops\n\"just a string\"\n{}";
        let lines: Vec<Result<Reply, DecodeError>> = decode_frame(frame).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].as_ref().unwrap().error.as_ref().unwrap().code, 103);
        assert_eq!(lines[1].as_ref().unwrap_err().line, 2);
        assert!(lines[2].is_err());
        assert!(is_empty_reply(lines[3].as_ref().unwrap()));
    }

    #[test]
    fn unknown_fields_are_ignored_and_blank_lines_skipped() {
        let frame = "\n{\"id\":7,\"subscribe\":{\"future_field\":1},\"time\":5}\n\n";
        let lines: Vec<Reply> = decode_frame(frame).map(Result::unwrap).collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].id, 7);
    }

    #[test]
    fn server_side_decodes_commands_and_spots_pongs_and_unknown_requests() {
        let frame = "{}\n{\"id\":4,\"whatever\":{}}\n{\"id\":5,\"refresh\":{\"token\":\"x\"}}";
        let commands: Vec<Command> = decode_frame(frame).map(Result::unwrap).collect();
        assert!(commands[0].is_pong());
        assert_eq!(commands[1].request_name(), None);
        assert!(!commands[1].is_pong());
        assert_eq!(commands[2].request_name(), Some("refresh"));
    }

    #[test]
    fn decoding_garbage_never_panics() {
        let inputs = [
            "",
            "\n\n",
            "{",
            "}",
            "[]",
            "null",
            "{\"id\":-1}",
            "{\"id\":99999999999}",
            "{\"push\":{\"pub\":{}}}",
            "{\"push\":{\"pub\":{\"data\":}}}",
            "\u{0}",
            "{\"id\":1,\"connect\":null}",
        ];
        for input in inputs {
            let _ = decode_frame::<Reply>(input).count();
            let _ = decode_frame::<Command>(input).count();
        }
    }
}
