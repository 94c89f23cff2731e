//! What the session sends: commands with their reply deadlines, packed
//! into frames of at most [`MAX_OUTGOING_FRAME`] bytes, and pongs.

use std::time::Instant;

use super::Session;
use super::state::Pending;
use crate::protocol;

/// Largest outgoing frame: Centrifugo's default inbound limit is 64 KiB.
pub(super) const MAX_OUTGOING_FRAME: usize = 32 * 1024;

impl Session {
    /// Queues a command that expects a reply.
    pub(super) fn send_command(
        &mut self,
        now: Instant,
        mut command: protocol::Command,
        pending: Pending,
    ) -> u32 {
        let timeout = match pending {
            Pending::Connect => self.config.connect_reply_timeout,
            _ => self.config.command_timeout,
        };
        let Some(link) = &mut self.link else {
            return 0;
        };
        link.next_id = link.next_id.wrapping_add(1).max(1);
        command.id = link.next_id;
        link.pending.insert(command.id, pending);
        link.deadlines.push_back((command.id, now + timeout));
        tracing::trace!(
            id = command.id,
            request = command.request_name(),
            "command queued"
        );
        self.queue_line(&command);
        command.id
    }

    /// Appends a line to the last frame, or starts a new frame when the line
    /// would take the last one past `MAX_OUTGOING_FRAME`.
    fn queue_line(&mut self, command: &protocol::Command) {
        let mut line = String::new();
        protocol::append_line(&mut line, command);
        match self.outgoing.last_mut() {
            Some(frame) if frame.len() + 1 + line.len() <= MAX_OUTGOING_FRAME => {
                frame.push('\n');
                frame.push_str(&line);
            }
            _ => self.outgoing.push(line),
        }
    }

    pub(super) fn on_ping(&mut self) {
        if self.link.as_ref().is_some_and(|link| link.pong) {
            self.queue_line(&protocol::Command::default());
        }
    }
}
