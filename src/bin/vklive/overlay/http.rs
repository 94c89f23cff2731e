//! The overlay's HTTP side: the page, its script and style (compiled in),
//! and `GET /events`, the SSE feed; every response hardened, every request
//! with a `Host` the user did not allow refused (DNS rebinding).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use super::feed::Feed;

const INDEX_HTML: &str = include_str!("assets/index.html");
const OVERLAY_JS: &str = include_str!("assets/overlay.js");
const OVERLAY_CSS: &str = include_str!("assets/overlay.css");

/// Sent with every response. No inline script or style, no plugins, no
/// frames; scripts, styles and the event stream from this server only;
/// images from this server or any `http:`/`https:` URL (smiles, avatars).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' http: https:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'";

/// The `Host` values a request may carry: `127.0.0.1:PORT`, `localhost:PORT`
/// and the names the user allowed (`NAME` stands for `NAME:PORT` too).
/// Anything else is a page of another site reaching this server through a
/// name it controls (DNS rebinding), and is refused.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts(Arc<Vec<String>>);

impl AllowedHosts {
    pub(crate) fn new(port: u16, extra: &[String]) -> AllowedHosts {
        let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        for name in extra {
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            if !name.contains(':') || name.starts_with('[') && !name.contains("]:") {
                hosts.push(format!("{name}:{port}"));
            }
            hosts.push(name);
        }
        AllowedHosts(Arc::new(hosts))
    }

    pub(crate) fn allows(&self, host: Option<&str>) -> bool {
        host.is_some_and(|host| {
            let host = host.trim();
            self.0
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
        })
    }
}

async fn check_host(State(hosts): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    if hosts.allows(host) {
        return next.run(request).await;
    }
    tracing::warn!(
        host = host.unwrap_or("(none)"),
        "refused a request for a host name that was not allowed (see --allow-host)"
    );
    (
        StatusCode::FORBIDDEN,
        "this overlay answers only to 127.0.0.1 and localhost (and --allow-host names)\n",
    )
        .into_response()
}

pub(crate) fn router(feed: Arc<Feed>, hosts: AllowedHosts) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/overlay.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    OVERLAY_JS,
                )
            }),
        )
        .route(
            "/overlay.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    OVERLAY_CSS,
                )
            }),
        )
        .route("/events", get(events))
        .layer(axum::middleware::from_fn_with_state(hosts, check_host))
        .layer(axum::middleware::map_response(harden))
        .with_state(feed)
}

async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[derive(Deserialize)]
struct Resume {
    /// The page's saved position, for a reload (an `EventSource` cannot set
    /// `Last-Event-ID` on its first request).
    since: Option<String>,
    /// Start this many events before the live edge (the page's `?replay=N`),
    /// when no position is given.
    last: Option<usize>,
}

/// `GET /events`: the SSE stream. Starts with a `hello` event whose id is
/// the position the stream starts from, then a `gap` event if the buffer no
/// longer holds all that was missed, then one `message` per event.
async fn events(
    State(feed): State<Arc<Feed>>,
    headers: HeaderMap,
    Query(resume): Query<Resume>,
) -> impl IntoResponse {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let position = last_event_id.or(resume.since.as_deref());
    let start = match (position, resume.last) {
        (None, Some(count)) => feed.start_last(count),
        _ => feed.start_after(position),
    };
    let hello = SseEvent::default()
        .event("hello")
        .id(feed.id(start))
        .retry(Duration::from_secs(1))
        .data(format!(r#"{{"replay":{}}}"#, feed.capacity));
    let state = Cursor {
        latest: feed.latest.subscribe(),
        feed,
        last: start,
        pending: VecDeque::from([hello]),
    };
    Sse::new(stream(state)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

struct Cursor {
    feed: Arc<Feed>,
    latest: watch::Receiver<u64>,
    last: u64,
    pending: VecDeque<SseEvent>,
}

fn stream(state: Cursor) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            // Marked seen before reading, so a push after the read wakes us.
            state.latest.borrow_and_update();
            let (items, missed) = state.feed.after(state.last);
            if missed > 0 {
                state.pending.push_back(
                    SseEvent::default()
                        .event("gap")
                        .data(format!(r#"{{"missed":{missed}}}"#)),
                );
            }
            for (seq, json) in items {
                state.last = seq;
                state
                    .pending
                    .push_back(SseEvent::default().id(state.feed.id(seq)).data(&*json));
            }
            if state.pending.is_empty() && state.latest.changed().await.is_err() {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_on_the_port_and_allowed_names_pass() {
        let hosts = AllowedHosts::new(8765, &["obs.lan".into(), "box:9000".into()]);
        for good in [
            "127.0.0.1:8765",
            "localhost:8765",
            "LOCALHOST:8765",
            "obs.lan:8765",
            "obs.lan",
            "box:9000",
        ] {
            assert!(hosts.allows(Some(good)), "{good}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:8765",
            "127.0.0.1:80",
            "127.0.0.1",
            "localhost",
            "",
            "box:8765",
        ] {
            assert!(!hosts.allows(Some(bad)), "{bad}");
        }
        assert!(!hosts.allows(None));
    }
}
