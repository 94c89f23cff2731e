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

#[cfg(test)]
mod tests {
    use super::*;
    use vklive_pubsub::event::EventKind;

    /// What the page does with each kind of the crate's table: the `kind` of
    /// the item it is sent, or `None` when it does not show that kind. A new
    /// kind stops this compiling until it is decided here.
    fn shown_as(kind: EventKind) -> Option<&'static str> {
        match kind {
            EventKind::ChatMessage => Some("chat"),
            EventKind::ChatMessageDelete => Some("delete"),
            EventKind::Follow => Some("follow"),
            EventKind::Raid => Some("raid"),
            EventKind::Subscription => Some("subscription"),
            EventKind::RewardDemand => Some("redemption"),
            // The page shows no stream state.
            EventKind::Stream => None,
        }
    }

    /// Item kinds the page shows in the chat box rather than as an alert.
    const CHAT_BOX: [&str; 2] = ["chat", "delete"];

    /// The body of a function of the page's script.
    fn script_function(name: &str) -> &'static str {
        let script = include_str!("assets/overlay.js");
        let start = script
            .find(&format!("function {name}("))
            .unwrap_or_else(|| panic!("overlay.js has no function {name}"));
        let body = &script[start..];
        &body[..body.find("\n  }\n").expect("the function ends")]
    }

    #[test]
    fn every_event_kind_becomes_the_item_decided_for_it() {
        for kind in EventKind::ALL {
            for wire in kind.wire_types() {
                let path = format!("{}/tests/fixtures/{wire}.json", env!("CARGO_MANIFEST_DIR"));
                let json = std::fs::read_to_string(&path).expect("every wire type has a fixture");
                let item = Item::from_event(&VkEvent::decode_str(&json))
                    .map(|item| serde_json::to_value(item).expect("serializes"));
                assert_eq!(
                    item.as_ref().and_then(|item| item["kind"].as_str()),
                    shown_as(kind),
                    "overlay/item.rs: Item::from_event on {wire} ({kind:?})"
                );
            }
        }
    }

    #[test]
    fn the_page_handles_every_item_kind_it_is_sent() {
        let handle = script_function("handle");
        let alert_card = script_function("alertCard");
        let overlay_docs = include_str!("../../../../docs/overlay.md");
        for kind in EventKind::ALL {
            let Some(item) = shown_as(kind) else {
                continue;
            };
            let case = format!("case '{item}':");
            assert!(
                handle.contains(&case),
                "overlay.js: handle() has no {case} ({kind:?})"
            );
            assert!(
                CHAT_BOX.contains(&item) || alert_card.contains(&case),
                "overlay.js: alertCard() has no {case} ({kind:?})"
            );
            assert!(
                overlay_docs.contains(&format!("`{}`", kind.label())),
                "docs/overlay.md does not name `{}` among the kinds the page shows",
                kind.label()
            );
        }
    }
}
