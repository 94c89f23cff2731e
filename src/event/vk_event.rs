//! [`VkEvent`], the typed VK event a publication carries, and
//! [`UnknownEvent`], the one kept raw. Decoding them is `decode.rs`.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::chat::{ChatMessage, ChatMessageDelete};
use super::de;
use super::info::{Follow, Raid, Subscription};
use super::kind;
use super::kind_table::EventKind;
use super::points::RewardDemand;
use super::stream::StreamEvent;

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

impl VkEvent {
    /// The event's `type` as on the wire.
    pub fn kind(&self) -> &str {
        match self {
            VkEvent::Stream(event) => event.kind.as_str(),
            VkEvent::Unknown(unknown) => &unknown.kind,
            // Every typed kind but `Stream` has one wire type.
            typed => typed.event_kind().map_or("", |kind| kind.wire_types()[0]),
        }
    }

    /// The event's [`EventKind`]; `None` for [`VkEvent::Unknown`].
    ///
    /// ```
    /// use vklive_pubsub::event::{EventKind, VkEvent};
    ///
    /// let deleted = VkEvent::decode_str(
    ///     r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#,
    /// );
    /// assert_eq!(deleted.event_kind(), Some(EventKind::ChatMessageDelete));
    /// assert_eq!(VkEvent::decode_str(r#"{"type":"new","data":{}}"#).event_kind(), None);
    /// ```
    pub fn event_kind(&self) -> Option<EventKind> {
        Some(match self {
            VkEvent::ChatMessage(_) => EventKind::ChatMessage,
            VkEvent::ChatMessageDelete(_) => EventKind::ChatMessageDelete,
            VkEvent::Follow(_) => EventKind::Follow,
            VkEvent::Raid(_) => EventKind::Raid,
            VkEvent::Subscription(_) => EventKind::Subscription,
            VkEvent::RewardDemand(_) => EventKind::RewardDemand,
            VkEvent::Stream(_) => EventKind::Stream,
            VkEvent::Unknown(_) => return None,
        })
    }
}
