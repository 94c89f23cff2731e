//! Logging that never prints a token.
//!
//! This crate's own log lines carry no token at any level. Its dependencies
//! are another matter: at `trace`, `tungstenite` (the WebSocket library
//! underneath) prints every frame it sends and receives, whole, and the
//! pubsub's `connect` and `subscribe` frames carry the connection token and
//! each subscription token. **A subscriber that logs everything at `trace`
//! without a filter prints those tokens** (`RUST_LOG=trace` with a plain
//! `tracing_subscriber::fmt().init()` does).
//!
//! The safe set-up is one line, [`init`] (feature `logging`):
//!
//! ```no_run
//! # #[cfg(feature = "logging")]
//! vklive_pubsub::log::init("warn"); // RUST_LOG, else "warn"; never a token
//! ```
//!
//! or, in a subscriber of your own, [`safe_filter`] on every layer that
//! may see dependencies' `trace` lines:
//!
//! ```
//! # #[cfg(feature = "logging")] {
//! use tracing_subscriber::filter::FilterExt;
//! use tracing_subscriber::prelude::*;
//! let wanted = tracing_subscriber::EnvFilter::new("trace");
//! let _subscriber = tracing_subscriber::registry().with(
//!     tracing_subscriber::fmt::layer().with_filter(wanted.and(vklive_pubsub::log::safe_filter())),
//! );
//! # }
//! ```

/// Whether a log line from a dependency may carry a token: `tungstenite`,
/// the WebSocket library underneath, logs every frame's payload at `trace`,
/// and the `connect` frame carries the connection token. This crate's own
/// logs never contain a token at any level. [`safe_filter`] (feature
/// `logging`) drops exactly these lines. With the `relay` feature,
/// `async-nats` too: it logs the NATS `CONNECT` (password, token) at `trace`.
pub fn may_contain_tokens(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() == tracing::Level::TRACE
        && (metadata.target().starts_with("tungstenite")
            || metadata.target().starts_with("async_nats"))
}

/// The per-layer filter that drops every line [`may_contain_tokens`]: add it
/// (with `.and(…)`) to any layer of a subscriber of your own. See the
/// [module documentation](self) for an example.
#[cfg(feature = "logging")]
#[cfg_attr(docsrs, doc(cfg(feature = "logging")))]
pub fn safe_filter() -> tracing_subscriber::filter::FilterFn<fn(&tracing::Metadata<'_>) -> bool> {
    fn keep(metadata: &tracing::Metadata<'_>) -> bool {
        !may_contain_tokens(metadata)
    }
    tracing_subscriber::filter::FilterFn::new(keep as fn(&tracing::Metadata<'_>) -> bool)
}

/// Logs to stderr, as `RUST_LOG` says (else `default`, e.g. `"warn"` or
/// `"warn,my_bot=info"`), through [`safe_filter`]: the one-line safe set-up
/// for a program. Colour only when stderr is a terminal (a log redirected to
/// a file has no escape codes). Does nothing when the program already
/// installed a global subscriber.
///
/// ```no_run
/// vklive_pubsub::log::init("warn,bot=info");
/// tracing::info!(target: "bot", "started");
/// ```
#[cfg(feature = "logging")]
#[cfg_attr(docsrs, doc(cfg(feature = "logging")))]
pub fn init(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::prelude::*;
    let wanted = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _already_set = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(wanted.and(safe_filter())),
        )
        .try_init();
}

#[cfg(all(test, feature = "logging"))]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_safe_filter_drops_tungstenite_frames_at_trace_and_keeps_the_rest() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(super::safe_filter()),
        );
        tracing::subscriber::with_default(subscriber, || {
            // A callsite first hit by another test's thread may cache "never".
            tracing::callsite::rebuild_interest_cache();
            tracing::trace!(target: "tungstenite::protocol", "Sending frame: token-xyz");
            tracing::debug!(target: "tungstenite::protocol", "a debug line");
            tracing::trace!(target: "vklive_pubsub::connection", "a trace line of ours");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains("token-xyz"), "{text}");
        assert!(text.contains("a debug line"), "{text}");
        assert!(text.contains("a trace line of ours"), "{text}");
    }
}
