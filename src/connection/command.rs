//! What the caller asks of the connection.

/// What the caller asks of the session.
#[derive(Debug)]
pub(crate) enum Command {
    /// Subscribe `channel`; `chat_slug` names the VK channel whose public
    /// chat it is, so that missed chat can be filled in from REST.
    Subscribe {
        channel: String,
        chat_slug: Option<String>,
    },
    /// Follow the VK channel `slug` (already checked by
    /// [`auth::channel_slug`](crate::auth::channel_slug)): resolve its
    /// pubsub channels and subscribe the public ones and the private ones a
    /// token is granted for.
    Follow {
        slug: String,
        /// The kinds of the VK channel's pubsub channels to leave out.
        skip: Vec<crate::event::ChannelKey>,
    },
    Unsubscribe(String),
    Close,
}

/// What a [`Client`](crate::Client) sends the actor.
#[derive(Debug)]
pub(crate) enum Order {
    Command(Command),
    /// Close, and answer once the stream has its final event.
    Close(tokio::sync::oneshot::Sender<()>),
    /// Answer with the pool's state.
    Snapshot(tokio::sync::oneshot::Sender<crate::delivery::PoolState>),
}
