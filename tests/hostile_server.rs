//! A WebSocket server that stops reading, and settings at their extremes:
//! the connector neither hangs nor panics.

mod common;

use std::time::Duration;

use common::*;
use tokio::net::TcpSocket;
use vklive_pubsub::emulator::EmulatorConfig;
use vklive_pubsub::{Authorization, Client, CloseReason, Event};

/// A WebSocket server (tokio-tungstenite) that completes the handshake and
/// then never reads again, with a small receive buffer so that the client's
/// writes soon block. Returns its URL and a receiver told of each
/// accepted WebSocket.
async fn server_that_stops_reading() -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(16).unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(websocket) = tokio_tungstenite::accept_async(stream).await {
                held.push(websocket); // kept open, never read
                let _ = accepted_tx.send(());
            }
        }
    });
    (format!("ws://{address}/connection/websocket"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_while_the_server_has_stopped_reading() {
    let emulator = start(EmulatorConfig::default()).await;
    emulator.add_app("app", "app-secret");
    // Enough subscribes (about 6 MB of frames) to fill every buffer on the
    // way. An application asks for no subscription tokens, so the names may
    // be long.
    let channels = (0..600).map(|id| format!("api-channel-chat:{id}-{}", "x".repeat(10_000)));
    let (url, mut accepted) = server_that_stops_reading().await;
    let (client, mut events) = Client::builder(Authorization::app("app", "app-secret"))
        .api_url(emulator.api_url())
        .ws_url(url)
        .channels(channels)
        .spawn()
        .unwrap();
    within(accepted.recv()).await.expect("the server runs");
    within(client.close()).await.expect("close answered");
    let closed = wait_for_event(&mut events, |event| matches!(event, Event::Closed { .. })).await;
    assert!(matches!(
        closed,
        Event::Closed {
            reason: CloseReason::Requested
        }
    ));
}

#[tokio::test]
async fn extreme_settings_are_clamped_and_the_stream_still_ends_with_closed() {
    let emulator = start(EmulatorConfig::default()).await;
    let (client, mut events) = connect(
        builder(&emulator)
            .channel("api-channel-chat:1")
            .ping_margin(Duration::MAX)
            .command_timeout(Duration::MAX)
            .request_timeout(Duration::MAX)
            .backoff(Duration::MAX, Duration::MAX)
            .delivery_budget(usize::MAX),
    )
    .await;
    wait_subscribed(&mut events, &["api-channel-chat:1"]).await;
    emulator.publish("api-channel-chat:1", chat(1, "still works"));
    let delivered = publications(&mut events, 1).await;
    assert_eq!(chat_id(&delivered[0]), Some(1));
    within(client.close()).await.expect("close answered");
    wait_for_event(&mut events, |event| matches!(event, Event::Closed { .. })).await;
}

/// A buffer that a tracing subscriber writes into.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_plaintext_websocket_url_is_warned_about_once_without_its_query() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // The API is on loopback (nothing listens there): the WebSocket URL is
    // never dialled, only checked.
    let ws_url = "ws://pubsub.example.com/connection/websocket?token=query-secret";
    for _ in 0..2 {
        let (_client, _events) = Client::with_user_token("access-secret")
            .api_url("http://127.0.0.1:9")
            .ws_url(ws_url)
            .spawn()
            .unwrap();
    }
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("plaintext"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("ws://pubsub.example.com"), "{text}");
    assert!(!text.contains("query-secret") && !text.contains("access-secret"));
}
