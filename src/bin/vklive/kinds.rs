//! `--kind chat,follow,...`: which kinds of VK event a command shows.

use vklive_pubsub::VkEvent;

/// A kind of VK event, by the names `vklive trigger` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A chat message.
    Chat,
    /// A chat message deleted.
    Delete,
    /// A follow.
    Follow,
    /// A raid.
    Raid,
    /// A paid subscription.
    Subscription,
    /// A channel-points reward redeemed.
    Reward,
    /// A stream started, stopped, paused, resumed or changed.
    Stream,
    /// An event type this version does not know.
    Unknown,
}

impl Kind {
    pub(crate) fn of(event: &VkEvent) -> Kind {
        match event {
            VkEvent::ChatMessage(_) => Kind::Chat,
            VkEvent::ChatMessageDelete(_) => Kind::Delete,
            VkEvent::Follow(_) => Kind::Follow,
            VkEvent::Raid(_) => Kind::Raid,
            VkEvent::Subscription(_) => Kind::Subscription,
            VkEvent::RewardDemand(_) => Kind::Reward,
            VkEvent::Stream(_) => Kind::Stream,
            _ => Kind::Unknown,
        }
    }
}

/// The kinds named with `--kind`; none named means every kind.
#[derive(Debug, Clone, Default)]
pub(crate) struct KindFilter(Vec<Kind>);

impl KindFilter {
    pub(crate) fn new(kinds: &[Kind]) -> KindFilter {
        KindFilter(kinds.to_vec())
    }

    pub(crate) fn shows(&self, event: &VkEvent) -> bool {
        self.0.is_empty() || self.0.contains(&Kind::of(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, data: &str) -> VkEvent {
        VkEvent::decode_str(&format!(r#"{{"type":"{kind}","data":{data}}}"#))
    }

    #[test]
    fn no_kind_named_shows_everything_and_a_list_shows_only_its_kinds() {
        let follow = event(
            "channel_follow_create",
            r#"{"follow":{"follower":{"id":1,"nick":"X"}}}"#,
        );
        assert_eq!(Kind::of(&follow), Kind::Follow);
        let mystery = event("something_new", "{}");
        assert!(KindFilter::default().shows(&follow));
        assert!(KindFilter::default().shows(&mystery));
        let only_chat = KindFilter::new(&[Kind::Chat, Kind::Unknown]);
        assert!(!only_chat.shows(&follow));
        assert!(only_chat.shows(&mystery));
    }
}
