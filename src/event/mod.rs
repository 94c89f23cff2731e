//! Typed VK Video Live events, decoded from a publication's `{type, data}` envelope.
//!
//! [`VkEvent::decode`] takes the publication's `data` (the VK envelope) and
//! never fails: a `type` this crate does not know, or a known one whose data
//! does not fit its type, becomes [`VkEvent::Unknown`] with the payload
//! verbatim, so no event is lost when VK changes something.
//!
//! Decoding is two-phase, as in `twitch_api`: the envelope is read with a
//! borrowed `type` and the `data` left as a [`RawValue`](serde_json::value::RawValue) slice, then only
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
mod decode;
mod info;
mod key_order;
pub mod kind;
mod kind_table;
mod palette;
mod points;
mod stream;
mod summary;
mod time;
mod user;
mod vk_event;

pub(crate) use channel::channel_slug;
pub use channel::{
    ChannelCounters, ChannelInfo, ChannelKey, ChannelOwner, ChannelResponse, StreamCategory,
    StreamCounters, StreamInfo, WebSocketChannels,
};
pub use chat::{
    Author, Badge, ChatCommand, ChatKey, ChatMessage, ChatMessageDelete, LinkPart, MentionPart,
    Part, Role, SmilePart, TextPart, plain_text,
};
#[doc(hidden)] // the actor's de-duplication read, public for the benches
pub use chat_key::chat_key;
pub(crate) use chat_key::skim_chat_key;
#[doc(hidden)] // the one-pass seed, public for the benches, tests and fuzzer
pub use decode::TypedPayload;
pub use info::{ChannelRef, Follow, Raid, RaidSource, Subscription, SubscriptionLevel};
pub use kind_table::EventKind;
pub use palette::{NickColor, PALETTE};
pub use points::{Reward, RewardDemand};
pub use stream::{StreamEvent, StreamEventKind};
pub use summary::ChatSummary;
pub use time::Timestamp;
pub use user::User;
pub use vk_event::{UnknownEvent, VkEvent};
