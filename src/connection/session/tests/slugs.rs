//! VK channels followed by slug.

use super::*;
use crate::event::ChannelKey;

fn resolution_asked(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|action| match action {
        Action::ResolveChannel { slug } => Some(&**slug),
        _ => None,
    })
}

fn vk_channels() -> WebSocketChannels {
    serde_json::from_value(json!({
        "chat": "api-channel-chat:7", "info": "api-channel-info:7",
        "private_chat": "api-channel-private-chat:7", "private_info": "api-channel-private-info:7"
    }))
    .unwrap()
}

#[test]
fn a_followed_slug_subscribes_its_public_channels_and_the_granted_private_ones() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session.handle_command(
        h.now,
        Command::Follow {
            slug: "streamer.tv.".into(),
            skip: Vec::new(),
        },
    );
    assert_eq!(resolution_asked(&h.actions()), Some("streamer.tv."));
    let granted = HashSet::from(["api-channel-private-chat:7".to_owned()]);
    h.session.handle_resolved(
        h.now,
        "streamer.tv.",
        Ok(Resolved {
            channels: vk_channels(),
            granted,
        }),
    );
    let actions = h.actions();
    let [Action::Discovered(discovered)] = &actions[..] else {
        panic!("{actions:?}")
    };
    let mut discovered = discovered.clone();
    discovered.sort();
    // The public chat is followed by slug: filled in from REST after a loss.
    assert_eq!(
        discovered,
        [
            (
                "api-channel-chat:7".to_owned(),
                Some("streamer.tv.".to_owned())
            ),
            ("api-channel-info:7".to_owned(), None),
            ("api-channel-private-chat:7".to_owned(), None),
        ]
    );
}

#[test]
fn a_full_connection_hands_the_refused_channel_back_instead_of_failing_it() {
    let mut h = Harness::new(&[(CHAT, Some("slug")), (INFO, None)]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    let chat_id = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .unwrap()["id"]
        .clone();
    h.reply(json!({"id": chat_id, "error": {"code": 106, "message": "limit exceeded"}}));
    let actions = h.actions();
    assert!(actions.iter().any(|a| matches!(a, Action::Refused { channel, chat_slug } if channel == CHAT && chat_slug.as_deref() == Some("slug"))), "{actions:?}");
    assert!(
        !h.events()
            .iter()
            .any(|e| matches!(e, Event::SubscriptionFailed { .. }))
    );
    assert_eq!(h.session.channel_counts(), (1, 0));
}

#[test]
fn a_slug_followed_without_some_kinds_never_subscribes_those() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session.handle_command(
        h.now,
        Command::Follow {
            slug: "streamer".into(),
            skip: vec![ChannelKey::PrivateChat, ChannelKey::Info],
        },
    );
    assert_eq!(resolution_asked(&h.actions()), Some("streamer"));
    let granted = HashSet::from(["api-channel-private-chat:7".to_owned()]);
    h.session.handle_resolved(
        h.now,
        "streamer",
        Ok(Resolved {
            channels: vk_channels(),
            granted,
        }),
    );
    let actions = h.actions();
    let [Action::Discovered(discovered)] = &actions[..] else {
        panic!("{actions:?}")
    };
    // The granted private chat and the info channel are left out.
    assert_eq!(
        discovered,
        &[("api-channel-chat:7".to_owned(), Some("streamer".to_owned()))]
    );
}

#[test]
fn a_lookup_that_may_work_later_is_retried_and_an_unknown_channel_is_reported() {
    let mut h = Harness::new(&[]);
    h.session.handle_command(
        h.now,
        Command::Follow {
            slug: "streamer".into(),
            skip: Vec::new(),
        },
    );
    h.actions();
    h.session
        .handle_resolved(h.now, "streamer", Err(api_error(503)));
    let retry = h.session.slugs["streamer"].retry_at.expect("a retry");
    assert!(retry > h.now);
    h.advance(retry - h.now);
    assert_eq!(resolution_asked(&h.actions()), Some("streamer"));
    h.session
        .handle_resolved(h.now, "streamer", Err(api_error(404)));
    let events = h.events();
    assert!(events.iter().any(|e| matches!(e, Event::SubscriptionFailed { channel, code: 0, .. } if channel == "streamer")), "{events:?}");
}

#[test]
fn a_channel_wanted_before_the_connect_reply_is_subscribed_on_that_link() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.session
        .handle_subscribe_burst(vec![(CHAT.to_owned(), None)]);
    let actions = h.actions();
    let [
        Action::FetchChannelTokens {
            attempt, channels, ..
        },
    ] = &actions[..]
    else {
        panic!("{actions:?}")
    };
    h.session.handle_channel_tokens(
        h.now,
        *attempt,
        Purpose::Subscribe,
        channels.clone(),
        Ok(HashMap::new()),
    );
    let sent = h.sent();
    assert_eq!(sent[0]["subscribe"]["channel"], CHAT);
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.reply(json!({"id": sent[0]["id"], "subscribe": {}}));
    assert_eq!(recovery_of(&h.events(), CHAT), Some(Recovery::NotRequested));
}
