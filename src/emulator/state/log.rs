//! What a test observes: the commands received, the protocol misuse seen,
//! the REST calls answered.

use super::{State, push_bounded};
use crate::emulator::reports::{ReceivedCommand, RestCall};
use crate::protocol::Command;

impl State {
    pub(crate) fn record_command(&mut self, connection: u64, command: &Command) {
        push_bounded(
            &mut self.received,
            ReceivedCommand {
                connection,
                command: command.clone(),
            },
        );
    }

    pub(crate) fn record_violation(&mut self, connection: u64, violation: &str) {
        push_bounded(
            &mut self.violations,
            format!("connection {connection}: {violation}"),
        );
    }

    /// Records a REST call; returns its sequence number for
    /// [`State::finish_rest`].
    pub(crate) fn record_rest(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        body: String,
    ) -> u64 {
        push_bounded(
            &mut self.rest_calls,
            RestCall {
                method: method.to_owned(),
                path: path.to_owned(),
                query: query.to_owned(),
                body,
                status: None,
                error: None,
            },
        );
        self.rest_recorded += 1;
        self.rest_recorded
    }

    /// Writes the answer of the call numbered `seq` into its record (if it
    /// is still kept).
    pub(crate) fn finish_rest(&mut self, seq: u64, status: u16, error: Option<String>) {
        let behind = self.rest_recorded - seq;
        let Some(index) = (self.rest_calls.len() as u64).checked_sub(behind + 1) else {
            return;
        };
        if let Some(call) = self.rest_calls.get_mut(index as usize) {
            call.status = Some(status);
            call.error = error;
        }
    }
}
