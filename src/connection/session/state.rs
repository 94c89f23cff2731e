//! The parts of the session's state that more than one job reads: the
//! link (its phase, pending replies, deadlines), how a link ends, the count
//! of malformed lines, the lookups in progress, and the wall clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::CloseReason;
use crate::error::Error;
use crate::secret::Secret;

/// Where the session stands between links.
#[derive(Debug)]
pub(super) enum Phase {
    /// The next attempt starts at `until`.
    Waiting {
        until: Instant,
    },
    /// Token requests for attempt `attempt` are out.
    Fetching {
        connection: Option<Secret>,
        channels: Option<HashMap<String, Secret>>,
        asked: Vec<Arc<str>>,
    },
    /// The WebSocket is being opened.
    Dialing {
        connection: Secret,
        channels: HashMap<String, Secret>,
        asked: Vec<Arc<str>>,
    },
    /// A socket is open: see `Session::link`.
    Open,
    /// `close()` was asked; waiting for the server's close frame.
    Closing {
        until: Instant,
    },
    Finished,
}

/// What a sent command waits for.
#[derive(Debug)]
pub(super) enum Pending {
    Connect,
    Subscribe(Arc<str>),
    Unsubscribe,
    Refresh,
    SubRefresh(Arc<str>),
    History(Arc<str>),
}

/// Everything that belongs to one open WebSocket.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) next_id: u32,
    pub(super) pending: HashMap<u32, Pending>,
    /// Command ids in sending order with their reply deadlines.
    pub(super) deadlines: VecDeque<(u32, Instant)>,
    /// Set by the connect reply.
    pub(super) ping: Option<Duration>,
    pub(super) pong: bool,
    pub(super) last_received: Instant,
    pub(super) connected_at: Option<Instant>,
    pub(super) refresh_at: Option<Instant>,
    /// Reading stopped at this moment (the caller is behind): silence is
    /// ours, not the server's, so the watchdog and reply deadlines wait.
    pub(super) paused_since: Option<Instant>,
}

impl Link {
    pub(super) fn new(now: Instant) -> Link {
        Link {
            next_id: 0,
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            ping: None,
            pong: false,
            last_received: now,
            connected_at: None,
            refresh_at: None,
            paused_since: None,
        }
    }

    pub(super) fn watchdog(&self, margin: Duration) -> Option<Instant> {
        if self.paused_since.is_some() {
            return None;
        }
        self.ping
            .map(|ping| self.last_received + ping.saturating_add(margin))
    }

    /// The earliest reply deadline of a command still waiting.
    pub(super) fn command_deadline(&mut self) -> Option<Instant> {
        if self.paused_since.is_some() {
            return None;
        }
        while let Some((id, deadline)) = self.deadlines.front() {
            if self.pending.contains_key(id) {
                return Some(*deadline);
            }
            self.deadlines.pop_front();
        }
        None
    }
}

/// How a link (or an attempt at one) ended.
#[derive(Debug)]
pub(super) enum LinkEnd {
    /// Something failed that may work next time.
    Retry {
        code: Option<u16>,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server closed the connection with a code.
    ServerClosed { code: u16, reason: String },
    /// Stop for good.
    Stop(CloseReason),
}

impl LinkEnd {
    pub(super) fn retry(reason: impl Into<String>) -> LinkEnd {
        LinkEnd::Retry {
            code: None,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A failed API call: retry if it may help, stop if not.
    pub(super) fn from_api_error(error: Error) -> LinkEnd {
        if error.is_retryable() {
            LinkEnd::Retry {
                code: None,
                reason: error.to_string(),
                retry_after: error.retry_after(),
            }
        } else {
            LinkEnd::Stop(CloseReason::Failed(error))
        }
    }
}

/// Malformed lines are logged at most this often (with their count).
const MALFORMED_LOG_EVERY: Duration = Duration::from_secs(1);

/// Malformed lines, counted and logged at most once a second.
#[derive(Debug, Default)]
pub(super) struct Malformed {
    since_log: u64,
    logged_at: Option<Instant>,
}

impl Malformed {
    pub(super) fn note(&mut self, now: Instant, what: &dyn std::fmt::Display) {
        self.since_log += 1;
        if self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= MALFORMED_LOG_EVERY)
        {
            tracing::warn!(
                skipped = self.since_log,
                last = %what,
                "skipping lines the connector cannot read"
            );
            self.since_log = 0;
            self.logged_at = Some(now);
        }
    }
}

/// A VK channel being looked up: `retry_at` is set while waiting to ask again.
#[derive(Debug, Default)]
pub(super) struct Resolution {
    /// The kinds of channels not to subscribe once resolved.
    pub(super) skip: Vec<crate::event::ChannelKey>,
    pub(super) failures: u32,
    pub(super) retry_at: Option<Instant>,
}

/// Unix time of an [`Instant`]: the session is given both once.
#[derive(Debug, Clone, Copy)]
pub(super) struct WallClock {
    pub(super) at: Instant,
    pub(super) unix_millis: i64,
}

impl WallClock {
    pub(super) fn millis(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.at).as_millis();
        self.unix_millis
            .saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
    }
}
