//! Benchmark load: [`blast`] queues many publications as prebuilt frames,
//! built with no lock held; [`spawn_paced`] publishes at a fixed rate with
//! the send time stamped into each message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::unix_nanos;
use super::pool::{chat_payload, stamped_payload};
use super::reports::BlastReport;
use super::state::Shared;
use super::state::blast::build as build_blast;

/// Tries to build a blast outside the lock before building it under it.
const UNLOCKED_TRIES: usize = 3;

/// Publishes `count` benchmark chat messages into `channel`, `per_frame`
/// push lines to a frame (see [`Emulator::blast`](super::Emulator::blast)).
/// The frames are built outside the lock, so publications, connections and
/// the control API go on meanwhile; when other publications into `channel`
/// move its stream before the frames are queued, they are built again, and
/// after a few such tries under the lock.
pub(crate) fn blast(
    shared: &Shared,
    channel: &str,
    count: usize,
    per_frame: usize,
) -> Result<BlastReport, String> {
    for _ in 0..UNLOCKED_TRIES {
        let plan = shared.lock().plan_blast(channel, count, per_frame)?;
        let built = build_blast(plan, chat_payload);
        if let Ok(report) = shared.lock().commit_blast(built) {
            return Ok(report);
        }
    }
    shared.lock().blast(channel, count, per_frame, chat_payload)
}

/// Publishes `count` stamped chat messages into `channel`, `rate` a second,
/// each on its own, from a thread of its own (a thread, not a task: its
/// sleeps are precise to tens of microseconds). The stamp is taken just
/// before the publication is queued to the subscribers' writers.
pub(crate) fn spawn_paced(
    shared: Arc<Shared>,
    channel: String,
    count: usize,
    rate: f64,
) -> std::thread::JoinHandle<usize> {
    let period = Duration::from_secs_f64((1.0 / rate.max(1e-3)).min(86_400.0));
    std::thread::spawn(move || {
        let start = Instant::now();
        for index in 0..count {
            if shared.is_shut_down() {
                return index;
            }
            let due = start + period.mul_f64(index as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let payload = stamped_payload(index, unix_nanos());
            shared.lock().publish_raw(&channel, payload);
        }
        count
    })
}
