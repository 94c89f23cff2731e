//! The wire `type` of each typed event, as constants (the same names
//! [`EventKind::wire_types`](super::EventKind::wire_types) gives).

use super::kind_table::EventKind;

/// [`VkEvent::ChatMessage`](super::VkEvent::ChatMessage).
pub const CHAT_MESSAGE_SEND: &str = EventKind::ChatMessage.wire_types()[0];
/// [`VkEvent::ChatMessageDelete`](super::VkEvent::ChatMessageDelete).
pub const CHAT_MESSAGE_DELETE: &str = EventKind::ChatMessageDelete.wire_types()[0];
/// [`VkEvent::Follow`](super::VkEvent::Follow).
pub const FOLLOW_CREATE: &str = EventKind::Follow.wire_types()[0];
/// [`VkEvent::Raid`](super::VkEvent::Raid).
pub const RAID_INCOME: &str = EventKind::Raid.wire_types()[0];
/// [`VkEvent::Subscription`](super::VkEvent::Subscription).
pub const SUBSCRIPTION_CREATE: &str = EventKind::Subscription.wire_types()[0];
/// [`VkEvent::RewardDemand`](super::VkEvent::RewardDemand).
pub const POINTS_REWARD_DEMAND_CREATE: &str = EventKind::RewardDemand.wire_types()[0];
/// Types of the internal web API (camelCase payloads), which are not
/// DevAPI events; they arrive as [`VkEvent::Unknown`](super::VkEvent::Unknown).
pub const INTERNAL_API: [&str; 6] = [
    "message",
    "delete_message",
    "cp_reward_demand",
    "stream_online_status",
    "stream_start",
    "stream_end",
];
