//! Issue 9, item 1: a REST answer is read with a cap
//! (`auth::MAX_RESPONSE_BYTES`), so a server that answers `200` with an
//! endless body gets an error instead of all the client's memory.
//!
//! The hostile server is axum on 127.0.0.1. Its body is endless in spirit;
//! it stops after 1 GiB only so that a client without the cap fails this test
//! instead of exhausting the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use futures::StreamExt as _;
use vklive_pubsub::auth::{MAX_RESPONSE_BYTES, OAuthRefresher, TokenPair, VkApi};
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
