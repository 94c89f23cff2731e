//! Typed VK Video Live events, decoded from a publication's `{type, data}` envelope.
//!
//! PLACEHOLDER: a minimal catalogue (chat message + unknown). The full catalogue
//! replaces this file; the interface `VkEvent::decode(&RawValue) -> VkEvent`,
//! `VkEvent::kind()` and `VkEvent::Unknown(UnknownEvent)` stays.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A VK event carried by a publication.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum VkEvent {
    /// `channel_chat_message_send`.
    ChatMessage(ChatMessage),
    /// Any type this crate does not type (or a known type that failed to decode).
    Unknown(UnknownEvent),
}

/// A chat message.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct ChatMessage {
    /// Message id.
    pub id: i64,
}

/// An event kept raw.
#[derive(Debug, Clone)]
pub struct UnknownEvent {
    /// The envelope's `type` (empty when the payload had none).
    pub kind: String,
    /// The whole publication payload, as received.
    pub raw: Box<RawValue>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct ChatMessageData {
    chat_message: ChatMessage,
}

impl VkEvent {
    /// Decodes a publication payload. Never fails: anything that cannot be typed
    /// becomes [`VkEvent::Unknown`] with its raw JSON.
    pub fn decode(payload: &RawValue) -> VkEvent {
        let unknown = |kind: &str| {
            VkEvent::Unknown(UnknownEvent {
                kind: kind.to_owned(),
                raw: payload.to_owned(),
            })
        };
        let Ok(envelope) = serde_json::from_str::<Envelope>(payload.get()) else {
            return unknown("");
        };
        match envelope.kind.as_ref() {
            "channel_chat_message_send" => {
                match serde_json::from_str::<ChatMessageData>(envelope.data.get()) {
                    Ok(data) => VkEvent::ChatMessage(data.chat_message),
                    Err(_) => unknown(&envelope.kind),
                }
            }
            other => unknown(other),
        }
    }

    /// The event's `type` as on the wire.
    pub fn kind(&self) -> &str {
        match self {
            VkEvent::ChatMessage(_) => "channel_chat_message_send",
            VkEvent::Unknown(unknown) => &unknown.kind,
        }
    }
}

/// Channel info from `GET /v1/channel` (placeholder).
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelInfo {
    /// Channel id.
    pub id: i64,
    /// Pubsub channel names.
    #[serde(default)]
    pub web_socket_channels: WebSocketChannels,
}

/// Pubsub channel names of a channel (placeholder).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebSocketChannels {
    /// Public chat.
    pub chat: Option<String>,
    /// Channel events.
    pub info: Option<String>,
    /// Channel points.
    pub channel_points: Option<String>,
    /// Private chat.
    pub private_chat: Option<String>,
    /// Private channel events.
    pub private_info: Option<String>,
    /// Private channel points.
    pub private_channel_points: Option<String>,
}

impl WebSocketChannels {
    /// Every channel name present.
    pub fn all(&self) -> Vec<String> {
        [
            &self.chat,
            &self.info,
            &self.channel_points,
            &self.private_chat,
            &self.private_info,
            &self.private_channel_points,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

impl serde::Serialize for VkEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            VkEvent::ChatMessage(message) => message.serialize(serializer),
            VkEvent::Unknown(unknown) => unknown.raw.serialize(serializer),
        }
    }
}
