//! What the page gets: one small JSON object per event (`docs/overlay.md`).

use serde::{Deserialize, Serialize};
use vklive_pubsub::VkEvent;
use vklive_pubsub::event::{Part, User};

/// One event for the page, the `data` of an SSE `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// Someone followed.
    Follow { user: Person },
    /// Another channel raided this one.
    Raid {
        user: Person,
        /// The raiding channel's slug, when known.
        channel: Option<String>,
        /// How many viewers came along, when known.
        viewers: Option<i64>,
    },
    /// A paid subscription.
    Subscription {
        user: Person,
        /// The level's name, when known.
        level: Option<String>,
    },
    /// A channel-points reward was redeemed.
    Redemption {
        user: Person,
        /// The reward's name, when known.
        reward: Option<String>,
        /// Its price in points, when known.
        cost: Option<i64>,
        /// The viewer's message (may be empty).
        message: String,
    },
    /// A public chat message.
    Chat {
        id: i64,
        user: Person,
        parts: Vec<Piece>,
    },
    /// A chat message was deleted.
    Delete { id: i64 },
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Display name, as sent by VK (any text).
    pub nick: String,
    /// Nick colour `#RRGGBB` from the VK palette, when known.
    pub color: Option<String>,
    /// Avatar image URL as sent by VK (chat only; the page shows it only
    /// when it is `http:` or `https:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// One piece of a chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    /// Plain text.
    Text(String),
    /// A mentioned nick, without the `@`.
    Mention(String),
    /// An emote: its name and image URL (as sent by VK).
    Smile { name: String, url: Option<String> },
    /// A link: its visible text and target.
    Link { text: String, url: String },
}

impl Person {
    fn of(user: &User) -> Person {
        Person {
            nick: user.nick.clone(),
            color: user.nick_color_hex().map(str::to_owned),
            avatar: None,
        }
    }
}

impl Item {
    /// The overlay's view of an event; `None` for what it does not show
    /// (private messages, stream events, unknown types).
    pub fn from_event(event: &VkEvent) -> Option<Item> {
        let item = match event {
            VkEvent::Follow(follow) => Item::Follow {
                user: Person::of(&follow.follower),
            },
            VkEvent::Raid(raid) => {
                let channel = raid
                    .source
                    .channel
                    .as_ref()
                    .map(|channel| channel.url.clone());
                let mut user = raid
                    .source
                    .owner
                    .as_ref()
                    .map(Person::of)
                    .unwrap_or_default();
                if user.nick.is_empty() {
                    user.nick = channel.clone().unwrap_or_default();
                }
                Item::Raid {
                    user,
                    channel,
                    viewers: raid.raiders_count,
                }
            }
            VkEvent::Subscription(subscription) => Item::Subscription {
                user: subscription
                    .subscriber
                    .as_ref()
                    .map(Person::of)
                    .unwrap_or_default(),
                level: subscription
                    .level
                    .as_ref()
                    .and_then(|level| level.name.clone()),
            },
            VkEvent::RewardDemand(demand) => Item::Redemption {
                user: demand.user.as_ref().map(Person::of).unwrap_or_default(),
                reward: demand.reward.name.clone(),
                cost: demand.reward.price,
                message: demand.message_text(),
            },
            VkEvent::ChatMessage(message) if !message.is_private => {
                let author = message.author.clone().unwrap_or_default();
                Item::Chat {
                    id: message.id,
                    user: Person {
                        color: author.nick_color_hex().map(str::to_owned),
                        nick: author.nick,
                        avatar: author.avatar_url,
                    },
                    parts: pieces(&message.parts),
                }
            }
            VkEvent::ChatMessageDelete(deleted) => Item::Delete { id: deleted.id },
            _ => return None,
        };
        Some(item)
    }
}

fn pieces(parts: &[Part]) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(parts.len());
    for part in parts {
        pieces.push(match part {
            Part::Text(text) => Piece::Text(text.content.clone()),
            Part::Mention(mention) => Piece::Mention(match (mention.nick.is_empty(), mention.id) {
                (true, Some(id)) => id.to_string(),
                _ => mention.nick.clone(),
            }),
            Part::Smile(smile) => Piece::Smile {
                name: smile.name.clone(),
                url: smile
                    .medium_url
                    .clone()
                    .or_else(|| smile.small_url.clone())
                    .or_else(|| smile.large_url.clone()),
            },
            Part::Link(link) => Piece::Link {
                text: link.content.clone(),
                url: link.url.clone(),
            },
            _ => continue,
        });
    }
    // VK ends many messages with a text part holding only "\n".
    while matches!(pieces.last(), Some(Piece::Text(text)) if text.trim().is_empty()) {
        pieces.pop();
    }
    pieces
}
