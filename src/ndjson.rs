//! One JSON object per [`Event`]: what `vklive tail --json` prints, what the
//! relay publishes into NATS JetStream (one message body per publication),
//! and the way back from such an object to the [`Event`].
//!
//! A publication reads
//! `{"event":"publication","channel":…,"offset":…,"type":…,"data":…}`, with
//! `"backfilled":true` for chat filled in from REST and `"unknown":true` for
//! a [`VkEvent::Unknown`], whose `data` is then the whole payload as
//! received. A typed event's `data` is the event itself (for a chat message
//! the message, not VK's `{"chat_message": …}` wrapper); [`event_from_json`]
//! puts the wrapper back, so the same [`VkEvent`] comes out.
//!
//! ```
//! use std::sync::Arc;
//! use vklive_pubsub::ndjson::{event_from_json, event_json};
//! use vklive_pubsub::{Event, Publication, VkEvent};
//!
//! let payload = r#"{"type":"channel_chat_message_delete","data":{"chat_message":{"id":7}}}"#;
//! let event = Event::Publication(Publication::new(Arc::from("c"), 3, VkEvent::decode_str(payload)));
//! let line = event_json(&event);
//! assert_eq!(line["data"]["id"], 7);
//! match event_from_json(&line) {
//!     Some(Event::Publication(back)) => {
//!         assert_eq!((&*back.channel, back.offset), ("c", 3));
//!         assert!(matches!(back.event, VkEvent::ChatMessageDelete(d) if d.id == 7));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::delivery::{Event, Publication, Recovery};
use crate::event::{EventKind, VkEvent};

/// The JSON object for `event`, as `vklive tail --json` prints it.
pub fn event_json(event: &Event) -> Value {
    match event {
        Event::Publication(publication) => publication_json(publication),
        Event::Gap { channel, missed } => gap_json(channel, *missed),
        Event::Connected { client } => json!({"event": "connected", "client": client}),
        Event::Disconnected { code, reason } => {
            json!({"event": "disconnected", "code": code, "reason": reason})
        }
        Event::Subscribed {
            channel,
            recovery,
            epoch,
            offset,
        } => json!({
            "event": "subscribed",
            "channel": channel,
            "recovery": match recovery {
                Recovery::NotRequested => "not_requested",
                Recovery::Recovered => "recovered",
                Recovery::Failed => "failed",
            },
            "epoch": epoch,
            "offset": offset,
        }),
        Event::SubscriptionFailed {
            channel,
            code,
            reason,
        } => {
            json!({"event": "subscription_failed", "channel": channel, "code": code, "reason": reason})
        }
        Event::Unsubscribed {
            channel,
            code,
            reason,
        } => {
            json!({"event": "unsubscribed", "channel": channel, "code": code, "reason": reason})
        }
        Event::Lagged { dropped } => json!({"event": "lagged", "dropped": dropped}),
        Event::Closed { .. } => json!({"event": "closed"}),
    }
}

/// The line `vklive tail --json` prints for `event` (without the newline):
/// [`event_json`] as text, a publication written straight from the event
/// ([`publication_line`]).
pub fn event_line(event: &Event) -> String {
    match event {
        Event::Publication(publication) => publication_line(publication),
        other => event_json(other).to_string(),
    }
}

/// The JSON object for one publication (see the [module](self) docs).
pub fn publication_json(publication: &Publication) -> Value {
    serde_json::to_value(Line::of(publication)).unwrap_or(Value::Null)
}

/// [`publication_json`] as text, written straight from the event (no
/// [`Value`] built on the way): the body the relay publishes. Its keys come
/// in the order `event, channel, offset, type, data[, backfilled][, unknown]`
/// and an unknown payload keeps its own order.
pub fn publication_line(publication: &Publication) -> String {
    serde_json::to_string(&Line::of(publication)).unwrap_or_default()
}

/// A publication line, as written.
#[derive(serde::Serialize)]
struct Line<'a> {
    event: &'static str,
    channel: &'a str,
    offset: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a VkEvent,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    backfilled: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unknown: bool,
}

impl Line<'_> {
    fn of(publication: &Publication) -> Line<'_> {
        Line {
            event: "publication",
            channel: &publication.channel,
            offset: publication.offset,
            kind: publication.event.kind(),
            data: &publication.event,
            backfilled: publication.backfilled,
            unknown: matches!(publication.event, VkEvent::Unknown(_)),
        }
    }
}

/// The JSON object for an [`Event::Gap`].
pub fn gap_json(channel: &str, missed: Option<u64>) -> Value {
    json!({"event": "gap", "channel": channel, "missed": missed})
}

/// The [`Event`] a publication or gap object stands for; `None` for any
/// other object (lifecycle lines, or something that is not such a line).
pub fn event_from_json(line: &Value) -> Option<Event> {
    event_from_str(&line.to_string())
}

/// [`event_from_json`] of a line of text. Payloads are read as they are in
/// the text (an unknown event keeps its keys in their order).
pub fn event_from_str(line: &str) -> Option<Event> {
    let line: ReadLine = serde_json::from_str(line).ok()?;
    let channel = line.channel?;
    match &*line.event {
        "gap" => Some(Event::Gap {
            channel: channel.into_owned(),
            missed: line.missed,
        }),
        "publication" => {
            let data = line.data.map_or("null", RawValue::get);
            let event = if line.unknown == Some(true) {
                VkEvent::decode_str(data)
            } else {
                VkEvent::decode_str(&envelope(&line.kind?, data))
            };
            let mut publication =
                Publication::new(Arc::from(&*channel), line.offset.unwrap_or(0), event);
            publication.backfilled = line.backfilled == Some(true);
            Some(Event::Publication(publication))
        }
        _ => None,
    }
}

/// The fields of a line that the way back needs.
#[derive(Deserialize)]
struct ReadLine<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    backfilled: Option<bool>,
    #[serde(default)]
    unknown: Option<bool>,
    #[serde(default)]
    missed: Option<u64>,
}

/// VK's `{"type": …, "data": …}` envelope around a typed event's `data`,
/// with the key VK wraps each typed event in: the kind's
/// [`data_key`](EventKind::data_key) in the one table of event kinds, so a
/// new kind needs no edit here.
fn envelope(event_kind: &str, data: &str) -> String {
    let wrapper = EventKind::from_type(event_kind).and_then(EventKind::data_key);
    let kind_json = Value::from(event_kind).to_string();
    match wrapper {
        Some(key) => format!(r#"{{"type":{kind_json},"data":{{"{key}":{data}}}}}"#),
        None => format!(r#"{{"type":{kind_json},"data":{data}}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path.display().to_string(), text));
        }
        out
    }

    #[test]
    fn every_fixture_comes_back_as_the_same_event() {
        let mut checked = 0;
        for (name, text) in fixtures() {
            let value: Value = serde_json::from_str(&text).unwrap();
            // Publication payloads only (channel_info.json is a REST answer).
            if value.get("type").is_none() {
                continue;
            }
            let event = VkEvent::decode_str(&text);
            let mut publication = Publication::new(Arc::from("api-channel-chat:1"), 9, event);
            publication.backfilled = checked % 2 == 0;
            let line = publication_json(&publication);
            let text_line = line.to_string();
            let Some(Event::Publication(back)) = event_from_str(&text_line) else {
                panic!("{name}: no publication back from {text_line}");
            };
            assert_eq!(back.event, publication.event, "{name}");
            assert_eq!(back.channel, publication.channel);
            assert_eq!(back.offset, 9);
            assert_eq!(back.backfilled, publication.backfilled);
            checked += 1;
        }
        assert!(checked >= 10, "only {checked} fixtures");
    }

    /// The same kind and the same JSON (objects unordered: the line is a
    /// `serde_json::Value`, whose keys come out sorted).
    fn same_unknown(a: &VkEvent, b: &VkEvent) {
        let (VkEvent::Unknown(a), VkEvent::Unknown(b)) = (a, b) else {
            panic!("{a:?} / {b:?}");
        };
        assert_eq!(a.kind, b.kind);
        let value = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap();
        assert_eq!(value(&a.raw), value(&b.raw));
    }

    #[test]
    fn unknown_events_come_back_as_the_same_json() {
        let payload = r#"{"type":"channel_something_new","data":{"x":[1,2]}}"#;
        let publication = Publication::new(Arc::from("c"), 0, VkEvent::decode_str(payload));
        let line = publication_json(&publication);
        assert_eq!(line["unknown"], true);
        let Some(Event::Publication(back)) = event_from_str(&line.to_string()) else {
            panic!()
        };
        same_unknown(&back.event, &publication.event);
        // A known type whose data did not decode stays unknown too.
        let broken = r#"{"type":"channel_chat_message_send","data":{"chat_message":5}}"#;
        let publication = Publication::new(Arc::from("c"), 1, VkEvent::decode_str(broken));
        let Some(Event::Publication(back)) = event_from_json(&publication_json(&publication))
        else {
            panic!()
        };
        same_unknown(&back.event, &publication.event);
    }

    #[test]
    fn the_line_is_the_object_and_keeps_an_unknown_payload_verbatim() {
        let payload = r#"{"type":"channel_something_new","data":{"z":1,"a":[1,2]}}"#;
        let publication = Publication::new(Arc::from("c"), 4, VkEvent::decode_str(payload));
        let line = publication_line(&publication);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, publication_json(&publication));
        let Some(Event::Publication(back)) = event_from_str(&line) else {
            panic!()
        };
        assert_eq!(back.event, publication.event, "same raw text");
        let event = Event::Publication(publication);
        assert_eq!(event_line(&event), line);
    }

    #[test]
    fn gaps_come_back_with_their_count() {
        for missed in [None, Some(12)] {
            let line = gap_json("c", missed);
            match event_from_json(&line) {
                Some(Event::Gap { channel, missed: m }) => {
                    assert_eq!((channel.as_str(), m), ("c", missed))
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(event_from_json(&json!({"event": "connected", "client": "x"})).is_none());
        assert!(event_from_str("not json").is_none());
    }

    #[test]
    fn a_subscribed_line_carries_the_streams_epoch_and_offset() {
        let line = event_json(&Event::Subscribed {
            channel: "c:1".into(),
            recovery: Recovery::Recovered,
            epoch: "ZtQs".into(),
            offset: 41,
        });
        assert_eq!(
            line,
            json!({"event": "subscribed", "channel": "c:1", "recovery": "recovered", "epoch": "ZtQs", "offset": 41})
        );
    }
}
