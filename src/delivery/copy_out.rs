//! When a publication stops sharing its received frame: the one rule.
//!
//! A publication received live is a slice of its frame (a reference, not a
//! copy), and a received frame is a slice of the socket's read buffer: as
//! long as one publication of it waits, all of that buffer stays allocated,
//! which the queue's byte count ([`Delivery::cost`]) does not see. So a
//! waiting publication shares its frame only while that costs little, and is
//! copied out otherwise:
//!
//! - held back in the session (behind a catch-up or a chat fill-in it must
//!   follow): copied, each alone, when it is held;
//! - in a frame mostly made of something else (its publications less than
//!   half of it, [`worth_sharing`]): copied, each alone, once the frame is
//!   read ([`Outbox::end_frame`](super::Outbox::end_frame));
//! - entering a queue that is backing up (over a quarter of its budget,
//!   [`backing_up`]): its frame copied once, exactly sized, and shared by its
//!   publications ([`Compactor`]).

use super::payload::{Delivery, Payload};
use crate::protocol::Frame;

/// Whether publications holding `shared` bytes of a frame of `frame_len`
/// bytes may keep sharing it: they are at least half of it.
pub(super) fn worth_sharing(shared: usize, frame_len: usize) -> bool {
    shared * 2 >= frame_len
}

/// Whether a queue holding `queued` bytes of its `budget` is backing up:
/// what enters it then is copied out of its frames.
pub(super) fn backing_up(queued: usize, budget: usize) -> bool {
    queued > budget / 4
}

impl Delivery {
    /// Copies a publication's payload out of its frame.
    pub(crate) fn copy_out(&mut self) {
        if let Delivery::Publication(raw) = self
            && let Payload::Shared { .. } = raw.data
        {
            raw.data = Payload::Owned(raw.data.text().into());
        }
    }

    /// Points a publication's payload at a copy of its frame.
    pub(super) fn compact(&mut self, compactor: &mut Compactor) {
        if let Delivery::Publication(raw) = self
            && let Payload::Shared { frame, .. } = &mut raw.data
        {
            *frame = compactor.copy_of(frame);
        }
    }
}

/// Copies frames once each, exactly sized, for the publications that share
/// them: one allocation a frame, not one a publication.
#[derive(Default)]
pub(super) struct Compactor {
    /// The last frame copied: (its text's address and length, the copy).
    last: Option<((usize, usize), Frame)>,
}

impl Compactor {
    pub(super) fn copy_of(&mut self, frame: &Frame) -> Frame {
        let identity = (frame.as_str().as_ptr() as usize, frame.len());
        match &self.last {
            Some((seen, copy)) if *seen == identity => copy.clone(),
            _ => {
                let copy = frame.copy();
                self.last = Some((identity, copy.clone()));
                copy
            }
        }
    }
}
