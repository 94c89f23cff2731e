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
#[derive(Debug, Clone, Deserialize)]
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
