//! The whole HTTP surface, assembled in one place: the VK REST methods and
//! OAuth ([`rest`](super::rest), [`bots`](super::bots)), the pubsub
//! WebSocket ([`pubsub`](super::pubsub)), the control API
//! ([`control`](super::control)), unknown paths, and the record of REST
//! calls around them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use super::state::Shared;
use super::{bots, call_log, control, pubsub, rest};

/// The router of an emulator listening on `addr`.
pub(crate) fn router(shared: Arc<Shared>, addr: SocketAddr) -> Router {
    Router::new()
        .route("/v1/websocket/token", get(rest::websocket_token))
        .route(
            "/v1/websocket/subscription_token",
            get(rest::subscription_token),
        )
        .route("/v1/channel", get(rest::channel))
        .route("/v1/chat/messages", get(rest::chat_messages))
        .route("/v1/chat/message/send", post(bots::chat_send))
        .route(
            "/v1/channel_point/reward/demand/accept",
            post(bots::demand_accept),
        )
        .route(
            "/v1/channel_point/reward/demand/reject",
            post(bots::demand_reject),
        )
        .route("/v1/token", get(bots::token_info))
        .route("/v1/current_user", get(bots::current_user))
        .route("/app/oauth2/authorize", get(bots::authorize))
        .route("/oauth/server/token", post(rest::oauth_token))
        .route("/connection/websocket", get(pubsub::upgrade))
        .merge(control::routes(addr))
        .fallback(rest::unknown_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&shared),
            call_log::record,
        ))
        .with_state(shared)
}
