//! Events of the `info` channel: follows, incoming raids, paid subscriptions.
//!
//! All three are known from one client (Moblin) plus community webhook types,
//! so every field except the wrapper is optional.

use serde::{Deserialize, Serialize};

use super::de::{null_default, opt_string_id};
use super::time::Timestamp;
use super::user::User;

/// `channel_follow_create`: someone followed the channel, read from `data.follow`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Follow {
    /// The new follower.
    #[serde(default, deserialize_with = "null_default")]
    pub follower: User,
}

/// `channel_raid_income`: another channel raided this one, read from `data.raid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Raid {
    /// Where the raid came from.
    #[serde(default, deserialize_with = "null_default")]
    pub source: RaidSource,
    /// How many viewers came along.
    #[serde(default)]
    pub raiders_count: Option<i64>,
    /// When the raid started (from webhook types; unconfirmed over pubsub).
    #[serde(default)]
    pub started_at: Option<Timestamp>,
}

/// The raiding side of a [`Raid`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct RaidSource {
    /// The raiding channel's owner.
    #[serde(default)]
    pub owner: Option<User>,
    /// The raiding channel (from webhook types; unconfirmed over pubsub).
    #[serde(default)]
    pub channel: Option<ChannelRef>,
}

/// A channel named by its URL slug.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct ChannelRef {
    /// The channel's URL slug (`live.vkvideo.ru/<url>`).
    #[serde(default, deserialize_with = "null_default")]
    pub url: String,
}

/// `channel_subscription_create`: a paid subscription, read from
/// `data.subscription`. Gifted subscriptions arrive as this same event,
/// without the giver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Subscription {
    /// The subscriber.
    #[serde(default)]
    pub subscriber: Option<User>,
    /// The subscription level bought.
    #[serde(default)]
    pub level: Option<SubscriptionLevel>,
    /// Amount paid. Unconfirmed over pubsub.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Length of the paid period, days. Unconfirmed over pubsub.
    #[serde(default)]
    pub days_duration: Option<i64>,
    /// `first_subscription`, `upgrade_from_follow` or
    /// `subscription_recovery` (webhook values). Unconfirmed over pubsub.
    #[serde(default)]
    pub kind: Option<String>,
    /// Start of the period. Unconfirmed over pubsub.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// End of the period. Unconfirmed over pubsub.
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// Last renewal. Unconfirmed over pubsub.
    #[serde(default)]
    pub renewed_at: Option<Timestamp>,
    /// Last level change. Unconfirmed over pubsub.
    #[serde(default)]
    pub changed_at: Option<Timestamp>,
    /// The level before a change. Unconfirmed over pubsub.
    #[serde(default)]
    pub previous_level: Option<SubscriptionLevel>,
}

/// A subscription level (tier).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct SubscriptionLevel {
    /// Level id.
    #[serde(default, deserialize_with = "opt_string_id")]
    pub id: Option<String>,
    /// Level name.
    #[serde(default)]
    pub name: Option<String>,
    /// Price of the level.
    #[serde(default)]
    pub price: Option<i64>,
}
