//! Every typed VK event kind is handled everywhere it must be: these tests
//! walk [`EventKind::ALL`] and name, for a kind that was just added to the
//! table, each place still missing (`docs/events.md`, "Adding a VK event
//! type"). The places the compiler names are listed there too; the `vklive`
//! binary's own tests check its lines and the overlay.

use std::path::Path;

use vklive_pubsub::emulator::TriggerEvent;
use vklive_pubsub::event::{EventKind, VkEvent};

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// `tests/fixtures/<type>.json` for every wire type of every kind, decoding
/// to that kind and type, typed (not `Unknown`).
#[test]
fn every_kind_has_a_fixture_per_wire_type_that_decodes_to_it() {
    for kind in EventKind::ALL {
        for wire in kind.wire_types() {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(format!("{wire}.json"));
            let Ok(json) = std::fs::read_to_string(&path) else {
                panic!("{kind:?}: no fixture {}", path.display());
            };
            let event = VkEvent::decode_str(&json);
            assert_eq!(
                event.event_kind(),
                Some(kind),
                "{}: decodes to {event:?}",
                path.display()
            );
            assert_eq!(event.kind(), *wire, "{}", path.display());
        }
    }
}

/// `docs/events.md`: a row of the catalogue naming each wire type, and a
/// `###` section whose heading names the kind's first wire type.
#[test]
fn every_kind_has_a_row_and_a_section_in_docs_events_md() {
    let docs = read("docs/events.md");
    for kind in EventKind::ALL {
        for wire in kind.wire_types() {
            let quoted = format!("`{wire}`");
            assert!(
                docs.lines()
                    .any(|line| line.starts_with('|') && line.contains(&quoted)),
                "docs/events.md: no catalogue row names {quoted} ({kind:?})"
            );
        }
        let first = format!("`{}`", kind.wire_types()[0]);
        assert!(
            docs.lines()
                .any(|line| line.starts_with("### ") && line.contains(&first)),
            "docs/events.md: no `### {first} → …` section ({kind:?})"
        );
    }
}

/// `vklive --kind` takes each kind's label (the binary builds its values
/// from the table); `docs/cli.md` lists them all, with `unknown`.
#[test]
fn every_kind_filter_name_is_in_docs_cli_md() {
    let docs = read("docs/cli.md");
    let row = docs
        .lines()
        .find(|line| line.starts_with("| `--kind KIND,...` | every kind | show only these kinds:"))
        .expect("docs/cli.md: the `--kind` row of `vklive tail`");
    for label in EventKind::ALL
        .map(EventKind::label)
        .into_iter()
        .chain(["unknown"])
    {
        assert!(
            row.contains(&format!("`{label}`")),
            "docs/cli.md: the `--kind` row lacks `{label}`"
        );
    }
}

/// Each kind's emulator trigger (`TriggerEvent::for_kind`) is named where
/// the triggers are documented. That it fires the kind is a unit test of
/// `emulator::trigger`.
#[test]
fn every_kind_s_trigger_is_documented() {
    for path in ["docs/cli.md", "docs/emulator-control.md"] {
        let docs = read(path).replace('\n', " ");
        for kind in EventKind::ALL {
            let name = TriggerEvent::for_kind(kind).name();
            assert!(
                docs.contains(&format!("`{name}`")),
                "{path}: does not name the trigger `{name}` ({kind:?})"
            );
        }
    }
}
