//! `--kind chat,follow,...`: which kinds of VK event a command shows.

use clap::builder::PossibleValue;
use vklive_pubsub::VkEvent;
use vklive_pubsub::event::EventKind;

/// A kind of VK event: a typed kind, by its label (`chat`, `follow`, … from
/// the crate's [`EventKind`] table, so a new kind is a `--kind` value at
/// once), or `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A kind of the crate's table.
    Typed(EventKind),
    /// An event type this version does not know.
    Unknown,
}

/// Every `--kind` value, in the table's order, then `unknown`.
const KINDS: [Kind; EventKind::ALL.len() + 1] = {
    let mut kinds = [Kind::Unknown; EventKind::ALL.len() + 1];
    let mut index = 0;
    while index < EventKind::ALL.len() {
        kinds[index] = Kind::Typed(EventKind::ALL[index]);
        index += 1;
    }
    kinds
};

impl Kind {
    pub(crate) fn of(event: &VkEvent) -> Kind {
        event.event_kind().map_or(Kind::Unknown, Kind::Typed)
    }
}

impl clap::ValueEnum for Kind {
    fn value_variants<'a>() -> &'a [Kind] {
        &KINDS
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Kind::Typed(kind) => PossibleValue::new(kind.label()).help(kind.description()),
            Kind::Unknown => {
                PossibleValue::new("unknown").help("An event type this version does not know")
            }
        })
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
    use clap::ValueEnum;

    /// `--kind` takes every kind of the table by its label, and `unknown`.
    #[test]
    fn every_event_kind_is_a_kind_value() {
        for kind in EventKind::ALL {
            assert_eq!(
                Kind::from_str(kind.label(), false),
                Ok(Kind::Typed(kind)),
                "{kind:?}"
            );
        }
        assert_eq!(Kind::from_str("unknown", false), Ok(Kind::Unknown));
        assert_eq!(Kind::value_variants().len(), EventKind::ALL.len() + 1);
    }

    fn event(kind: &str, data: &str) -> VkEvent {
        VkEvent::decode_str(&format!(r#"{{"type":"{kind}","data":{data}}}"#))
    }

    #[test]
    fn no_kind_named_shows_everything_and_a_list_shows_only_its_kinds() {
        let follow = event(
            "channel_follow_create",
            r#"{"follow":{"follower":{"id":1,"nick":"X"}}}"#,
        );
        assert_eq!(Kind::of(&follow), Kind::Typed(EventKind::Follow));
        let mystery = event("something_new", "{}");
        assert!(KindFilter::default().shows(&follow));
        assert!(KindFilter::default().shows(&mystery));
        let only_chat = KindFilter::new(&[Kind::Typed(EventKind::ChatMessage), Kind::Unknown]);
        assert!(!only_chat.shows(&follow));
        assert!(only_chat.shows(&mystery));
    }
}
