//! Typed VK Video Live events, decoded from a publication's `{type, data}` envelope.
//!
//! [`VkEvent::decode`] takes the publication's `data` (the VK envelope) and
//! never fails: a `type` this crate does not know, or a known one whose data
//! does not fit its type, becomes [`VkEvent::Unknown`] with the payload
//! verbatim, so no event is lost when VK changes something.
//!
//! Decoding is two-phase, as in `twitch_api`: the envelope is read with a
//! borrowed `type` and the `data` left as a [`RawValue`] slice, then only
//! `data` is decoded into the type the `type` names. No `serde_json::Value`
//! is built on the way.
//!
//! Tolerance rules (see `docs/events.md`): unknown fields are ignored, fields
//! the docs do not confirm are optional, `null` reads as "absent", string ids
//! may be numbers, timestamps may be seconds or milliseconds. With the
//! `strict` feature the typed structs deny unknown fields instead, so the
//! test fixtures cannot drift from the types unnoticed.
//!
//! ```
//! use serde_json::value::RawValue;
//! use vklive_pubsub::event::VkEvent;
//!
//! let payload = RawValue::from_string(
//!     r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#.into(),
//! ).unwrap();
//! match VkEvent::decode(&payload) {
//!     VkEvent::ChatMessageDelete(deleted) => assert_eq!(deleted.id, 7),
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

mod channel;
mod chat;
mod chat_key;
mod chat_reader;
mod de;
mod info;
mod key_order;
mod palette;
mod points;
mod stream;
mod summary;
mod time;
mod user;

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

pub use channel::{
    ChannelCounters, ChannelInfo, ChannelKey, ChannelOwner, ChannelResponse, StreamCategory,
    StreamCounters, StreamInfo, WebSocketChannels, channel_slug,
};
pub use chat::{
    Author, Badge, ChatCommand, ChatKey, ChatMessage, ChatMessageDelete, LinkPart, MentionPart,
    Part, Role, SmilePart, TextPart, plain_text,
};
#[doc(hidden)] // the actor's de-duplication read, public for the benches
pub use chat_key::chat_key;
pub(crate) use chat_key::skim_chat_key;
pub use info::{ChannelRef, Follow, Raid, RaidSource, Subscription, SubscriptionLevel};
pub use palette::{NickColor, PALETTE};
pub use points::{Reward, RewardDemand};
pub use stream::{StreamEvent, StreamEventKind};
pub use summary::ChatSummary;
pub use time::Timestamp;
pub use user::User;

/// The wire `type` of each typed event.
pub mod kind {
    /// [`VkEvent::ChatMessage`](super::VkEvent::ChatMessage).
    pub const CHAT_MESSAGE_SEND: &str = "channel_chat_message_send";
    /// [`VkEvent::ChatMessageDelete`](super::VkEvent::ChatMessageDelete).
    pub const CHAT_MESSAGE_DELETE: &str = "channel_chat_message_delete";
    /// [`VkEvent::Follow`](super::VkEvent::Follow).
    pub const FOLLOW_CREATE: &str = "channel_follow_create";
    /// [`VkEvent::Raid`](super::VkEvent::Raid).
    pub const RAID_INCOME: &str = "channel_raid_income";
    /// [`VkEvent::Subscription`](super::VkEvent::Subscription).
    pub const SUBSCRIPTION_CREATE: &str = "channel_subscription_create";
    /// [`VkEvent::RewardDemand`](super::VkEvent::RewardDemand).
    pub const POINTS_REWARD_DEMAND_CREATE: &str = "channel_points_reward_demand_create";
    /// Types of the internal web API (camelCase payloads), which are not
    /// DevAPI events; they arrive as [`VkEvent::Unknown`](super::VkEvent::Unknown).
    pub const INTERNAL_API: [&str; 6] = [
        "message",
        "delete_message",
        "cp_reward_demand",
        "stream_online_status",
        "stream_start",
        "stream_end",
    ];
}

/// A VK event carried by a publication.
///
/// Serializes as the inner value alone (no tag), so that
/// `{"type": event.kind(), "data": event}` prints each event with its type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum VkEvent {
    /// `channel_chat_message_send`.
    ChatMessage(Box<ChatMessage>),
    /// `channel_chat_message_delete`.
    ChatMessageDelete(ChatMessageDelete),
    /// `channel_follow_create`.
    Follow(Follow),
    /// `channel_raid_income`.
    Raid(Box<Raid>),
    /// `channel_subscription_create`.
    Subscription(Box<Subscription>),
    /// `channel_points_reward_demand_create`.
    RewardDemand(Box<RewardDemand>),
    /// `channel_stream_*`: the stream lifecycle, shapes unconfirmed.
    Stream(StreamEvent),
    /// Any type this crate does not type, or a known type whose data did not
    /// decode. Match on it with care: a future version may type what arrives
    /// here today.
    Unknown(UnknownEvent),
}

/// An event kept raw.
#[derive(Debug, Clone)]
pub struct UnknownEvent {
    /// The envelope's `type` (empty when the payload had none).
    pub kind: String,
    /// The whole publication payload, as received.
    pub raw: Box<RawValue>,
}

impl UnknownEvent {
    /// Whether the `type` belongs to VK's internal web API, a sign that a
    /// channel name from outside `web_socket_channels` was subscribed.
    pub fn is_internal_api(&self) -> bool {
        kind::INTERNAL_API.contains(&self.kind.as_str())
    }
}

impl PartialEq for UnknownEvent {
    fn eq(&self, other: &UnknownEvent) -> bool {
        self.kind == other.kind && de::raw_eq(&self.raw, &other.raw)
    }
}

impl Serialize for UnknownEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl Serialize for VkEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VkEvent::ChatMessage(event) => event.serialize(serializer),
            VkEvent::ChatMessageDelete(event) => event.serialize(serializer),
            VkEvent::Follow(event) => event.serialize(serializer),
            VkEvent::Raid(event) => event.serialize(serializer),
            VkEvent::Subscription(event) => event.serialize(serializer),
            VkEvent::RewardDemand(event) => event.serialize(serializer),
            VkEvent::Stream(event) => event.serialize(serializer),
            VkEvent::Unknown(event) => event.serialize(serializer),
        }
    }
}

/// Phase one: the envelope, with `type` borrowed when it has no escapes and
/// `data` left undecoded. Extra keys (webhook-style `id`, `time`, …) are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

// Phase two: one wrapper per `data` shape, `{"<key>": <typed>}`.

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct ChatMessageData {
    chat_message: Box<ChatMessage>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct ChatMessageDeleteData {
    chat_message: ChatMessageDelete,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct FollowData {
    follow: Follow,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct RaidData {
    raid: Box<Raid>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct SubscriptionData {
    subscription: Box<Subscription>,
}

#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct RewardDemandData {
    demand: Box<RewardDemand>,
}

impl VkEvent {
    /// Decodes a publication payload, the VK envelope `{"type": …, "data": …}`.
    ///
    /// Never fails and never panics: anything that cannot be typed becomes
    /// [`VkEvent::Unknown`] with the payload as received. A known type that
    /// fails to decode is logged at `debug` (position and error class only,
    /// no payload values; the full error at `trace`).
    pub fn decode(payload: &RawValue) -> VkEvent {
        // The common case in one pass; anything unusual the long way below,
        // which gives the same event (see `TypedPayload`).
        if let Some(event) = one_pass(payload.get()) {
            return event;
        }
        let envelope = match serde_json::from_str::<Envelope>(payload.get()) {
            Ok(envelope) => envelope,
            Err(error) => {
                log_failure("", &error);
                return VkEvent::unknown("", payload);
            }
        };
        match decode_data(&envelope.kind, envelope.data) {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                log_failure(&envelope.kind, &error);
                VkEvent::unknown(&envelope.kind, payload)
            }
            None => VkEvent::unknown(&envelope.kind, payload),
        }
    }

    /// Decodes a publication payload given as text; text that is not JSON
    /// becomes [`VkEvent::Unknown`] with the text as a JSON string.
    pub fn decode_str(payload: &str) -> VkEvent {
        match serde_json::from_str::<&RawValue>(payload) {
            Ok(raw) => VkEvent::decode(raw),
            Err(_) => VkEvent::unknown("", &string_payload(payload)),
        }
    }

    /// [`VkEvent::decode`] of text that is known to be one JSON value (a
    /// slice of a line the protocol decoder accepted).
    pub(crate) fn decode_json(payload: &str) -> VkEvent {
        match one_pass(payload) {
            Some(event) => event,
            None => VkEvent::decode_str(payload),
        }
    }

    /// The event's `type` as on the wire.
    pub fn kind(&self) -> &str {
        match self {
            VkEvent::ChatMessage(_) => kind::CHAT_MESSAGE_SEND,
            VkEvent::ChatMessageDelete(_) => kind::CHAT_MESSAGE_DELETE,
            VkEvent::Follow(_) => kind::FOLLOW_CREATE,
            VkEvent::Raid(_) => kind::RAID_INCOME,
            VkEvent::Subscription(_) => kind::SUBSCRIPTION_CREATE,
            VkEvent::RewardDemand(_) => kind::POINTS_REWARD_DEMAND_CREATE,
            VkEvent::Stream(event) => event.kind.as_str(),
            VkEvent::Unknown(unknown) => &unknown.kind,
        }
    }

    fn unknown(kind: &str, payload: &RawValue) -> VkEvent {
        VkEvent::Unknown(UnknownEvent {
            kind: kind.to_owned(),
            raw: payload.to_owned(),
        })
    }
}

/// Decodes a publication payload in one pass, as part of a larger document:
/// the seed for [`protocol::decode_publication`](crate::protocol::decode_publication).
///
/// It types what [`VkEvent::decode`] types, with the same result, but fails
/// instead of falling back: on a type that is not typed (stream events,
/// unknown types), a duplicate key, and anything that does not decode. With
/// `type` first (as VK sends it) `data` is decoded in place; with `data`
/// first it is kept as a slice of the line and decoded once the type is known. The caller then decodes the payload with [`VkEvent::decode`],
/// which keeps it raw in [`VkEvent::Unknown`] (and logs why).
///
/// ```
/// use vklive_pubsub::event::{TypedPayload, VkEvent};
/// use vklive_pubsub::protocol::decode_publication;
/// let line = r#"{"push":{"channel":"c","pub":{"data":{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}},"offset":3}}}"#;
/// let publication = decode_publication(line, TypedPayload).unwrap();
/// assert!(matches!(publication.data, VkEvent::ChatMessageDelete(deleted) if deleted.id == 7));
/// ```
#[doc(hidden)] // the one-pass seed, public for the benches, tests and fuzzer
#[derive(Debug, Clone, Copy, Default)]
pub struct TypedPayload;

impl<'de> DeserializeSeed<'de> for TypedPayload {
    type Value = VkEvent;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<VkEvent, D::Error> {
        deserializer.deserialize_map(TypedPayload)
    }
}

impl<'de> Visitor<'de> for TypedPayload {
    type Value = VkEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a typed VK event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VkEvent, A::Error> {
        let mut kind: Option<Cow<'de, str>> = None;
        let mut event = None;
        // `data` before `type`: kept as a slice of the line, decoded at the end.
        let mut early: Option<&'de RawValue> = None;
        while let Some(de::Key(key)) = map.next_key()? {
            match (key.as_ref(), &kind) {
                ("type", None) => kind = Some(map.next_value::<de::Key>()?.0),
                ("data", Some(kind)) if event.is_none() && early.is_none() => {
                    event = Some(next_typed(kind, &mut map)?);
                }
                ("data", None) if early.is_none() => early = Some(map.next_value()?),
                // A key twice: leave it to `VkEvent::decode`.
                ("type" | "data", _) => return Err(serde::de::Error::custom("duplicate key")),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (event, early, kind) {
            (Some(event), _, _) => Ok(event),
            (None, Some(data), Some(kind)) => match decode_data(&kind, Some(data)) {
                Some(Ok(event)) if !matches!(event, VkEvent::Stream(_)) => Ok(event),
                _ => Err(serde::de::Error::custom("not a typed event")),
            },
            _ => Err(serde::de::Error::custom("no data")),
        }
    }
}

/// Decodes the `data` value of a typed `kind` in place.
fn next_typed<'de, A: MapAccess<'de>>(kind: &str, map: &mut A) -> Result<VkEvent, A::Error> {
    Ok(match kind {
        kind::CHAT_MESSAGE_SEND => {
            VkEvent::ChatMessage(map.next_value::<ChatMessageData>()?.chat_message)
        }
        kind::CHAT_MESSAGE_DELETE => {
            VkEvent::ChatMessageDelete(map.next_value::<ChatMessageDeleteData>()?.chat_message)
        }
        kind::FOLLOW_CREATE => VkEvent::Follow(map.next_value::<FollowData>()?.follow),
        kind::RAID_INCOME => VkEvent::Raid(map.next_value::<RaidData>()?.raid),
        kind::SUBSCRIPTION_CREATE => {
            VkEvent::Subscription(map.next_value::<SubscriptionData>()?.subscription)
        }
        kind::POINTS_REWARD_DEMAND_CREATE => {
            VkEvent::RewardDemand(map.next_value::<RewardDemandData>()?.demand)
        }
        _ => return Err(serde::de::Error::custom("not a typed event")),
    })
}

/// A payload typed by [`TypedPayload`], or `None` if it needs the long way.
fn one_pass(payload: &str) -> Option<VkEvent> {
    if let Some(message) = chat_reader::read_chat_message(payload) {
        return Some(VkEvent::ChatMessage(message));
    }
    serde_one_pass(payload)
}

/// [`one_pass`] with serde alone: what the direct chat reader must agree with.
fn serde_one_pass(payload: &str) -> Option<VkEvent> {
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let event = TypedPayload.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(event)
}

/// Decodes `data` for a known `type`; `None` for a type this crate does not know.
fn decode_data(kind: &str, data: Option<&RawValue>) -> Option<serde_json::Result<VkEvent>> {
    if let Some(stream) = StreamEventKind::from_type(kind) {
        // Shapes unknown: an absent `data` may well be normal here.
        let data = data.unwrap_or(RawValue::NULL).to_owned();
        return Some(Ok(VkEvent::Stream(StreamEvent { kind: stream, data })));
    }
    // A missing `data` reads as `null`, which no wrapper accepts.
    let data = data.unwrap_or(RawValue::NULL).get();
    let event = match kind {
        kind::CHAT_MESSAGE_SEND => typed(data, |w: ChatMessageData| {
            VkEvent::ChatMessage(w.chat_message)
        }),
        kind::CHAT_MESSAGE_DELETE => typed(data, |w: ChatMessageDeleteData| {
            VkEvent::ChatMessageDelete(w.chat_message)
        }),
        kind::FOLLOW_CREATE => typed(data, |w: FollowData| VkEvent::Follow(w.follow)),
        kind::RAID_INCOME => typed(data, |w: RaidData| VkEvent::Raid(w.raid)),
        kind::SUBSCRIPTION_CREATE => typed(data, |w: SubscriptionData| {
            VkEvent::Subscription(w.subscription)
        }),
        kind::POINTS_REWARD_DEMAND_CREATE => {
            typed(data, |w: RewardDemandData| VkEvent::RewardDemand(w.demand))
        }
        _ => return None,
    };
    Some(event)
}

fn typed<'a, W: Deserialize<'a>>(
    data: &'a str,
    wrap: impl FnOnce(W) -> VkEvent,
) -> serde_json::Result<VkEvent> {
    serde_json::from_str(data).map(wrap)
}

fn log_failure(kind: &str, error: &serde_json::Error) {
    // serde_json's messages can quote payload values (chat text, nicks), so
    // debug gets only where and what class of failure; trace gets the rest.
    tracing::debug!(
        kind,
        class = ?error.classify(),
        line = error.line(),
        column = error.column(),
        "VK event did not decode; passed on as Unknown"
    );
    tracing::trace!(kind, %error, "VK event decode error");
}

/// Wraps non-JSON text as a JSON string so that it can still be kept raw.
fn string_payload(text: &str) -> Box<RawValue> {
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| String::from("null"));
    RawValue::from_string(quoted).unwrap_or_else(|_| RawValue::NULL.to_owned())
}
