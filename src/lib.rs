#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod bot;
mod client;
mod connection;
mod delivery;
pub mod error;
pub mod event;
mod json_scan;
pub mod log;
pub mod ndjson;
mod plaintext;
pub mod protocol;
mod secret;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;

#[cfg(feature = "relay")]
#[cfg_attr(docsrs, doc(cfg(feature = "relay")))]
pub mod relay;

pub use auth::{Authorization, Credentials};

pub use client::{
    Client, ClientBuilder, DEFAULT_DELIVERY_BUDGET, DEFAULT_FIRST_CONNECT_ATTEMPTS,
    DEFAULT_FIRST_CONNECT_TIMEOUT, DEFAULT_WS_URL, Events,
};
pub use connection::Backoff;
/// For example, a loop that prints chat and says what happens to the link:
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use vklive_pubsub::emulator::{demo_chat_message, Emulator, EmulatorConfig};
/// use vklive_pubsub::{Client, CloseReason, Event, VkEvent};
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("access-token", 1, "viewer");
/// let (client, mut events) = Client::with_user_token("access-token")
///     .api_url(emulator.api_url())
///     .ws_url(emulator.ws_url())
///     .channel("api-channel-chat:1")
///     .connect()
///     .await?;
/// while let Some(event) = events.next().await {
///     match event {
///         Event::Publication(publication) => match &publication.event {
///             VkEvent::ChatMessage(message) => {
///                 println!("{}: {}", message.author_nick(), message.plain_text());
///                 client.close().await?;
///             }
///             other => println!("{} in {}", other.kind(), publication.channel),
///         },
///         Event::Subscribed { channel, .. } => {
///             println!("following {channel}");
///             emulator.publish(&channel, demo_chat_message(1, "привет"));
///         }
///         Event::Gap { channel, missed } => println!("{channel}: lost {missed:?}"),
///         Event::Disconnected { reason, .. } => println!("reconnecting: {reason}"),
///         Event::Closed { reason: CloseReason::Failed(error) } => return Err(error.into()),
///         Event::Closed { .. } => break,
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[doc(inline)]
pub use delivery::Event;
pub use delivery::{
    CloseReason, ConnectionState, LazyEvent, LazyPublication, Overflow, PoolState, Publication,
    Recovery, State,
};
pub use error::{Error, ErrorKind};
pub use event::VkEvent;
#[doc(inline)]
pub use log::may_contain_tokens;
pub use secret::Secret;
