//! The feed: numbered events and a bounded replay buffer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::item::Item;

/// Every event gets the next sequence number; the last `capacity` are kept
/// so that a page that reconnects gets what it missed. SSE ids are
/// `<boot>-<seq>`, where `boot` names this run of the server: an id from
/// another run means "everything you have".
pub struct Feed {
    boot: String,
    pub(super) capacity: usize,
    inner: Mutex<Buffer>,
    pub(super) latest: watch::Sender<u64>,
}

struct Buffer {
    last: u64,
    items: VecDeque<(u64, Arc<str>)>,
}

impl Feed {
    pub fn new(capacity: usize) -> Feed {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Feed {
            boot: format!("{:x}", nanos & 0xffff_ffff_ffff),
            capacity: capacity.max(1),
            inner: Mutex::new(Buffer {
                last: 0,
                items: VecDeque::new(),
            }),
            latest: watch::channel(0).0,
        }
    }

    pub fn push(&self, item: &Item) {
        let json: Arc<str> = match serde_json::to_string(item) {
            Ok(json) => json.into(),
            Err(error) => {
                tracing::warn!(%error, "cannot encode an event");
                return;
            }
        };
        let seq = {
            let mut buffer = self.inner.lock().expect("feed lock");
            buffer.last += 1;
            let seq = buffer.last;
            buffer.items.push_back((seq, json));
            while buffer.items.len() > self.capacity {
                buffer.items.pop_front();
            }
            seq
        };
        self.latest.send_replace(seq);
    }

    pub(super) fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.boot)
    }

    /// Where a page that presents `resume` (a `Last-Event-ID`) starts: after
    /// that event when it is from this run, at the start of the buffer when
    /// it is from another run, at the live edge when there is none.
    pub(super) fn start_after(&self, resume: Option<&str>) -> u64 {
        let last = self.inner.lock().expect("feed lock").last;
        let Some(resume) = resume.map(str::trim).filter(|resume| !resume.is_empty()) else {
            return last;
        };
        match resume.rsplit_once('-') {
            Some((boot, seq)) if boot == self.boot => {
                seq.parse::<u64>().map_or(last, |seq| seq.min(last))
            }
            _ => 0,
        }
    }

    /// Where a page that asks for the last `count` events starts (`?last=N`:
    /// a screenshot, a demo): that many before the live edge, or the oldest
    /// event kept.
    pub(super) fn start_last(&self, count: usize) -> u64 {
        let buffer = self.inner.lock().expect("feed lock");
        let oldest = buffer
            .items
            .front()
            .map_or(buffer.last + 1, |(seq, _)| *seq);
        buffer
            .last
            .saturating_sub(count as u64)
            .max(oldest.saturating_sub(1))
    }

    /// The events after `seq`, and how many of those were already dropped
    /// from the buffer.
    pub(super) fn after(&self, seq: u64) -> (Vec<(u64, Arc<str>)>, u64) {
        let buffer = self.inner.lock().expect("feed lock");
        let oldest = buffer
            .items
            .front()
            .map_or(buffer.last + 1, |(seq, _)| *seq);
        let missed = oldest.saturating_sub(seq + 1);
        let skip = buffer.items.partition_point(|(kept, _)| *kept <= seq);
        let items = buffer.items.iter().skip(skip).cloned().collect();
        (items, missed)
    }
}
