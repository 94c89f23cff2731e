//! Failures a test injects: REST errors and delays, refused upgrades and
//! subscribes, tokens issued expired.

use tokio::time::Duration;

use super::wire::error_message;
use super::{InjectedFailure, State};
use crate::protocol::ErrorReply;

impl State {
    pub(crate) fn fail_next_rest(&mut self, count: usize, status: u16, retry_after: Option<u64>) {
        self.fail_rest = (count > 0).then_some(InjectedFailure {
            remaining: count,
            status,
            retry_after,
        });
    }

    pub(crate) fn fail_next_ws_upgrade(&mut self, count: usize, status: u16) {
        self.fail_upgrade = (count > 0).then_some(InjectedFailure {
            remaining: count,
            status,
            retry_after: None,
        });
    }

    pub(crate) fn delay_next_rest(&mut self, count: usize, delay: Duration) {
        self.delay_rest = (count > 0).then_some((count, delay));
    }

    pub(crate) fn take_rest_delay(&mut self) -> Option<Duration> {
        let (remaining, delay) = self.delay_rest.as_mut()?;
        *remaining -= 1;
        let delay = *delay;
        if *remaining == 0 {
            self.delay_rest = None;
        }
        Some(delay)
    }

    pub(crate) fn expire_next_tokens(&mut self, count: usize) {
        self.expire_next = count;
    }

    pub(crate) fn fail_next_subscribes(&mut self, count: usize, code: u32, temporary: bool) {
        let error = ErrorReply {
            code,
            message: error_message(code).to_owned(),
            temporary,
        };
        self.fail_subscribe = (count > 0).then_some((count, error));
    }

    pub(super) fn take_subscribe_failure(&mut self) -> Option<ErrorReply> {
        let (remaining, error) = self.fail_subscribe.as_mut()?;
        *remaining -= 1;
        let error = error.clone();
        if *remaining == 0 {
            self.fail_subscribe = None;
        }
        Some(error)
    }

    pub(super) fn take(slot: &mut Option<InjectedFailure>) -> Option<InjectedFailure> {
        let failure = slot.as_mut()?;
        failure.remaining -= 1;
        let taken = *failure;
        if failure.remaining == 0 {
            *slot = None;
        }
        Some(taken)
    }

    pub(crate) fn take_rest_failure(&mut self) -> Option<InjectedFailure> {
        Self::take(&mut self.fail_rest)
    }

    pub(crate) fn take_upgrade_failure(&mut self) -> Option<InjectedFailure> {
        Self::take(&mut self.fail_upgrade)
    }
}
