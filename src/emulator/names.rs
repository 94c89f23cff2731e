//! The pubsub channel names the emulator gives a VK channel, and the
//! namespaces it serves.
//!
//! The keys and their privacy are the crate's own [`ChannelKey`] (the keys of
//! `web_socket_channels`); only the name pattern is the emulator's.

use serde::Serialize;

use crate::event::{ChannelKey, WebSocketChannels};

/// The namespace of each key: a name is `<namespace>:<channel id>`.
const NAMESPACES: [(ChannelKey, &str); 8] = [
    (ChannelKey::Chat, "api-channel-chat"),
    (ChannelKey::Info, "api-channel-info"),
    (ChannelKey::ChannelPoints, "api-channel-points"),
    (ChannelKey::PrivateChat, "api-channel-private-chat"),
    (ChannelKey::PrivateInfo, "api-channel-private-info"),
    (
        ChannelKey::PrivateChannelPoints,
        "api-channel-private-points",
    ),
    (ChannelKey::LimitedChat, "api-channel-limited-chat"),
    (
        ChannelKey::LimitedPrivateChat,
        "api-channel-limited-private-chat",
    ),
];

/// Prefix of the public chat channels, whose messages the chat log keeps.
pub(crate) const CHAT_PREFIX: &str = "api-channel-chat:";

/// The key of a channel name in a namespace the emulator serves, `None`
/// for another namespace (error 102) or a name without an id.
pub(crate) fn key_of(channel: &str) -> Option<ChannelKey> {
    let (namespace, rest) = channel.split_once(':')?;
    if rest.is_empty() {
        return None;
    }
    NAMESPACES
        .iter()
        .find(|(_, name)| *name == namespace)
        .map(|(key, _)| *key)
}

/// `Some(private)` for a channel in a namespace the emulator serves (private:
/// it needs a subscription token), `None` otherwise.
pub(crate) fn namespace_privacy(channel: &str) -> Option<bool> {
    key_of(channel).map(|key| !key.is_public())
}

/// The eight WebSocket channel names of one VK channel, as `GET /v1/channel`
/// returns them in `web_socket_channels`.
///
/// The emulator's own face of [`WebSocketChannels`], kept for its tests'
/// sake: the emulator knows every name, so these are `String` where VK's
/// answer has `Option<String>` (`names.chat` rather than
/// `names.chat.as_deref().unwrap()` in every test). Both are keyed by
/// [`ChannelKey`], and `WebSocketChannels::from(&names)` converts.
///
/// ```
/// use vklive_pubsub::emulator::ChannelNames;
/// let names = ChannelNames::for_channel_id(7);
/// assert_eq!(names.chat, "api-channel-chat:7");
/// assert_eq!(names.private().len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ChannelNames {
    /// Public chat.
    pub chat: String,
    /// Messages visible only to the token's user (needs a subscription token).
    pub private_chat: String,
    /// Public channel events: follows, raids, subscriptions.
    pub info: String,
    /// Private variant of `info` (needs a subscription token).
    pub private_info: String,
    /// Public api-channel-points events.
    pub channel_points: String,
    /// Owner-side channel points, e.g. reward demands (needs a subscription token).
    pub private_channel_points: String,
    /// Chat for restricted users (needs a subscription token).
    pub limited_chat: String,
    /// Private chat for restricted users (needs a subscription token).
    pub limited_private_chat: String,
}

impl ChannelNames {
    /// The names the emulator uses for the VK channel with this id.
    pub fn for_channel_id(channel_id: u64) -> ChannelNames {
        let name = |key: ChannelKey| {
            let namespace = NAMESPACES
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("", |(_, namespace)| namespace);
            format!("{namespace}:{channel_id}")
        };
        ChannelNames {
            chat: name(ChannelKey::Chat),
            private_chat: name(ChannelKey::PrivateChat),
            info: name(ChannelKey::Info),
            private_info: name(ChannelKey::PrivateInfo),
            channel_points: name(ChannelKey::ChannelPoints),
            private_channel_points: name(ChannelKey::PrivateChannelPoints),
            limited_chat: name(ChannelKey::LimitedChat),
            limited_private_chat: name(ChannelKey::LimitedPrivateChat),
        }
    }

    /// The name of one key.
    pub fn get(&self, key: ChannelKey) -> &str {
        match key {
            ChannelKey::Chat => &self.chat,
            ChannelKey::PrivateChat => &self.private_chat,
            ChannelKey::Info => &self.info,
            ChannelKey::PrivateInfo => &self.private_info,
            ChannelKey::ChannelPoints => &self.channel_points,
            ChannelKey::PrivateChannelPoints => &self.private_channel_points,
            ChannelKey::LimitedChat => &self.limited_chat,
            ChannelKey::LimitedPrivateChat => &self.limited_private_chat,
        }
    }

    /// All eight names, public ones first.
    pub fn all(&self) -> Vec<String> {
        self.names(|_| true)
    }

    /// The names that need a subscription token.
    pub fn private(&self) -> Vec<String> {
        self.names(|key| !key.is_public())
    }

    fn names(&self, keep: impl Fn(ChannelKey) -> bool) -> Vec<String> {
        ChannelKey::ALL
            .into_iter()
            .filter(|key| keep(*key))
            .map(|key| self.get(key).to_owned())
            .collect()
    }
}

impl From<&ChannelNames> for WebSocketChannels {
    /// The names as the crate's `web_socket_channels` type (every one present).
    fn from(names: &ChannelNames) -> WebSocketChannels {
        let some = |key| Some(names.get(key).to_owned());
        WebSocketChannels {
            chat: some(ChannelKey::Chat),
            private_chat: some(ChannelKey::PrivateChat),
            info: some(ChannelKey::Info),
            private_info: some(ChannelKey::PrivateInfo),
            channel_points: some(ChannelKey::ChannelPoints),
            private_channel_points: some(ChannelKey::PrivateChannelPoints),
            limited_chat: some(ChannelKey::LimitedChat),
            limited_private_chat: some(ChannelKey::LimitedPrivateChat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_tell_public_private_and_unknown_apart() {
        assert_eq!(namespace_privacy("api-channel-chat:1"), Some(false));
        assert_eq!(namespace_privacy("api-channel-points:7"), Some(false));
        assert_eq!(
            namespace_privacy("api-channel-private-points:7"),
            Some(true)
        );
        assert_eq!(
            namespace_privacy("api-channel-limited-private-chat:7"),
            Some(true)
        );
        assert_eq!(namespace_privacy("news:1"), None);
        assert_eq!(namespace_privacy("api-channel-chat:"), None);
        assert_eq!(namespace_privacy("api-channel-chat"), None);
    }

    #[test]
    fn every_channel_name_is_in_a_known_namespace_with_the_documented_privacy() {
        let names = ChannelNames::for_channel_id(9);
        for name in names.all().iter().take(3) {
            assert_eq!(namespace_privacy(name), Some(false), "{name}");
        }
        for name in names.private() {
            assert_eq!(namespace_privacy(&name), Some(true), "{name}");
        }
        assert!(names.chat.starts_with(CHAT_PREFIX));
    }

    #[test]
    fn the_names_match_the_crate_s_web_socket_channels() {
        let names = ChannelNames::for_channel_id(3);
        let channels = WebSocketChannels::from(&names);
        assert_eq!(channels.all(), names.all());
        assert_eq!(channels.private(), names.private());
        for (key, name) in channels.iter() {
            assert_eq!(key_of(name), Some(key));
        }
    }
}
