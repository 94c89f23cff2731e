//! Subscribing and unsubscribing on a running link.

use super::*;

#[test]
fn unsubscribe_pushes_below_2500_end_the_channel_and_above_resubscribe_with_recovery() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 3}));
    h.events();
    h.frame(
        &json!({"push": {"channel": INFO, "unsubscribe": {"code": 2000, "reason": "server"}}})
            .to_string(),
    );
    assert!(
        h.events().iter().any(
            |e| matches!(e, Event::Unsubscribed { channel, code: 2000, .. } if channel == INFO)
        )
    );
    h.frame(&json!({"push": {"channel": CHAT, "unsubscribe": {"code": 2500, "reason": "insufficient"}}}).to_string());
    h.sent();
    let retry = h.session.poll_timeout().unwrap();
    h.frame("{}");
    h.advance(retry - h.now);
    let sent = h.sent();
    let subscribe = sent
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .expect("resubscribed");
    assert_eq!(subscribe["subscribe"]["recover"], true);
    assert!(!sent.iter().any(|l| l["subscribe"]["channel"] == INFO));
}

#[test]
fn subscribes_while_connected_share_one_token_request_and_unsubscribe_is_sent() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session
        .handle_subscribe_burst(vec![(CHAT.into(), None), (INFO.into(), None)]);
    let actions = h.actions();
    assert!(
        matches!(&actions[..], [Action::FetchChannelTokens { channels, .. }] if channels.len() == 2)
    );
    let Action::FetchChannelTokens {
        attempt, channels, ..
    } = actions.into_iter().next().unwrap()
    else {
        unreachable!()
    };
    h.session.handle_channel_tokens(
        h.now,
        attempt,
        Purpose::Subscribe,
        channels,
        Ok(HashMap::new()),
    );
    assert_eq!(h.sent().len(), 2);
    h.session
        .handle_command(h.now, Command::Unsubscribe(CHAT.into()));
    let sent = h.sent();
    assert_eq!(sent[0]["unsubscribe"]["channel"], CHAT);
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::Unsubscribed { code: 0, .. }))
    );
}
