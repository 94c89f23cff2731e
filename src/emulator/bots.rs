//! What bots use: chat send, reward demand accept/reject, `GET /v1/token`,
//! `GET /v1/current_user`, and the OAuth authorization page and code grant.
//!
//! | route | rules |
//! |---|---|
//! | `POST /v1/chat/message/send?channel_url=&stream_id=` | user token (app: 403), scope `chat:message:send` when the token has a scope list; unknown channel 404; a user forbidden to write ([`Emulator::forbid_chat`](super::Emulator::forbid_chat)) 403; no `stream_id` 400 `invalid_param`; a `stream_id` that is not the live stream's (stale, or the channel is offline) 404 `not_found`; a bad body 400 `invalid_param`; text longer than `chat_max_length` 400 `message_too_long`; a user's second message in a channel within `chat_min_interval` 400 `send_too_fast`; the same parts as the user's previous message there 400 `same_message`. Otherwise `{}`, and a `channel_chat_message_send` is published into the channel's chat as that user. |
//! | `POST /v1/channel_point/reward/demand/{accept,reject}` | user token, scope `channel:points:rewards:demands`; body `{"demands":[{"id":N}]}`; a demand the emulator never published 404; a demand of another user's channel 403; one already decided 400. All or nothing. |
//! | `GET /v1/token` | `{"data":{"expired_at":<unix s or null>,"type":"user"}}` (`"app"` for Basic credentials) |
//! | `GET /v1/current_user` | `{"data":{"user":{"id","nick",…},"channel":{"url"}|null}}` |
//! | `GET /app/oauth2/authorize` | registered `client_id`, a `redirect_uri`, `response_type=code`, documented scopes; redirects (302) to `redirect_uri?code=…&state=…` as the authorizing user, or with `error=…` |

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use super::clock::unix_now;
use super::http::{
    authorization, begin, forbidden, invalid_param, not_found, query_param, unauthorized, vk_error,
};
use super::names::ChannelNames;
use super::payloads::{DemoUser, chat_message_send};
use super::random::random_string;
use super::state::{AuthCode, Caller, DemandDecision, LastSent, Shared};

/// The documented OAuth scopes (vk-devapi.md §2).
const SCOPES: [&str; 8] = [
    "channel:credentials",
    "channel:stream:settings",
    "channel:roles",
    "channel:points",
    "channel:points:rewards",
    "channel:points:rewards:demands",
    "chat:settings",
    "chat:message:send",
];

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Chat messages sent over REST get ids from here up.
const FIRST_SENT_MESSAGE_ID: i64 = 1_500_000_000;

fn bad_request(code: &str, description: &str) -> Response {
    vk_error(StatusCode::BAD_REQUEST, code, description)
}

fn missing_scope(scope: &str) -> Response {
    vk_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        &format!("The token lacks the scope {scope}"),
    )
}

/// Checks the parts of a chat send and returns them as sent, plus the
/// message's text for the length rule. Every part is an object with exactly
/// one documented key and its documented field.
fn parse_parts(body: &[u8]) -> Result<Vec<Value>, String> {
    let body: Value = serde_json::from_slice(body).map_err(|_| String::from("Body is not JSON"))?;
    let Some(parts) = body["parts"].as_array() else {
        return Err(String::from("Parameter parts is required"));
    };
    if parts.is_empty() {
        return Err(String::from("Message is empty"));
    }
    for part in parts {
        let Some(object) = part.as_object().filter(|object| object.len() == 1) else {
            return Err(String::from("A part must have exactly one key"));
        };
        let valid = match object.iter().next() {
            Some((key, inner)) => match key.as_str() {
                "text" => inner["content"].is_string(),
                "mention" => inner["id"].is_u64(),
                "smile" => inner["id"].is_string() || inner["id"].is_u64(),
                "link" => inner["url"].as_str().is_some_and(|url| !url.is_empty()),
                _ => false,
            },
            None => false,
        };
        if !valid {
            return Err(format!("Invalid part {part}"));
        }
    }
    Ok(parts.clone())
}

/// The parts as VK would publish them: mentions get the nick, links their
/// visible text, smiles a name.
fn published_parts(parts: &[Value], nick_of: impl Fn(u64) -> Option<String>) -> Vec<Value> {
    parts
        .iter()
        .map(|part| {
            let mut part = part.clone();
            if let Some(mention) = part.get_mut("mention") {
                let nick = mention["id"]
                    .as_u64()
                    .and_then(&nick_of)
                    .unwrap_or_default();
                mention["nick"] = json!(nick);
            } else if let Some(link) = part.get_mut("link") {
                if link.get("content").is_none() {
                    link["content"] = link["url"].clone();
                }
            } else if let Some(smile) = part.get_mut("smile")
                && smile.get("name").is_none()
            {
                smile["name"] = json!(smile["id"].as_str().unwrap_or("smile"));
            }
            part
        })
        .collect()
}

/// `POST /v1/chat/message/send?channel_url=&stream_id=`.
pub(crate) async fn chat_send(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let mut state = shared.lock();
    let (user_id, token) = match state.authenticate(authorization(&headers)) {
        Some(Caller::User {
            user_id,
            access_token,
        }) => (user_id, access_token),
        Some(Caller::App { .. }) => return forbidden(),
        None => return unauthorized(),
    };
    if !state.has_scope(&token, "chat:message:send") {
        return missing_scope("chat:message:send");
    }
    let Some(slug) = query_param(&uri, "channel_url").filter(|s| !s.is_empty()) else {
        return invalid_param("Parameter channel_url is required");
    };
    let Some(channel) = state.channel_view(&slug) else {
        return not_found("Channel not found");
    };
    if state.bots.forbidden.contains(&(slug.clone(), user_id)) {
        return forbidden();
    }
    let Some(stream_id) = query_param(&uri, "stream_id").filter(|s| !s.is_empty()) else {
        return invalid_param("Parameter stream_id is required");
    };
    if channel.live_stream_id.as_deref() != Some(stream_id.as_str()) {
        return not_found("Stream not found");
    }
    let parts = match parse_parts(&body) {
        Ok(parts) => parts,
        Err(description) => return invalid_param(&description),
    };
    let published = published_parts(&parts, |id| state.user_nick(id));
    let typed: Vec<crate::event::Part> =
        serde_json::from_value(Value::Array(published.clone())).unwrap_or_default();
    if crate::event::plain_text(&typed).chars().count() > state.config.chat_max_length {
        return bad_request("message_too_long", "Text too long");
    }
    let now = Instant::now();
    let key = (user_id, slug.clone());
    if let Some(last) = state.bots.last_sent.get(&key) {
        if now.saturating_duration_since(last.at) < state.config.chat_min_interval {
            return bad_request("send_too_fast", "Sending messages too fast");
        }
        if last.parts == parts {
            return bad_request("same_message", "Message is the same");
        }
    }
    let mut author = DemoUser::new(user_id, &state.user_nick(user_id).unwrap_or_default());
    author.is_owner = user_id == channel.id;
    author.is_moderator = author.is_owner;
    state.bots.sent += 1;
    let id = FIRST_SENT_MESSAGE_ID + state.bots.sent;
    let payload = chat_message_send(id, unix_now(), &author, published);
    state.publish(&ChannelNames::for_channel_id(channel.id).chat, &payload);
    state
        .bots
        .last_sent
        .insert(key, LastSent { at: now, parts });
    Json(json!({})).into_response()
}

/// `POST /v1/channel_point/reward/demand/accept`.
pub(crate) async fn demand_accept(
    shared: AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(shared, method, uri, headers, body, DemandDecision::Accepted).await
}

/// `POST /v1/channel_point/reward/demand/reject`.
pub(crate) async fn demand_reject(
    shared: AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    decide(shared, method, uri, headers, body, DemandDecision::Rejected).await
}

async fn decide(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    decision: DemandDecision,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let mut state = shared.lock();
    let (user_id, token) = match state.authenticate(authorization(&headers)) {
        Some(Caller::User {
            user_id,
            access_token,
        }) => (user_id, access_token),
        Some(Caller::App { .. }) => return forbidden(),
        None => return unauthorized(),
    };
    if !state.has_scope(&token, "channel:points:rewards:demands") {
        return missing_scope("channel:points:rewards:demands");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let ids: Option<Vec<i64>> = body["demands"]
        .as_array()
        .filter(|demands| !demands.is_empty())
        .and_then(|demands| demands.iter().map(|d| d["id"].as_i64()).collect());
    let Some(ids) = ids else {
        return invalid_param("Parameter demands is required: [{\"id\":N}]");
    };
    for id in &ids {
        match state.bots.demands.get(id) {
            None => return not_found("Demand not found"),
            Some((channel_id, _)) if *channel_id != user_id => return forbidden(),
            Some((_, Some(_))) => return invalid_param("Demand is already processed"),
            Some(_) => {}
        }
    }
    for id in ids {
        if let Some((_, slot)) = state.bots.demands.get_mut(&id) {
            *slot = Some(decision);
        }
        state.bots.decisions.push((id, decision));
    }
    Json(json!({})).into_response()
}

/// `GET /v1/token`.
pub(crate) async fn token_info(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let state = shared.lock();
    let data = match state.authenticate(authorization(&headers)) {
        Some(Caller::User { access_token, .. }) => json!({
            "expired_at": state.access_token_expiry(&access_token),
            "type": "user",
        }),
        Some(Caller::App { .. }) => json!({"expired_at": null, "type": "app"}),
        None => return unauthorized(),
    };
    Json(json!({ "data": data })).into_response()
}

/// `GET /v1/current_user`.
pub(crate) async fn current_user(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let state = shared.lock();
    let user_id = match state.authenticate(authorization(&headers)) {
        Some(Caller::User { user_id, .. }) => user_id,
        Some(Caller::App { .. }) => return forbidden(),
        None => return unauthorized(),
    };
    let slug = state.channel_slug_of(user_id);
    let channel = slug.as_ref().map(|url| json!({ "url": url }));
    Json(json!({"data": {
        "user": {
            "id": user_id,
            "nick": state.user_nick(user_id).unwrap_or_default(),
            "avatar_url": format!("https://images.emulator.invalid/avatar/{user_id}.png"),
            "is_streamer": slug.is_some(),
        },
        "channel": channel,
        "channels": channel.iter().collect::<Vec<_>>(),
    }}))
    .into_response()
}

/// `GET /app/oauth2/authorize`: the consent page, approved at once.
pub(crate) async fn authorize(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
) -> Response {
    if let Some(response) = begin(&shared, &method, &uri).await {
        return response;
    }
    let field = |name: &str| query_param(&uri, name).filter(|value| !value.is_empty());
    let mut state = shared.lock();
    let Some(client_id) = field("client_id").filter(|id| state.app_known(id)) else {
        return bad_request("invalid_client", "Unknown client_id");
    };
    let Some(redirect_uri) = field("redirect_uri") else {
        return bad_request("invalid_request", "Parameter redirect_uri is required");
    };
    let Ok(mut redirect) = url::Url::parse(&redirect_uri) else {
        return bad_request("invalid_request", "Parameter redirect_uri is not a URL");
    };
    {
        let mut query = redirect.query_pairs_mut();
        let scopes: Vec<String> = field("scope")
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|scope| !scope.is_empty())
            .map(str::to_owned)
            .collect();
        let user = state.bots.authorizing_user.or(state.first_user());
        if field("response_type").as_deref() != Some("code") {
            query.append_pair("error", "unsupported_response_type");
        } else if let Some(unknown) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            query.append_pair("error", "invalid_scope");
            query.append_pair("error_description", &format!("Unknown scope {unknown}"));
        } else if let Some(user_id) = user {
            let code = format!("emu-code-{}", random_string(24));
            state.bots.codes.insert(
                code.clone(),
                AuthCode {
                    client_id,
                    redirect_uri: redirect_uri.clone(),
                    user_id,
                    scopes,
                    expires_at: Instant::now() + CODE_LIFETIME,
                },
            );
            query.append_pair("code", &code);
        } else {
            query.append_pair("error", "access_denied");
        }
        if let Some(state_value) = field("state") {
            query.append_pair("state", &state_value);
        }
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, redirect.to_string())],
    )
        .into_response()
}

/// `grant_type=authorization_code` at the token endpoint: the answer, or a
/// 400 `invalid_grant`.
pub(crate) fn exchange_code(
    shared: &Shared,
    client_id: &str,
    code: &str,
    redirect_uri: Option<&str>,
) -> Response {
    let mut state = shared.lock();
    let grant = state.bots.codes.remove(code).filter(|grant| {
        grant.client_id == client_id
            && redirect_uri == Some(grant.redirect_uri.as_str())
            && grant.expires_at > Instant::now()
    });
    let Some(grant) = grant else {
        return bad_request("invalid_grant", "Authorization code is invalid");
    };
    let scope = grant.scopes.join(",");
    let (access_token, refresh_token, expires_in) =
        state.issue_user_tokens(grant.user_id, client_id, grant.scopes);
    Json(json!({
        "access_token": access_token,
        "refresh_token": refresh_token,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": scope,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_parts_must_be_documented_and_one_keyed() {
        assert!(
            parse_parts(br#"{"parts":[{"text":{"content":"hi"}},{"mention":{"id":5}}]}"#).is_ok()
        );
        for body in [
            &br#"{"parts":[]}"#[..],
            br#"{}"#,
            br#"not json"#,
            br#"{"parts":[{"text":{"content":"a"},"mention":{"id":1}}]}"#,
            br#"{"parts":[{"poll":{"id":1}}]}"#,
            br#"{"parts":[{"link":{"url":""}}]}"#,
        ] {
            assert!(
                parse_parts(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn published_mentions_carry_the_nick() {
        let parts = vec![
            json!({"mention": {"id": 5}}),
            json!({"link": {"url": "https://e.org"}}),
        ];
        let published = published_parts(&parts, |id| (id == 5).then(|| String::from("five")));
        assert_eq!(published[0], json!({"mention": {"id": 5, "nick": "five"}}));
        assert_eq!(published[1]["link"]["content"], "https://e.org");
    }
}
