//! Every typed VK event kind is handled everywhere it must be: these tests
//! walk [`EventKind::ALL`] and name, for a kind that was just added to the
//! table, each place still missing (`docs/events.md`, "Adding a VK event
//! type"). The places the compiler names are listed there too; the `vklive`
//! binary's own tests check its lines and the overlay.

use std::path::Path;
use std::time::Duration;

use vklive_pubsub::emulator::{Emulator, EmulatorConfig, TriggerEvent};
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

/// Every list of the emulator's triggers names each kind's trigger
/// (`TriggerEvent::for_kind`): the paragraphs of `docs/cli.md` and
/// `docs/emulator-control.md` that list them, and the control API's own
/// listing (`GET /_emulator/`). That the trigger fires the kind is a unit
/// test of `emulator::trigger`.
#[tokio::test]
async fn every_list_of_triggers_names_each_kind_s_trigger() {
    // A list of triggers is a paragraph that names the least common one.
    let marker = TriggerEvent::for_kind(EventKind::Stream).name();
    let mut lists: Vec<(String, String)> = Vec::new();
    for path in ["docs/cli.md", "docs/emulator-control.md"] {
        for paragraph in read(path).split("\n\n") {
            if paragraph.contains(marker) {
                lists.push((path.to_owned(), paragraph.replace('\n', " ")));
            }
        }
    }
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .expect("the emulator starts");
    let index = async {
        let index = reqwest::get(format!("{}/_emulator/", emulator.api_url())).await?;
        index.json::<serde_json::Value>().await
    };
    let index = tokio::time::timeout(Duration::from_secs(30), index)
        .await
        .expect("GET /_emulator/ answers in time")
        .expect("GET /_emulator/ answers JSON");
    for route in index["routes"].as_array().expect("a list of routes") {
        if route["path"] == "/_emulator/trigger" {
            let does = route["does"].as_str().expect("what the route does");
            lists.push((
                "GET /_emulator/ (emulator/control)".to_owned(),
                does.to_owned(),
            ));
        }
    }
    assert!(lists.len() >= 4, "the lists of triggers: {lists:?}");
    for (place, list) in &lists {
        for kind in EventKind::ALL {
            let name = TriggerEvent::for_kind(kind).name();
            let named = list
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .any(|word| word == name);
            assert!(
                named,
                "{place}: a list of triggers lacks `{name}` ({kind:?}): {list}"
            );
        }
    }
}
