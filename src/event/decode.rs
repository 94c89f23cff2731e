//! Decoding a publication payload into a [`VkEvent`]: the envelope, then its
//! `data` into the type the `type` names ([`EventKind::from_type`]).

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::chat::{ChatMessage, ChatMessageDelete};
use super::chat_reader;
use super::de;
use super::info::{Follow, Raid, Subscription};
use super::kind_table::EventKind;
use super::points::RewardDemand;
use super::stream::{StreamEvent, StreamEventKind};
use super::vk_event::{UnknownEvent, VkEvent};

/// Phase one: the envelope, with `type` borrowed when it has no escapes and
/// `data` left undecoded. Extra keys (webhook-style `id`, `time`, …) are ignored.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

// Phase two: one wrapper per `data` shape, `{"<key>": <typed>}`, the key
// being the kind's `EventKind::data_key`.

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
                return unknown("", payload);
            }
        };
        match decode_data(&envelope.kind, envelope.data) {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                log_failure(&envelope.kind, &error);
                unknown(&envelope.kind, payload)
            }
            None => unknown(&envelope.kind, payload),
        }
    }

    /// Decodes a publication payload given as text; text that is not JSON
    /// becomes [`VkEvent::Unknown`] with the text as a JSON string.
    pub fn decode_str(payload: &str) -> VkEvent {
        match serde_json::from_str::<&RawValue>(payload) {
            Ok(raw) => VkEvent::decode(raw),
            Err(_) => unknown("", &string_payload(payload)),
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
}

/// An [`UnknownEvent`] of `kind` holding `payload`.
fn unknown(kind: &str, payload: &RawValue) -> VkEvent {
    VkEvent::Unknown(UnknownEvent {
        kind: kind.to_owned(),
        raw: payload.to_owned(),
    })
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
    let not_typed = || serde::de::Error::custom("not a typed event");
    Ok(match EventKind::from_type(kind).ok_or_else(not_typed)? {
        EventKind::ChatMessage => {
            VkEvent::ChatMessage(map.next_value::<ChatMessageData>()?.chat_message)
        }
        EventKind::ChatMessageDelete => {
            VkEvent::ChatMessageDelete(map.next_value::<ChatMessageDeleteData>()?.chat_message)
        }
        EventKind::Follow => VkEvent::Follow(map.next_value::<FollowData>()?.follow),
        EventKind::Raid => VkEvent::Raid(map.next_value::<RaidData>()?.raid),
        EventKind::Subscription => {
            VkEvent::Subscription(map.next_value::<SubscriptionData>()?.subscription)
        }
        EventKind::RewardDemand => {
            VkEvent::RewardDemand(map.next_value::<RewardDemandData>()?.demand)
        }
        // Raw `data`: the long way, `decode_data`.
        EventKind::Stream => return Err(not_typed()),
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
pub(super) fn serde_one_pass(payload: &str) -> Option<VkEvent> {
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let event = TypedPayload.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(event)
}

/// Decodes `data` for a known `type`; `None` for a type this crate does not know.
fn decode_data(kind: &str, data: Option<&RawValue>) -> Option<serde_json::Result<VkEvent>> {
    let event_kind = EventKind::from_type(kind)?;
    if event_kind == EventKind::Stream {
        // Shapes unknown: an absent `data` may well be normal here.
        let data = data.unwrap_or(RawValue::NULL).to_owned();
        let kind = StreamEventKind::from_type(kind)?;
        return Some(Ok(VkEvent::Stream(StreamEvent { kind, data })));
    }
    // A missing `data` reads as `null`, which no wrapper accepts.
    let data = data.unwrap_or(RawValue::NULL).get();
    let event = match event_kind {
        EventKind::ChatMessage => typed(data, |w: ChatMessageData| {
            VkEvent::ChatMessage(w.chat_message)
        }),
        EventKind::ChatMessageDelete => typed(data, |w: ChatMessageDeleteData| {
            VkEvent::ChatMessageDelete(w.chat_message)
        }),
        EventKind::Follow => typed(data, |w: FollowData| VkEvent::Follow(w.follow)),
        EventKind::Raid => typed(data, |w: RaidData| VkEvent::Raid(w.raid)),
        EventKind::Subscription => typed(data, |w: SubscriptionData| {
            VkEvent::Subscription(w.subscription)
        }),
        EventKind::RewardDemand => {
            typed(data, |w: RewardDemandData| VkEvent::RewardDemand(w.demand))
        }
        EventKind::Stream => return None, // handled above
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
