//! Benchmark load: many publications queued at once as prebuilt frames.
//!
//! Building the frames (hundreds of megabytes for a large blast) is the slow
//! part, so it happens outside the lock, in three steps: [`State::plan_blast`]
//! notes where the channel's stream stands, [`build`] makes the frames with
//! no lock held, and [`State::commit_blast`] queues them, under the lock
//! again, only if the stream has not moved meanwhile (otherwise the caller
//! plans again). [`State::blast`] does all three under one lock.

use std::sync::Arc;

use serde_json::value::RawValue;

use super::chat_log::{ChatEntry, chat_entry};
use super::{CHAT_LOG_LIMIT, Out, State};
use crate::emulator::names::CHAT_PREFIX;
use crate::emulator::reports::BlastReport;
use crate::protocol::Publication;

/// Most publications one blast may queue (about a gigabyte of frames).
pub const MAX_BLAST_COUNT: usize = 2_000_000;

/// Where a channel's stream stood when a blast was planned, and what to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlastPlan {
    channel: String,
    count: usize,
    per_frame: usize,
    /// Whether publications carry offsets (history on).
    history: bool,
    /// Publications the stream keeps (0 with history off).
    history_size: usize,
    epoch: String,
    /// The stream's top offset when planned.
    top: u64,
}

/// A blast's stream moved between its plan and its commit: plan again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamMoved;

/// The frames of a blast, built outside the lock.
pub(crate) struct BuiltBlast {
    plan: BlastPlan,
    frames: Vec<Arc<str>>,
    bytes: usize,
    /// The last publications, for the stream's history.
    kept: Vec<Publication>,
    /// The last chat messages, for the chat log.
    chat: Vec<ChatEntry>,
}

impl State {
    /// Checks a blast's size and notes where the stream stands.
    pub(crate) fn plan_blast(
        &mut self,
        channel: &str,
        count: usize,
        per_frame: usize,
    ) -> Result<BlastPlan, String> {
        if count > MAX_BLAST_COUNT {
            return Err(format!(
                "count {count} is more than a blast may queue ({MAX_BLAST_COUNT})"
            ));
        }
        let per_frame = per_frame.max(1);
        let frames = count.div_ceil(per_frame);
        let room = self.config.outgoing_queue_capacity;
        if frames > room {
            return Err(format!(
                "{frames} frames do not fit a connection's queue of {room}; raise per_frame"
            ));
        }
        let history = self.config.history;
        let history_size = if history { self.config.history_size } else { 0 };
        let stream = self.stream_mut(channel);
        Ok(BlastPlan {
            channel: channel.to_owned(),
            count,
            per_frame,
            history,
            history_size,
            epoch: stream.epoch.clone(),
            top: stream.top,
        })
    }

    /// Queues built frames to every subscriber and advances the stream, or
    /// drops them when the stream moved since the plan (a publication, a
    /// restart, history switched): their offsets are stale.
    pub(crate) fn commit_blast(&mut self, built: BuiltBlast) -> Result<BlastReport, StreamMoved> {
        let history = self.config.history;
        let history_size = if history { self.config.history_size } else { 0 };
        let plan = &built.plan;
        let stream = self.stream_mut(&plan.channel);
        let moved = plan.history != history
            || plan.history_size != history_size
            || plan.epoch != stream.epoch
            || (history && plan.top != stream.top);
        if moved {
            return Err(StreamMoved);
        }
        let BuiltBlast {
            plan,
            frames,
            bytes,
            kept,
            chat,
        } = built;
        let first_offset = if history { plan.top + 1 } else { 0 };
        stream.history.extend(kept);
        while stream.history.len() > history_size {
            stream.history.pop_front();
        }
        let last_offset = if history {
            stream.top += plan.count as u64;
            stream.top
        } else {
            0
        };
        let subscribers: Vec<u64> = stream.subscribers.iter().copied().collect();
        for id in &subscribers {
            for frame in &frames {
                self.deliver(*id, Out::Raw(Arc::clone(frame)));
            }
        }
        for entry in chat {
            self.apply_chat_entry(&plan.channel, entry);
        }
        Ok(BlastReport {
            first_offset,
            last_offset,
            frames: frames.len(),
            bytes,
            subscribers: subscribers.len(),
        })
    }

    /// Plans, builds and commits a blast under this one lock (for tests, and
    /// the last try when other publications keep moving the stream).
    pub(crate) fn blast(
        &mut self,
        channel: &str,
        count: usize,
        per_frame: usize,
        payload: impl FnMut(usize) -> Box<RawValue>,
    ) -> Result<BlastReport, String> {
        let plan = self.plan_blast(channel, count, per_frame)?;
        self.commit_blast(build(plan, payload))
            .map_err(|_| String::from("the stream moved under the lock"))
    }
}

/// Builds the frames of a planned blast, `per_frame` push lines to a frame;
/// `payload(i)` makes the i-th payload. Takes no lock.
pub(crate) fn build(
    plan: BlastPlan,
    mut payload: impl FnMut(usize) -> Box<RawValue>,
) -> BuiltBlast {
    let count = plan.count;
    let quoted_channel = serde_json::to_string(&plan.channel).unwrap_or_default();
    // Only the last messages can stay in a chat log.
    let chat_from = if plan.channel.starts_with(CHAT_PREFIX) {
        count.saturating_sub(CHAT_LOG_LIMIT)
    } else {
        count
    };
    let keep_from = count.saturating_sub(plan.history_size);
    let mut frames: Vec<Arc<str>> = Vec::with_capacity(count.div_ceil(plan.per_frame));
    let mut kept = Vec::with_capacity(count - keep_from);
    let mut chat = Vec::new();
    let mut frame = String::new();
    let mut bytes = 0;
    for index in 0..count {
        let data = payload(index);
        let offset = if plan.history {
            plan.top + 1 + index as u64
        } else {
            0
        };
        if !frame.is_empty() {
            frame.push('\n');
        }
        // What `line(&Reply { push: Some(Push { channel, publication }) })`
        // writes, without a serializer pass over the payload.
        frame.push_str("{\"push\":{\"channel\":");
        frame.push_str(&quoted_channel);
        frame.push_str(",\"pub\":{\"data\":");
        frame.push_str(data.get());
        if plan.history {
            frame.push_str(",\"offset\":");
            frame.push_str(&offset.to_string());
        }
        frame.push_str("}}}");
        if index >= chat_from
            && let Some(entry) = chat_entry(&plan.channel, &data)
        {
            chat.push(entry);
        }
        if index >= keep_from {
            kept.push(Publication {
                data,
                offset,
                info: None,
                tags: None,
            });
        }
        if (index + 1) % plan.per_frame == 0 || index + 1 == count {
            bytes += frame.len();
            frames.push(Arc::from(std::mem::take(&mut frame)));
        }
    }
    BuiltBlast {
        plan,
        frames,
        bytes,
        kept,
        chat,
    }
}
