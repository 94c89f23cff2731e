//! What the emulator reports to a test: the commands and REST calls it
//! received, its connections, what a blast queued.

use crate::protocol::Command;

/// One command the server received, in arrival order.
#[derive(Debug, Clone)]
pub struct ReceivedCommand {
    /// Id of the WebSocket connection (1, 2, 3, … in accept order).
    pub connection: u64,
    /// The decoded command (a pong is `Command::default()`).
    pub command: Command,
}

/// One REST call the emulator answered (never with credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCall {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path, e.g. `/v1/websocket/token`.
    pub path: String,
    /// Raw query string without `?` (empty when there is none).
    pub query: String,
    /// The request body as text, e.g. `{"parts":[…]}` of a chat send. For
    /// the OAuth endpoints, the form with the values of `code`,
    /// `refresh_token` and `client_secret` replaced by `[redacted]`.
    pub body: String,
    /// The HTTP status answered (`None` while the call is in progress).
    pub status: Option<u16>,
    /// The VK `error` code answered, e.g. `send_too_fast`.
    pub error: Option<String>,
}

impl RestCall {
    /// A query parameter, decoded.
    ///
    /// ```
    /// # use vklive_pubsub::emulator::RestCall;
    /// let call = RestCall { method: "POST".into(), path: "/v1/chat/message/send".into(),
    ///     query: "channel_url=demo&stream_id=s%201".into(), body: String::new(), status: None, error: None };
    /// assert_eq!(call.query_param("stream_id").as_deref(), Some("s 1"));
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    ///
    /// ```
    /// # use vklive_pubsub::emulator::RestCall;
    /// let call = RestCall { method: "POST".into(), path: "/v1/channel_point/reward/demand/accept".into(),
    ///     query: String::new(), body: r#"{"demands":[{"id":1}]}"#.into(), status: Some(200), error: None };
    /// assert_eq!(call.json()["demands"][0]["id"], 1);
    /// ```
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// What [`Emulator::blast`](super::Emulator::blast) queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlastReport {
    /// Offset of the first publication.
    pub first_offset: u64,
    /// Offset of the last publication (the channel's new top).
    pub last_offset: u64,
    /// Frames queued to each subscriber.
    pub frames: usize,
    /// Bytes of those frames (for one subscriber).
    pub bytes: usize,
    /// Connections the frames were queued to.
    pub subscribers: usize,
}

/// One open pubsub connection, as [`Emulator::connections`](super::Emulator::connections) lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionInfo {
    /// Its id (1, 2, 3, … in accept order), for the per-connection faults.
    pub id: u64,
    /// The user it connected as, once `connect` succeeded.
    pub user_id: Option<u64>,
    /// The app it connected as (client id), once `connect` succeeded.
    pub app: Option<String>,
    /// Its subscriptions, sorted.
    pub subscriptions: Vec<String>,
}
