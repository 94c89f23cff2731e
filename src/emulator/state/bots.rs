//! What the bot-facing REST methods remember: nicks seen, who may not write,
//! the last message of each user per channel, reward demands and their
//! decisions, OAuth codes.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tokio::time::Instant;

/// What happened to a reward demand over REST; see
/// [`Emulator::demand_decisions`](crate::emulator::Emulator::demand_decisions).
///
/// ```
/// use vklive_pubsub::emulator::DemandDecision;
/// assert_ne!(DemandDecision::Accepted, DemandDecision::Rejected);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandDecision {
    /// `POST /v1/channel_point/reward/demand/accept`.
    Accepted,
    /// `POST /v1/channel_point/reward/demand/reject`.
    Rejected,
}

/// A user's last chat message in a channel (for `send_too_fast` and
/// `same_message`).
pub(crate) struct LastSent {
    pub(crate) at: Instant,
    pub(crate) parts: Vec<Value>,
}

/// An authorization code waiting for its exchange.
pub(crate) struct AuthCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) user_id: u64,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires_at: Instant,
}

/// The bot-facing part of the emulator's state.
#[derive(Default)]
pub(crate) struct BotState {
    /// Nicks seen in published events, for mentions of unregistered users.
    pub(crate) nicks: HashMap<u64, String>,
    pub(crate) authorizing_user: Option<u64>,
    pub(crate) decisions: Vec<(i64, DemandDecision)>,
    pub(crate) forbidden: HashSet<(String, u64)>,
    pub(crate) last_sent: HashMap<(u64, String), LastSent>,
    /// Chat messages sent over REST so far.
    pub(crate) sent: i64,
    /// Demands published: id → (channel id, decision).
    pub(crate) demands: HashMap<i64, (u64, Option<DemandDecision>)>,
    pub(crate) codes: HashMap<String, AuthCode>,
}

impl BotState {
    pub(crate) fn forbid(&mut self, slug: &str, user_id: u64) {
        self.forbidden.insert((slug.to_owned(), user_id));
    }

    /// Learns from a publication what later REST calls need: authors' nicks
    /// and the ids of reward demands.
    pub(crate) fn learn(&mut self, channel: &str, data: &Value) {
        let mut remember = |user: &Value| {
            if let (Some(id), Some(nick)) = (user["id"].as_u64(), user["nick"].as_str())
                && self.nicks.get(&id).map(String::as_str) != Some(nick)
            {
                self.nicks.insert(id, nick.to_owned());
            }
        };
        match data["type"].as_str() {
            Some("channel_chat_message_send") => remember(&data["data"]["chat_message"]["author"]),
            Some("channel_points_reward_demand_create") => {
                let demand = &data["data"]["demand"];
                remember(&demand["user"]);
                let channel_id = channel
                    .split_once(':')
                    .and_then(|(_, rest)| rest.split('#').next())
                    .and_then(|id| id.parse::<u64>().ok());
                if let (Some(id), Some(channel_id)) = (demand["id"].as_i64(), channel_id) {
                    self.demands.insert(id, (channel_id, None));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn demands_are_learned_from_their_publication() {
        let mut bots = BotState::default();
        bots.learn(
            "api-channel-private-points:7",
            &json!({"type": "channel_points_reward_demand_create",
                    "data": {"demand": {"id": 9, "user": {"id": 3, "nick": "x"}}}}),
        );
        assert_eq!(bots.demands.get(&9), Some(&(7, None)));
        assert_eq!(bots.nicks.get(&3).map(String::as_str), Some("x"));
    }
}
