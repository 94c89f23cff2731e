//! [`User`]: the lean user object of follows, raids, subscriptions and demands.

use serde::{Deserialize, Serialize};

use super::de::null_default;
use super::palette::NickColor;

/// A user as the non-chat events describe one: a nick, and usually an id and
/// a nick colour. Only `nick` is read by every client; the rest is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct User {
    /// User id.
    #[serde(default)]
    pub id: Option<i64>,
    /// Display name (empty if VK left it out).
    #[serde(default, deserialize_with = "null_default")]
    pub nick: String,
    /// Palette index of the nick colour.
    #[serde(default)]
    pub nick_color: Option<NickColor>,
}

impl User {
    /// The nick colour as `#RRGGBB`; `None` when absent or outside the palette.
    pub fn nick_color_hex(&self) -> Option<&'static str> {
        self.nick_color.and_then(NickColor::hex)
    }
}
