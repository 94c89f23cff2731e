//! Issue 9, item 1: a REST answer is read with a cap
//! (`auth::MAX_RESPONSE_BYTES`), so a server that answers `200` with an
//! endless body gets an error instead of all the client's memory.
//! Issue 24, item 7: the OAuth code exchange reads its answer with the same
//! cap, and no token request follows a redirect (a 307 would send the code or
//! the refresh token, and the client secret, to wherever it points).
//! Issue 24, item 2: a server's `Retry-After` on a chat send, however large,
//! never panics the client, and a 429 is retried as `send_too_fast` is.
//!
//! The hostile server is axum on 127.0.0.1. Its body is endless in spirit;
//! it stops after 1 GiB only so that a client without the cap fails this test
//! instead of exhausting the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use futures::StreamExt as _;
use vklive_pubsub::auth::{
    ChatSettings, MAX_RESPONSE_BYTES, MAX_RETRY_AFTER, OAuthApp, OAuthRefresher, TokenPair, VkApi,
};
use vklive_pubsub::{Authorization, Error, ErrorKind, Secret};

/// What the hostile server sends at most (a safety net, see above).
const SAFETY_NET: u64 = 1 << 30;
/// Generous: the cap, plus what socket buffers and HTTP framing hold.
const SENT_AT_MOST: u64 = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// An endless body that starts like a token answer, and how much of it went out.
fn endless(sent: Arc<AtomicU64>) -> Body {
    let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
    let start = Bytes::from_static(br#"{"data":{"token":""#);
    let chunks = futures::stream::iter(std::iter::once(start).chain(std::iter::repeat(chunk)))
        .take_while(move |chunk| {
            let total = sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            std::future::ready(total < SAFETY_NET)
        })
        .map(Ok::<Bytes, std::io::Error>);
    Body::from_stream(chunks)
}

/// A server answering both token endpoints with an endless `200`.
async fn hostile_server(sent: Arc<AtomicU64>) -> String {
    let for_get = sent.clone();
    serve(
        Router::new()
            .route(
                "/v1/websocket/token",
                get(move || std::future::ready(endless(for_get.clone()))),
            )
            .route(
                "/oauth/server/token",
                post(move || std::future::ready(endless(sent.clone()))),
            ),
    )
    .await
}

/// Serves `app` on 127.0.0.1; its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn assert_too_large(error: &Error) {
    assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
    assert!(error.is_retryable());
    let message = error.to_string();
    assert!(
        message.contains(&format!("larger than {MAX_RESPONSE_BYTES} bytes")),
        "{message}"
    );
}

#[tokio::test]
async fn an_endless_api_answer_is_cut_at_the_cap() {
    let sent = Arc::new(AtomicU64::new(0));
    let base = hostile_server(sent.clone()).await;
    let api = VkApi::new(&base, Arc::new(Authorization::user("t")))
        .unwrap()
        .with_request_timeout(TIMEOUT * 2)
        .unwrap();
    let answer = tokio::time::timeout(TIMEOUT, api.connection_token())
        .await
        .expect("no answer in time");
    assert_too_large(&answer.unwrap_err());
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < SENT_AT_MOST, "the client read on: {sent} bytes sent");
}

#[tokio::test]
async fn an_endless_oauth_answer_is_cut_at_the_cap() {
    let sent = Arc::new(AtomicU64::new(0));
    let base = hostile_server(sent.clone()).await;
    let expired = TokenPair {
        access_token: Secret::new("old"),
        refresh_token: Secret::new("refresh"),
        expires_at: Some(SystemTime::UNIX_EPOCH),
    };
    let refresher = OAuthRefresher::new("id", "secret", expired)
        .token_url(format!("{base}/oauth/server/token"));
    let answer = tokio::time::timeout(TIMEOUT, async {
        use vklive_pubsub::Credentials as _;
        refresher.authorization().await
    })
    .await
    .expect("no answer in time");
    assert_too_large(&answer.unwrap_err());
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < SENT_AT_MOST, "the client read on: {sent} bytes sent");
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_reading() {
    // A body just over the cap, with its `Content-Length`.
    let app = Router::new().route(
        "/v1/websocket/token",
        get(|| std::future::ready(Body::from(vec![b' '; MAX_RESPONSE_BYTES + 1]))),
    );
    let base = serve(app).await;
    let api = VkApi::new(&base, Arc::new(Authorization::user("t"))).unwrap();
    let answer = tokio::time::timeout(TIMEOUT, api.connection_token())
        .await
        .expect("no answer in time");
    assert_too_large(&answer.unwrap_err());
}

/// A DevAPI with a live stream whose chat send refuses the first `refusals`
/// sends with `status`, `error` and `Retry-After: retry_after` (when given),
/// then accepts; how many sends it saw.
async fn refusing_chat(
    refusals: u64,
    status: StatusCode,
    error: &'static str,
    retry_after: Option<&'static str>,
) -> (String, Arc<AtomicU64>) {
    let sends = Arc::new(AtomicU64::new(0));
    let counted = sends.clone();
    let app = Router::new()
        .route(
            "/v1/channel",
            get(|| async {
                axum::Json(
                    serde_json::json!({"data": {"channel": {"id": 1, "url": "c"},
                    "stream": {"id": "s1", "started_at": 1_700_000_000, "ended_at": null}}}),
                )
            }),
        )
        .route(
            "/v1/chat/message/send",
            post(move || {
                let seen = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if seen >= refusals {
                        return (StatusCode::OK, HeaderMap::new(), String::from("{}"));
                    }
                    let mut headers = HeaderMap::new();
                    if let Some(value) = retry_after {
                        headers.insert(header::RETRY_AFTER, value.parse().unwrap());
                    }
                    let body =
                        serde_json::json!({"error": error, "error_description": "slow down"});
                    (status, headers, body.to_string())
                }
            }),
        );
    (serve(app).await, sends)
}

fn chat_api(base: &str, retry_too_fast_for: Duration) -> VkApi {
    VkApi::new(base, Arc::new(Authorization::user("t")))
        .unwrap()
        .with_chat_settings(ChatSettings {
            interval: Duration::ZERO,
            burst: 1,
            retry_too_fast_for,
        })
}

/// `Retry-After: 18446744073709551615` on `send_too_fast` (once: overflow
/// when added to the clock) is capped at five minutes, past the retry bound,
/// so the send returns the typed error at once instead of panicking.
#[tokio::test]
async fn an_absurd_retry_after_on_send_too_fast_is_capped_not_a_panic() {
    let (base, sends) = refusing_chat(
        u64::MAX,
        StatusCode::BAD_REQUEST,
        "send_too_fast",
        Some("18446744073709551615"),
    )
    .await;
    let api = chat_api(&base, Duration::from_secs(10));
    let answer = tokio::time::timeout(TIMEOUT, api.send_message("c", "hi"))
        .await
        .expect("no answer in time");
    let error = answer.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SendTooFast, "{error}");
    assert_eq!(error.retry_after(), Some(MAX_RETRY_AFTER));
    assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(300));
    assert_eq!(sends.load(Ordering::SeqCst), 1);
}

/// A retry bound of `Duration::MAX` (no bound) cannot overflow the clock:
/// `send_too_fast` is retried until the send goes through.
#[tokio::test]
async fn an_unbounded_retry_on_send_too_fast_does_not_overflow() {
    let (base, sends) = refusing_chat(2, StatusCode::BAD_REQUEST, "send_too_fast", Some("0")).await;
    let api = chat_api(&base, Duration::MAX);
    tokio::time::timeout(TIMEOUT, api.send_message("c", "hi"))
        .await
        .expect("no answer in time")
        .expect("the send must go through after the refusals");
    assert_eq!(sends.load(Ordering::SeqCst), 3);
}

/// A 429 with `Retry-After` is waited out and the send repeated, as
/// `send_too_fast` is; without a retry bound it comes back as `RateLimited`
/// with the server's wait.
#[tokio::test]
async fn a_429_with_retry_after_is_retried_like_send_too_fast() {
    let (base, sends) = refusing_chat(
        1,
        StatusCode::TOO_MANY_REQUESTS,
        "ratelimit_exceeded",
        Some("1"),
    )
    .await;
    let api = chat_api(&base, Duration::from_secs(5));
    tokio::time::timeout(TIMEOUT, api.send_message("c", "hi"))
        .await
        .expect("no answer in time")
        .expect("the 429 must be retried");
    assert_eq!(sends.load(Ordering::SeqCst), 2);

    let (base, _) = refusing_chat(
        1,
        StatusCode::TOO_MANY_REQUESTS,
        "ratelimit_exceeded",
        Some("18446744073709551615"),
    )
    .await;
    let error = tokio::time::timeout(
        TIMEOUT,
        chat_api(&base, Duration::ZERO).send_message("c", "hi"),
    )
    .await
    .expect("no answer in time")
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.retry_after(), Some(MAX_RETRY_AFTER));
}

#[tokio::test]
async fn an_endless_code_exchange_answer_is_cut_at_the_cap() {
    let sent = Arc::new(AtomicU64::new(0));
    let base = hostile_server(sent.clone()).await;
    let app = OAuthApp::new("id", "secret", "http://127.0.0.1:9/cb")
        .token_url(format!("{base}/oauth/server/token"));
    let answer = tokio::time::timeout(TIMEOUT, app.exchange_code(&Secret::new("code")))
        .await
        .expect("no answer in time");
    assert_too_large(&answer.unwrap_err());
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < SENT_AT_MOST, "the client read on: {sent} bytes sent");
}

/// A token endpoint answering `307` to another server, and that server,
/// counting what reaches it.
async fn redirecting_token_endpoint() -> (String, Arc<AtomicU64>) {
    let stolen = Arc::new(AtomicU64::new(0));
    let counter = stolen.clone();
    let thief = serve(Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(axum::Json(serde_json::json!({"access_token": "stolen"})))
    }))
    .await;
    let elsewhere = format!("{thief}/collect");
    let redirecting = serve(Router::new().route(
        "/oauth/server/token",
        post(move || {
            let location = elsewhere.clone();
            std::future::ready((
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location)],
            ))
        }),
    ))
    .await;
    (format!("{redirecting}/oauth/server/token"), stolen)
}

#[tokio::test]
async fn the_code_exchange_does_not_follow_a_redirect() {
    let (token_url, stolen) = redirecting_token_endpoint().await;
    let app = OAuthApp::new("id", "secret", "http://127.0.0.1:9/cb").token_url(token_url);
    let answer = tokio::time::timeout(TIMEOUT, app.exchange_code(&Secret::new("the-code")))
        .await
        .expect("no answer in time");
    let error = answer.expect_err("a redirect is not a token");
    assert_eq!(error.status(), Some(307), "{error}");
    assert!(!error.is_retryable());
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "the code went elsewhere");
}

#[tokio::test]
async fn the_refresh_does_not_follow_a_redirect() {
    let (token_url, stolen) = redirecting_token_endpoint().await;
    let expired = TokenPair {
        access_token: Secret::new("old"),
        refresh_token: Secret::new("refresh"),
        expires_at: Some(SystemTime::UNIX_EPOCH),
    };
    let refresher = OAuthRefresher::new("id", "secret", expired).token_url(token_url);
    let answer = tokio::time::timeout(TIMEOUT, async {
        use vklive_pubsub::Credentials as _;
        refresher.authorization().await
    })
    .await
    .expect("no answer in time");
    let error = answer.expect_err("a redirect is not a token");
    assert_eq!(error.status(), Some(307), "{error}");
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the refresh token went elsewhere"
    );
}
