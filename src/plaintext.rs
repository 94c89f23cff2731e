//! A warning when a token is about to travel in plaintext.
//!
//! The API and OAuth calls carry an access token or app secret in a header,
//! and the WebSocket's `connect` carries the connection token: over `http://`
//! or `ws://` to another machine, anyone on the path can read them. Tests and
//! local emulators on a loopback address are left alone.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// How many distinct URLs are remembered: one warning each. Past this many
/// (a process that has been warned plenty), no more warnings, so the set
/// stays bounded.
const REMEMBERED: usize = 64;

/// The URLs (as logged) already warned about, process-wide.
static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Logs one `warn` per distinct URL when `url` is `http://` or `ws://` and its
/// host is not loopback (`127.0.0.0/8`, `::1`, `localhost`). `what` names the
/// sender ("the API client"). Only scheme, host, port and path are logged,
/// never user info, query or fragment (they may hold a token).
pub(crate) fn warn_if_plaintext(url: &str, what: &str) {
    let Some((scheme, shown)) = plaintext_target(url) else {
        return;
    };
    let first = {
        let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
        first_time(warned.get_or_insert_with(HashSet::new), &shown, REMEMBERED)
    };
    if first {
        tracing::warn!(
            url = %shown,
            "{what} sends a token in plaintext over {scheme}:// to {shown}: anyone on the path \
             can read it; use {}://",
            if scheme == "ws" { "wss" } else { "https" }
        );
    }
}

/// Records `shown` in `warned` unless it is there already or the set is full;
/// whether it was recorded (so: whether to warn).
fn first_time(warned: &mut HashSet<String>, shown: &str, capacity: usize) -> bool {
    if warned.len() >= capacity || warned.contains(shown) {
        return false;
    }
    warned.insert(shown.to_owned())
}

/// For a plaintext URL to a host that is not loopback, its scheme and the URL
/// as it may be logged: `scheme://host[:port]/path`.
fn plaintext_target(url: &str) -> Option<(&'static str, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let scheme = match parsed.scheme() {
        "http" => "http",
        "ws" => "ws",
        _ => return None,
    };
    if is_loopback(parsed.host()?) {
        return None;
    }
    let host = parsed.host_str()?;
    let port = parsed
        .port()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    Some((scheme, format!("{scheme}://{host}{port}{}", parsed.path())))
}

fn is_loopback(host: url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output captured from this thread while `work` runs.
    pub(crate) fn captured(work: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // A callsite first hit by another test's thread may cache "never".
            tracing::callsite::rebuild_interest_cache();
            work()
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn warns_once_per_plaintext_url_to_another_host() {
        let output = captured(|| {
            warn_if_plaintext("http://example.com", "the API client");
            warn_if_plaintext("http://example.com", "the API client");
            warn_if_plaintext("http://127.0.0.1:1", "the API client");
        });
        assert_eq!(output.matches("WARN").count(), 1, "{output}");
        assert!(
            output.contains(
                "the API client sends a token in plaintext over http:// to http://example.com/"
            ),
            "{output}"
        );
        assert!(!output.contains("127.0.0.1"), "{output}");
    }

    #[test]
    fn never_logs_the_query_or_user_info() {
        let output = captured(|| {
            warn_if_plaintext(
                "ws://user:hunter2@pubsub.example.org:8000/connection/websocket?token=s3cr3t#frag",
                "the WebSocket",
            );
        });
        assert_eq!(output.matches("WARN").count(), 1, "{output}");
        assert!(
            output.contains("ws://pubsub.example.org:8000/connection/websocket"),
            "{output}"
        );
        assert!(output.contains("use wss://"), "{output}");
        for secret in ["hunter2", "user:", "s3cr3t", "token=", "frag"] {
            assert!(!output.contains(secret), "{secret} in {output}");
        }
    }

    #[test]
    fn loopback_and_encrypted_urls_are_left_alone() {
        for url in [
            "http://127.0.0.1:1",
            "http://127.1.2.3/x",
            "ws://localhost:8099/connection/websocket",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://[::1]:80/",
            "http://[::ffff:127.0.0.1]/",
            "https://example.com",
            "wss://example.com",
            "not a url",
        ] {
            assert_eq!(plaintext_target(url), None, "{url}");
        }
        for url in [
            "http://10.0.0.1/",
            "http://[::2]/",
            "ws://localhost.example.com/",
            "HTTP://Example.COM",
        ] {
            assert!(plaintext_target(url).is_some(), "{url}");
        }
    }

    #[test]
    fn the_set_of_warned_urls_is_bounded() {
        let mut warned = HashSet::new();
        assert!(first_time(&mut warned, "http://a/", 2));
        assert!(!first_time(&mut warned, "http://a/", 2));
        assert!(first_time(&mut warned, "http://b/", 2));
        assert!(!first_time(&mut warned, "http://c/", 2));
        assert_eq!(warned.len(), 2);
    }
}
