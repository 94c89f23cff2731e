//! Issue 24, item 10: one bad channel name never breaks the other channels.
//! A name that cannot be a pubsub channel (100 KB long, a comma, a space)
//! fails at once with `ErrorKind::InvalidChannel` naming it, where the
//! caller gave it; a request that cannot even be built is never retried.

mod common;

use std::sync::Arc;

use common::*;
use vklive_pubsub::auth::VkApi;
use vklive_pubsub::emulator::EmulatorConfig;
use vklive_pubsub::{Authorization, ErrorKind};

fn huge_name() -> String {
    format!("channel-chat:{}", "7".repeat(100_000))
}

/// The builder refuses the bad name before anything goes on the wire, with
/// an error that names it (shortened) and says how long it is.
#[tokio::test]
async fn a_huge_channel_name_fails_the_builder_at_once_naming_it() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("good", 5);
    let answer = tokio::time::timeout(
        TIMEOUT,
        builder(&emulator)
            .channel(&names.chat)
            .channel(huge_name())
            .connect(),
    )
    .await
    .expect("connect must answer in time");
    let error = answer.expect_err("a bad channel name must fail the builder");
    assert_eq!(error.kind(), ErrorKind::InvalidChannel, "{error}");
    assert!(!error.is_retryable());
    let message = error.to_string();
    assert!(message.contains("channel-chat:777"), "{message}");
    assert!(message.contains("100013 bytes"), "{message}");
    assert!(message.len() < 300, "the whole name was printed");
    assert!(
        emulator.rest_calls().is_empty(),
        "{:?}",
        emulator.rest_calls()
    );
}

/// On a running client the bad name is refused by `subscribe`, and the
/// channels already there go on.
#[tokio::test]
async fn a_bad_channel_name_on_subscribe_is_refused_and_the_others_go_on() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("good", 5);
    let (client, mut events) = connect(builder(&emulator).channel(&names.chat)).await;
    wait_subscribed(&mut events, &[&names.chat]).await;
    for bad in [
        huge_name(),
        String::from("a,b"),
        String::from("a b"),
        String::new(),
    ] {
        let error = within(client.subscribe(bad.clone())).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidChannel,
            "{bad:.40}: {error}"
        );
        let error = within(client.subscribe_chat(bad.clone(), "good"))
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::InvalidChannel,
            "{bad:.40}: {error}"
        );
    }
    within(client.subscribe(&names.info)).await.unwrap();
    wait_subscribed(&mut events, &[&names.info]).await;
    emulator.publish(
        &names.chat,
        vklive_pubsub::emulator::demo_chat_message(1, "still here"),
    );
    assert_eq!(publications(&mut events, 1).await.len(), 1);
}

/// A slug that long cannot be a VK channel: `channel_url` refuses it too.
#[tokio::test]
async fn a_huge_slug_is_refused_by_channel_url() {
    let emulator = start(EmulatorConfig::default()).await;
    let error = builder(&emulator)
        .channel_url("x".repeat(100_000))
        .spawn()
        .expect_err("a 100 KB slug must be refused");
    assert_eq!(error.kind(), ErrorKind::InvalidChannel, "{error}");
}

/// The token batch skips a name no server could have given (it gets no
/// token, as a channel without access), so the others still get theirs.
#[tokio::test]
async fn the_token_batch_skips_a_bad_name_and_serves_the_others() {
    let emulator = start(EmulatorConfig::default()).await;
    let names = emulator.add_channel("mine", USER_ID);
    let api = VkApi::new(
        &emulator.api_url(),
        Arc::new(Authorization::user(USER_TOKEN)),
    )
    .unwrap();
    let private = names.private();
    assert!(!private.is_empty());
    let mut asked = private.clone();
    asked.push(huge_name());
    let tokens = within(api.subscription_tokens(&asked)).await.unwrap();
    assert_eq!(tokens.len(), private.len(), "{:?}", tokens.keys());
    assert!(!tokens.contains_key(&huge_name()));
}

/// A request that cannot be built (its URL is longer than HTTP allows) is
/// a permanent error: retrying it cannot help.
#[tokio::test]
async fn a_request_that_cannot_be_built_is_not_retryable() {
    let emulator = start(EmulatorConfig::default()).await;
    let api = VkApi::new(
        &emulator.api_url(),
        Arc::new(Authorization::user(USER_TOKEN)),
    )
    .unwrap();
    let error = within(api.channel(&"x".repeat(100_000))).await.unwrap_err();
    assert!(!error.is_retryable(), "{:?}: {error}", error.kind());
}
