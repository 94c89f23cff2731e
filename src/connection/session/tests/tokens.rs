//! Tokens: refreshed before they expire, fetched again when refused.

use super::*;

#[test]
fn tokens_are_refreshed_at_eighty_percent_of_their_life() {
    let mut h = Harness::new(&[(CHAT, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25, "expires": true, "ttl": 10}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"expires": true, "ttl": 20}}));
    h.actions();
    h.frame("{}");
    h.sent();
    h.advance(Duration::from_secs(8));
    let actions = h.actions();
    let [Action::FetchConnectionToken { attempt }] = actions[..] else {
        panic!("{actions:?}")
    };
    h.session
        .handle_connection_token(h.now, attempt, Ok(secret("fresh")));
    let sent = h.sent();
    assert_eq!(sent[0]["refresh"]["token"], "fresh");
    h.reply(json!({"id": sent[0]["id"], "refresh": {"expires": true, "ttl": 10}}));
    h.frame("{}");
    h.advance(Duration::from_secs(8));
    let actions = h.actions();
    let channels = actions
        .iter()
        .find_map(|a| match a {
            Action::FetchChannelTokens {
                purpose: Purpose::Refresh,
                channels,
                ..
            } => Some(channels.clone()),
            _ => None,
        })
        .expect("a channel token refresh");
    h.session.handle_channel_tokens(
        h.now,
        attempt,
        Purpose::Refresh,
        channels,
        Ok(HashMap::from([(CHAT.to_owned(), secret("sub2"))])),
    );
    let sent = h.sent();
    let sub_refresh = sent
        .iter()
        .find(|l| l.get("sub_refresh").is_some())
        .unwrap();
    assert_eq!(sub_refresh["sub_refresh"]["token"], "sub2");
}

#[test]
fn an_expired_subscription_token_is_fetched_again_after_backoff() {
    let mut h = Harness::new(&[(CHAT, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "error": {"code": 109, "message": "token expired"}}));
    h.actions();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::FetchChannelTokens { purpose: Purpose::Resubscribe, channels, .. } if channels[0].as_ref() == CHAT)), "{actions:?}");
}

#[test]
fn temporary_subscribe_errors_retry_and_permanent_ones_fail_only_that_channel() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    let id_of = |channel: &str| {
        lines
            .iter()
            .find(|l| l["subscribe"]["channel"] == channel)
            .unwrap()["id"]
            .clone()
    };
    h.reply(json!({"id": id_of(CHAT), "error": {"code": 111, "message": "too many", "temporary": true}}));
    h.reply(json!({"id": id_of(INFO), "error": {"code": 103, "message": "permission denied"}}));
    let events = h.events();
    assert!(events.iter().any(
        |e| matches!(e, Event::SubscriptionFailed { channel, code: 103, .. } if channel == INFO)
    ));
    h.sent();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let sent = h.sent();
    assert!(
        sent.iter().any(|l| l["subscribe"]["channel"] == CHAT),
        "{sent:?}"
    );
    assert!(!sent.iter().any(|l| l["subscribe"]["channel"] == INFO));
}
