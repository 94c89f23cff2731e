//! The table of typed VK event kinds: one row per typed
//! [`VkEvent`](crate::event::VkEvent) variant.
//!
//! Adding a VK event type starts with a row here (the checklist is in
//! `docs/events.md`, "Adding a VK event type"). A row names the kind's wire
//! `type`s, the key of `data` that holds its payload, its short name (the one
//! `vklive --kind` takes) and a one-line description. Every `match` over
//! [`EventKind`], in this crate and in the `vklive` binary, then fails to
//! compile until it handles the new kind, and the tests that walk
//! [`EventKind::ALL`] name what else is missing (fixture, docs, trigger,
//! lines, overlay).

/// Writes [`EventKind`] and its table from one list of rows, so that a kind's
/// facts sit in one place and [`EventKind::ALL`] cannot miss a variant.
macro_rules! event_kinds {
    ($(
        $variant:ident {
            label: $label:literal,
            types: [$($wire:literal),+ $(,)?],
            data_key: $data_key:expr,
            description: $description:literal $(,)?
        }
    ),+ $(,)?) => {
        /// A typed kind of VK event: which [`VkEvent`](crate::event::VkEvent)
        /// variant an event is, with its wire `type`s, short name and
        /// description.
        ///
        /// [`VkEvent::event_kind`](crate::event::VkEvent::event_kind) gives it
        /// (`None` for [`VkEvent::Unknown`](crate::event::VkEvent::Unknown)).
        ///
        /// Unlike [`VkEvent`](crate::event::VkEvent) this enum is exhaustive,
        /// on purpose: a `match` over it without a wildcard arm stops
        /// compiling when a new VK event type is typed, which is how this
        /// crate's own renderers, emulator and tests are held to handle every
        /// kind. Code that would rather not hear about new kinds adds a `_` arm.
        ///
        /// ```
        /// use vklive_pubsub::event::{EventKind, VkEvent};
        ///
        /// let event = VkEvent::decode_str(
        ///     r#"{"type":"channel_follow_create","data":{"follow":{"follower":{"nick":"X"}}}}"#,
        /// );
        /// assert_eq!(event.event_kind(), Some(EventKind::Follow));
        /// assert_eq!(EventKind::Follow.label(), "follow");
        /// assert_eq!(EventKind::Follow.wire_types(), ["channel_follow_create"]);
        /// assert_eq!(EventKind::from_type("channel_stream_stop"), Some(EventKind::Stream));
        /// assert_eq!(EventKind::from_label("reward"), Some(EventKind::RewardDemand));
        /// ```
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $(
                #[doc = concat!(
                    $description, ": ", $("`", $wire, "` ",)+ "→ [`VkEvent::",
                    stringify!($variant), "`](crate::event::VkEvent::", stringify!($variant), ")."
                )]
                $variant,
            )+
        }

        impl EventKind {
            /// Every kind, in the order of the table.
            pub const ALL: [EventKind; [$($label),+].len()] = [$(EventKind::$variant),+];

            /// Its short name: `chat`, `follow`, … (what `vklive --kind` takes).
            pub const fn label(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $label,)+
                }
            }

            /// Its wire `type`s (one, or the six `channel_stream_*` of
            /// [`EventKind::Stream`]).
            pub const fn wire_types(self) -> &'static [&'static str] {
                match self {
                    $(EventKind::$variant => &[$($wire),+],)+
                }
            }

            /// The key of the envelope's `data` that holds the payload
            /// (`{"follow": {…}}`), or `None` when `data` is kept raw.
            pub const fn data_key(self) -> Option<&'static str> {
                match self {
                    $(EventKind::$variant => $data_key,)+
                }
            }

            /// One line saying what happened.
            pub const fn description(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $description,)+
                }
            }

            /// The kind of a wire `type`; `None` for a type this crate does
            /// not type.
            pub fn from_type(wire_type: &str) -> Option<EventKind> {
                match wire_type {
                    $($($wire)|+ => Some(EventKind::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    ChatMessage {
        label: "chat",
        types: ["channel_chat_message_send"],
        data_key: Some("chat_message"),
        description: "A chat message",
    },
    ChatMessageDelete {
        label: "delete",
        types: ["channel_chat_message_delete"],
        data_key: Some("chat_message"),
        description: "A chat message deleted",
    },
    Follow {
        label: "follow",
        types: ["channel_follow_create"],
        data_key: Some("follow"),
        description: "A follow",
    },
    Raid {
        label: "raid",
        types: ["channel_raid_income"],
        data_key: Some("raid"),
        description: "A raid",
    },
    Subscription {
        label: "subscription",
        types: ["channel_subscription_create"],
        data_key: Some("subscription"),
        description: "A paid subscription",
    },
    RewardDemand {
        label: "reward",
        types: ["channel_points_reward_demand_create"],
        data_key: Some("demand"),
        description: "A channel-points reward redeemed",
    },
    Stream {
        label: "stream",
        types: [
            "channel_stream_start",
            "channel_stream_pause",
            "channel_stream_resume",
            "channel_stream_stop",
            "channel_stream_settings_change",
            "channel_stream_record_new",
        ],
        data_key: None,
        description: "A stream started, stopped, paused, resumed or changed",
    },
}

impl EventKind {
    /// The kind whose [`label`](EventKind::label) is `label`.
    pub fn from_label(label: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.label() == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::StreamEventKind;

    #[test]
    fn labels_and_wire_types_name_one_kind_each() {
        let mut labels = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(labels.insert(kind.label()), "{kind:?}: label twice");
            assert_eq!(EventKind::from_label(kind.label()), Some(kind));
            assert!(!kind.description().ends_with('.'), "{kind:?}: no full stop");
            for wire in kind.wire_types() {
                assert!(types.insert(*wire), "{wire} twice");
                assert_eq!(EventKind::from_type(wire), Some(kind));
            }
        }
        assert_eq!(EventKind::from_type("channel_something_new"), None);
        assert_eq!(EventKind::from_label("unknown"), None);
    }

    #[test]
    fn stream_kind_carries_every_stream_event_type() {
        let stream: Vec<&str> = StreamEventKind::ALL.map(StreamEventKind::as_str).to_vec();
        assert_eq!(EventKind::Stream.wire_types(), stream);
        assert_eq!(EventKind::Stream.data_key(), None);
    }
}
