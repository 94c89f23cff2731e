//! Stream lifecycle events, known only by their webhook names.
//!
//! No stream start/stop event is confirmed over pubsub, and their shapes are
//! unknown. They are recognised by `type` so code can react to "the stream
//! started", with the data kept raw until a capture shows its shape.

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::de::raw_eq;

/// Which stream lifecycle event this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamEventKind {
    /// `channel_stream_start`.
    Start,
    /// `channel_stream_pause`.
    Pause,
    /// `channel_stream_resume`.
    Resume,
    /// `channel_stream_stop`.
    Stop,
    /// `channel_stream_settings_change` (title, category, …).
    SettingsChange,
    /// `channel_stream_record_new`: a recording of a stream is available.
    RecordNew,
}

impl StreamEventKind {
    pub(crate) const ALL: [StreamEventKind; 6] = [
        StreamEventKind::Start,
        StreamEventKind::Pause,
        StreamEventKind::Resume,
        StreamEventKind::Stop,
        StreamEventKind::SettingsChange,
        StreamEventKind::RecordNew,
    ];

    /// The wire `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamEventKind::Start => "channel_stream_start",
            StreamEventKind::Pause => "channel_stream_pause",
            StreamEventKind::Resume => "channel_stream_resume",
            StreamEventKind::Stop => "channel_stream_stop",
            StreamEventKind::SettingsChange => "channel_stream_settings_change",
            StreamEventKind::RecordNew => "channel_stream_record_new",
        }
    }

    /// The kind for a wire `type`, if it is a stream lifecycle one.
    pub fn from_type(kind: &str) -> Option<StreamEventKind> {
        StreamEventKind::ALL
            .into_iter()
            .find(|candidate| candidate.as_str() == kind)
    }
}

/// A stream lifecycle event: its kind and its `data`, raw.
///
/// Serializes as the raw `data`.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// Which event.
    pub kind: StreamEventKind,
    /// The envelope's `data`, as received.
    pub data: Box<RawValue>,
}

impl PartialEq for StreamEvent {
    fn eq(&self, other: &StreamEvent) -> bool {
        self.kind == other.kind && raw_eq(&self.data, &other.data)
    }
}

impl Serialize for StreamEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.data.serialize(serializer)
    }
}
