//! `GET /v1/channel`: the channel, its owner, its live stream, and the
//! WebSocket channel names to subscribe to (vk-devapi.md §3.3 and §4).

use serde::{Deserialize, Serialize};

use super::de::{null_default, string_id};
use super::palette::NickColor;
use super::time::Timestamp;

/// The `data` of a `GET /v1/channel` answer.
///
/// ```
/// use vklive_pubsub::event::ChannelResponse;
/// let body = r#"{"data":{"channel":{"id":1,"url":"c","web_socket_channels":
///     {"chat":"api-channel-chat:1","private_chat":"api-channel-chat:1#7"}},"stream":null}}"#;
/// let answer = ChannelResponse::from_json(body).unwrap();
/// assert_eq!(answer.channel.web_socket_channels.public(), ["api-channel-chat:1"]);
/// assert!(answer.stream.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChannelResponse {
    /// The channel.
    pub channel: ChannelInfo,
    /// Its owner.
    #[serde(default)]
    pub owner: Option<ChannelOwner>,
    /// The live stream; `None` when offline (VK sends `null` or nothing).
    #[serde(default)]
    pub stream: Option<StreamInfo>,
    /// One entry per stream slot (shape assumed to be the `stream` one).
    #[serde(default, deserialize_with = "null_default")]
    pub streams: Vec<StreamInfo>,
}

/// The `{"data": …}` envelope of every successful DevAPI answer.
#[derive(Deserialize)]
struct DataEnvelope<T> {
    data: T,
}

impl ChannelResponse {
    /// Decodes a whole `GET /v1/channel` answer body, `{"data":{…}}`.
    pub fn from_json(body: &str) -> Result<ChannelResponse, serde_json::Error> {
        serde_json::from_str::<DataEnvelope<ChannelResponse>>(body).map(|envelope| envelope.data)
    }
}

/// The `channel` of a `GET /v1/channel` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChannelInfo {
    /// The channel id.
    pub id: i64,
    /// URL slug (`live.vkvideo.ru/<url>`).
    #[serde(default, deserialize_with = "null_default")]
    pub url: String,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub nick: String,
    /// Palette index of the nick colour.
    #[serde(default)]
    pub nick_color: Option<NickColor>,
    /// Avatar image URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// `online`, `offline` or `wait` (values seen so far).
    #[serde(default)]
    pub status: Option<String>,
    /// Channel counters.
    #[serde(default)]
    pub counters: Option<ChannelCounters>,
    /// The pubsub channel names to subscribe to.
    #[serde(default, deserialize_with = "null_default")]
    pub web_socket_channels: WebSocketChannels,
}

/// Channel counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChannelCounters {
    /// Number of subscribers.
    #[serde(default)]
    pub subscribers: Option<i64>,
}

/// The `owner` of a `GET /v1/channel` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChannelOwner {
    /// User id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub nick: String,
    /// Palette index of the nick colour.
    #[serde(default)]
    pub nick_color: Option<NickColor>,
    /// Avatar image URL.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// The owner is a verified streamer.
    #[serde(default, deserialize_with = "null_default")]
    pub is_verified_streamer: bool,
}

/// A stream, live or ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct StreamInfo {
    /// Stream id (a UUID); sending chat needs it.
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Stream title.
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    /// Start time (fixtures disagree on seconds vs ms; both are read).
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// End time; `None` (or 0) while live.
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// What is being streamed.
    #[serde(default)]
    pub category: Option<StreamCategory>,
    /// Viewer counters.
    #[serde(default)]
    pub counters: Option<StreamCounters>,
}

impl StreamInfo {
    /// Live by the clients' rule: `ended_at` absent, `null` or 0.
    pub fn is_live(&self) -> bool {
        self.ended_at.is_none_or(|ended| ended.unix_millis() == 0)
    }
}

/// The category of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct StreamCategory {
    /// Category id (a UUID).
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Category title.
    #[serde(default, deserialize_with = "null_default")]
    pub title: String,
    /// Category type, e.g. `game` (the wire key is `type`).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// Stream counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct StreamCounters {
    /// Current viewers.
    #[serde(default)]
    pub viewers: Option<i64>,
    /// Total views.
    #[serde(default)]
    pub views: Option<i64>,
}

// ---------------------------------------------------------------------------
// WebSocket channel names
// ---------------------------------------------------------------------------

/// A key of `web_socket_channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChannelKey {
    /// `chat`: public chat.
    Chat,
    /// `private_chat`: messages visible only to the token's user.
    PrivateChat,
    /// `info`: follows, raids, subscriptions.
    Info,
    /// `private_info`: the private variant of `info`.
    PrivateInfo,
    /// `channel_points`: channel points, public side.
    ChannelPoints,
    /// `private_channel_points`: reward demands, owner side.
    PrivateChannelPoints,
    /// `limited_chat`: chat for restricted users (?).
    LimitedChat,
    /// `limited_private_chat`.
    LimitedPrivateChat,
}

impl ChannelKey {
    /// Every key, public ones first.
    pub const ALL: [ChannelKey; 8] = [
        ChannelKey::Chat,
        ChannelKey::Info,
        ChannelKey::ChannelPoints,
        ChannelKey::PrivateChat,
        ChannelKey::PrivateInfo,
        ChannelKey::PrivateChannelPoints,
        ChannelKey::LimitedChat,
        ChannelKey::LimitedPrivateChat,
    ];

    /// The key as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKey::Chat => "chat",
            ChannelKey::PrivateChat => "private_chat",
            ChannelKey::Info => "info",
            ChannelKey::PrivateInfo => "private_info",
            ChannelKey::ChannelPoints => "channel_points",
            ChannelKey::PrivateChannelPoints => "private_channel_points",
            ChannelKey::LimitedChat => "limited_chat",
            ChannelKey::LimitedPrivateChat => "limited_private_chat",
        }
    }

    /// Public keys (`chat`, `info`, `channel_points`) are subscribed without
    /// a subscription token; the others need one.
    pub fn is_public(self) -> bool {
        matches!(
            self,
            ChannelKey::Chat | ChannelKey::Info | ChannelKey::ChannelPoints
        )
    }
}

/// `channel.web_socket_channels`: the pubsub channel names, to be used
/// verbatim (their format is undocumented; never build them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireChannels")]
pub struct WebSocketChannels {
    /// Public chat.
    pub chat: Option<String>,
    /// Private chat (needs a subscription token).
    pub private_chat: Option<String>,
    /// Channel events.
    pub info: Option<String>,
    /// Private channel events (needs a subscription token).
    pub private_info: Option<String>,
    /// Channel points, public side.
    pub channel_points: Option<String>,
    /// Channel points, owner side (needs a subscription token).
    pub private_channel_points: Option<String>,
    /// Limited chat (needs a subscription token).
    pub limited_chat: Option<String>,
    /// Limited private chat (needs a subscription token). The docs' key is
    /// `limited_private_chat`; the PHP SDK's `private_limited_chat` is
    /// accepted too.
    pub limited_private_chat: Option<String>,
}

/// The wire form of [`WebSocketChannels`]. The SDK's key is a separate field
/// rather than a serde alias: with an alias, a body carrying both keys would
/// be a "duplicate field" error and lose every channel name.
#[derive(Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
struct WireChannels {
    #[serde(default)]
    chat: Option<String>,
    #[serde(default)]
    private_chat: Option<String>,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    private_info: Option<String>,
    #[serde(default)]
    channel_points: Option<String>,
    #[serde(default)]
    private_channel_points: Option<String>,
    #[serde(default)]
    limited_chat: Option<String>,
    #[serde(default)]
    limited_private_chat: Option<String>,
    #[serde(default)]
    private_limited_chat: Option<String>,
}

impl From<WireChannels> for WebSocketChannels {
    fn from(wire: WireChannels) -> WebSocketChannels {
        WebSocketChannels {
            chat: wire.chat,
            private_chat: wire.private_chat,
            info: wire.info,
            private_info: wire.private_info,
            channel_points: wire.channel_points,
            private_channel_points: wire.private_channel_points,
            limited_chat: wire.limited_chat,
            // The documented key wins when both are present.
            limited_private_chat: wire.limited_private_chat.or(wire.private_limited_chat),
        }
    }
}

impl WebSocketChannels {
    /// The channel name for a key; `None` when absent or empty.
    pub fn get(&self, key: ChannelKey) -> Option<&str> {
        let name = match key {
            ChannelKey::Chat => &self.chat,
            ChannelKey::PrivateChat => &self.private_chat,
            ChannelKey::Info => &self.info,
            ChannelKey::PrivateInfo => &self.private_info,
            ChannelKey::ChannelPoints => &self.channel_points,
            ChannelKey::PrivateChannelPoints => &self.private_channel_points,
            ChannelKey::LimitedChat => &self.limited_chat,
            ChannelKey::LimitedPrivateChat => &self.limited_private_chat,
        };
        name.as_deref().filter(|name| !name.is_empty())
    }

    /// Every present channel with its key, public ones first.
    pub fn iter(&self) -> impl Iterator<Item = (ChannelKey, &str)> + '_ {
        ChannelKey::ALL
            .into_iter()
            .filter_map(|key| self.get(key).map(|name| (key, name)))
    }

    /// The public channels present (`chat`, `info`, `channel_points`).
    pub fn public(&self) -> Vec<String> {
        self.names(|key| key.is_public())
    }

    /// The channels present that need a subscription token.
    pub fn private(&self) -> Vec<String> {
        self.names(|key| !key.is_public())
    }

    /// Every channel present, public ones first.
    pub fn all(&self) -> Vec<String> {
        self.names(|_| true)
    }

    fn names(&self, keep: impl Fn(ChannelKey) -> bool) -> Vec<String> {
        self.iter()
            .filter(|(key, _)| keep(*key))
            .map(|(_, name)| name.to_owned())
            .collect()
    }
}

/// The slug of a VK channel given as a slug (`streamer`, `some.name`) or as
/// its page's URL (`https://live.vkvideo.ru/streamer`, also without the
/// scheme, and the former `vkplay.live` host, or its path `/streamer`);
/// `None` for anything else. This is the crate's one slug reader:
/// [`auth::channel_slug`](crate::auth::channel_slug) and
/// [`ClientBuilder::channel_url`](crate::ClientBuilder::channel_url) call it.
/// Slugs may contain dots, even a trailing one. The public face of it is
/// [`auth::channel_slug`](crate::auth::channel_slug).
pub(crate) fn channel_slug(input: &str) -> Option<&str> {
    const HOSTS: [&str; 4] = [
        "live.vkvideo.ru",
        "www.live.vkvideo.ru",
        "vkplay.live",
        "www.vkplay.live",
    ];
    let input = input.trim();
    let without_scheme = input
        .strip_prefix("https://")
        .or_else(|| input.strip_prefix("http://"));
    let path = match without_scheme {
        Some(rest) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            HOSTS.contains(&host).then_some(path)?
        }
        None => HOSTS
            .iter()
            .find_map(|host| input.strip_prefix(host)?.strip_prefix('/'))
            // A page's path alone (`/streamer`) names it too.
            .unwrap_or_else(|| input.strip_prefix('/').unwrap_or(input)),
    };
    let slug = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    let valid = !slug.is_empty()
        && !slug.contains(['/', ',', ' ', '\t', '\n', '\r', '%', '&', '='])
        && slug != "."
        && slug != "..";
    valid.then_some(slug)
}

#[cfg(test)]
mod slug_tests {
    use super::channel_slug;

    #[test]
    fn a_slug_is_read_from_a_slug_a_page_url_or_its_path_and_nothing_else() {
        assert_eq!(channel_slug("streamer"), Some("streamer"));
        assert_eq!(
            channel_slug("https://live.vkvideo.ru/some.name./"),
            Some("some.name.")
        );
        assert_eq!(
            channel_slug("live.vkvideo.ru/streamer?tab=chat"),
            Some("streamer")
        );
        assert_eq!(channel_slug("/streamer"), Some("streamer"));
        assert_eq!(channel_slug("https://example.org/streamer"), None);
        assert_eq!(channel_slug(""), None);
    }
}
