//! Channel points: `channel_points_reward_demand_create`.

use serde::{Deserialize, Serialize};

use super::chat::{Part, plain_text};
use super::de::{null_default, string_id};
use super::time::Timestamp;
use super::user::User;

/// `channel_points_reward_demand_create`: a viewer redeemed a reward, read
/// from `data.demand`. Accept or reject it over REST by `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct RewardDemand {
    /// Demand id (what accept/reject take).
    pub id: i64,
    /// When it was made.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// Who redeemed the reward.
    #[serde(default)]
    pub user: Option<User>,
    /// Which reward.
    #[serde(default, deserialize_with = "null_default")]
    pub reward: Reward,
    /// The viewer's message, in chat parts.
    #[serde(default, deserialize_with = "null_default")]
    pub message_parts: Vec<Part>,
    /// The viewer's message as a plain string (tolerated instead of parts).
    #[serde(default)]
    pub message: Option<String>,
    /// Demand status, e.g. `pending` (seen only in a fixture).
    #[serde(default)]
    pub status: Option<String>,
}

impl RewardDemand {
    /// The viewer's message as text: the parts rendered by
    /// [`plain_text`](super::plain_text), or the plain `message` when there
    /// are no parts.
    pub fn message_text(&self) -> String {
        if self.message_parts.is_empty() {
            return self.message.clone().unwrap_or_default();
        }
        plain_text(&self.message_parts)
    }
}

/// The reward a [`RewardDemand`] is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "strict", serde(deny_unknown_fields))]
pub struct Reward {
    /// Reward id (a UUID); look the reward up by it.
    #[serde(default, deserialize_with = "string_id")]
    pub id: String,
    /// Reward name (unconfirmed).
    #[serde(default)]
    pub name: Option<String>,
    /// Price in points (unconfirmed).
    #[serde(default)]
    pub price: Option<i64>,
}
