//! Pure decisions of the connection actor: when to refresh, and what to do
//! after the server closed the connection.

use std::time::{Duration, Instant};

use crate::protocol::codes::{self, CloseAction};

/// Retry delay for a failed token refresh that may still succeed.
pub(crate) const REFRESH_RETRY: Duration = Duration::from_secs(5);

/// When to refresh a token the server says lives `ttl` seconds: at 80 % of
/// its life, so that a slow token request still lands well before the
/// server's deadline (which also has a grace period of its own).
pub(crate) fn refresh_delay(ttl_secs: u32) -> Duration {
    Duration::from_millis(u64::from(ttl_secs) * 800)
}

/// When to refresh a token the server said expires (`expires`) in `ttl`
/// seconds, if it does.
pub(crate) fn refresh_deadline(now: Instant, expires: bool, ttl: u32) -> Option<Instant> {
    (expires && ttl > 0).then(|| now + refresh_delay(ttl))
}

/// What the actor does after the server closed the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterClose {
    /// Reconnect with backoff.
    Reconnect,
    /// Terminal code about the token: reconnect once with a freshly fetched token.
    RetryWithFreshToken,
    /// Give up.
    Stop,
}

/// The close policy: the code's class, a single fresh-token retry for token
/// problems, and the legacy JSON reason `{"reason":…,"reconnect":…}` that
/// both official SDKs still honour.
pub(crate) fn after_close(code: u16, reason: &str, token_retry_left: bool) -> AfterClose {
    if let Some(reconnect) = legacy_reconnect_advice(reason) {
        return if reconnect {
            AfterClose::Reconnect
        } else {
            AfterClose::Stop
        };
    }
    match codes::close_action(code) {
        CloseAction::Reconnect => AfterClose::Reconnect,
        CloseAction::Terminal if token_retry_left && codes::close_is_token_problem(code) => {
            AfterClose::RetryWithFreshToken
        }
        CloseAction::Terminal => AfterClose::Stop,
    }
}

fn legacy_reconnect_advice(reason: &str) -> Option<bool> {
    if !reason.starts_with('{') {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Legacy {
        reconnect: bool,
    }
    serde_json::from_str::<Legacy>(reason)
        .ok()
        .map(|legacy| legacy.reconnect)
}

/// How long a connection must have lived for its fresh-token retry to be
/// given back: a server that rejects every new connection at once must not
/// get a retry loop.
pub(crate) const TOKEN_RETRY_RESET_AFTER: Duration = Duration::from_secs(60);

/// The server's ping interval as the watchdog uses it. The connect reply's
/// `ping` is trusted only within [`MIN_PING`, `MAX_PING`]: 0 or absent means
/// Centrifugo's default (25 s) is assumed, so that dead-link detection can
/// never be switched off by the server, and a huge value is capped.
pub(crate) fn ping_interval(ping_secs: u32) -> Duration {
    if ping_secs == 0 {
        return DEFAULT_PING;
    }
    Duration::from_secs(ping_secs.into()).clamp(MIN_PING, MAX_PING)
}

/// Centrifugo's default ping interval.
pub(crate) const DEFAULT_PING: Duration = Duration::from_secs(25);
/// Shortest ping interval believed.
pub(crate) const MIN_PING: Duration = Duration::from_secs(1);
/// Longest ping interval believed.
pub(crate) const MAX_PING: Duration = Duration::from_secs(600);

/// The reconnect attempt counter after a link ended: reset only when the
/// link had been connected for `healthy_after`, so that a server that closes
/// right after every connect still meets a growing backoff.
pub(crate) fn failures_after_link(
    failures: u32,
    connected_for: Option<Duration>,
    healthy_after: Duration,
) -> u32 {
    let base = match connected_for {
        Some(lived) if lived >= healthy_after => 0,
        _ => failures,
    };
    base.saturating_add(1)
}

/// How many publications a failed recovery missed: the distance from our
/// position to the server's top, when both are in the same epoch.
pub(crate) fn missed_publications(
    ours_epoch: &str,
    ours_offset: u64,
    server_epoch: &str,
    server_offset: u64,
) -> Option<u64> {
    (ours_epoch == server_epoch && server_offset >= ours_offset)
        .then(|| server_offset - ours_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_ping_interval_is_clamped_and_never_disables_the_watchdog() {
        assert_eq!(ping_interval(0), DEFAULT_PING);
        assert_eq!(ping_interval(25), Duration::from_secs(25));
        assert_eq!(ping_interval(u32::MAX), MAX_PING);
    }

    #[test]
    fn backoff_resets_only_after_a_healthy_link() {
        let healthy = Duration::from_secs(30);
        assert_eq!(failures_after_link(5, None, healthy), 6);
        assert_eq!(
            failures_after_link(5, Some(Duration::from_secs(1)), healthy),
            6
        );
        assert_eq!(failures_after_link(5, Some(healthy), healthy), 1);
        assert_eq!(failures_after_link(u32::MAX, None, healthy), u32::MAX);
    }

    #[test]
    fn missed_publications_are_counted_within_one_epoch_only() {
        assert_eq!(missed_publications("e", 10, "e", 25), Some(15));
        assert_eq!(missed_publications("e", 10, "e", 10), Some(0));
        assert_eq!(missed_publications("e", 10, "f", 25), None);
        assert_eq!(missed_publications("e", 10, "e", 5), None);
    }

    #[test]
    fn refresh_happens_at_eighty_percent_of_the_lifetime() {
        assert_eq!(refresh_delay(10), Duration::from_secs(8));
        assert_eq!(refresh_delay(3), Duration::from_millis(2400));
        assert_eq!(refresh_delay(0), Duration::ZERO);
    }

    #[test]
    fn reconnect_class_codes_reconnect() {
        for code in [1000, 1006, 3001, 3005, 3012, 4000] {
            assert_eq!(after_close(code, "", true), AfterClose::Reconnect, "{code}");
        }
    }

    #[test]
    fn invalid_token_gets_one_fresh_token_retry_then_stops() {
        assert_eq!(
            after_close(3500, "invalid token", true),
            AfterClose::RetryWithFreshToken
        );
        assert_eq!(after_close(3500, "invalid token", false), AfterClose::Stop);
    }

    #[test]
    fn other_terminal_codes_stop_at_once() {
        for code in [3501, 3502, 3503, 3999, 4500, 4999] {
            assert_eq!(after_close(code, "", true), AfterClose::Stop, "{code}");
        }
    }

    #[test]
    fn legacy_json_reason_overrides_the_code() {
        assert_eq!(
            after_close(3001, r#"{"reason":"x","reconnect":false}"#, true),
            AfterClose::Stop
        );
        assert_eq!(
            after_close(3503, r#"{"reason":"x","reconnect":true}"#, true),
            AfterClose::Reconnect
        );
        assert_eq!(after_close(3001, "{not json", true), AfterClose::Reconnect);
    }
}
