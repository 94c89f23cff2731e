//! What the chat log keeps of a publication: `GET /v1/chat/messages`
//! answers the `channel_chat_message_send` messages of a public chat, less
//! the ones a `channel_chat_message_delete` removed.

use serde_json::value::RawValue;

use crate::emulator::names::CHAT_PREFIX;

/// One chat message kept for `GET /v1/chat/messages`: its id (to apply a
/// `channel_chat_message_delete`) and `data.chat_message` verbatim.
pub(super) struct LoggedMessage {
    pub(super) id: Option<i64>,
    pub(super) message: Box<RawValue>,
}

/// What a publication means to the chat log.
pub(super) enum ChatEntry {
    Send(LoggedMessage),
    Delete(i64),
}

/// Reads a publication into the public chat channel as a chat-log entry:
/// `channel_chat_message_send` keeps `data.chat_message`,
/// `channel_chat_message_delete` names the message to drop; anything else
/// (other types, other channels, payloads of another shape) is `None`.
pub(super) fn chat_entry(channel: &str, data: &RawValue) -> Option<ChatEntry> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "type")]
        kind: String,
        data: Data,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        chat_message: Box<RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Id {
        id: i64,
    }
    if !channel.starts_with(CHAT_PREFIX) {
        return None;
    }
    let envelope: Envelope = serde_json::from_str(data.get()).ok()?;
    let id = serde_json::from_str::<Id>(envelope.data.chat_message.get())
        .ok()
        .map(|id| id.id);
    match envelope.kind.as_str() {
        "channel_chat_message_send" => Some(ChatEntry::Send(LoggedMessage {
            id,
            message: envelope.data.chat_message,
        })),
        "channel_chat_message_delete" => id.map(ChatEntry::Delete),
        _ => None,
    }
}
