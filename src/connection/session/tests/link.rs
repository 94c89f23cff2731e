//! Connecting, pings and the watchdog, closing: the link's life.

use super::*;

#[test]
fn fetches_the_connection_token_then_channel_tokens_and_pipelines_connect_with_subscribes() {
    let mut h = Harness::new(&[(CHAT, None), (INFO, None)]);
    h.session.handle_timeout(h.now);
    let actions = h.actions();
    assert!(matches!(
        actions[..],
        [Action::FetchConnectionToken { attempt: 1 }]
    ));
    h.session
        .handle_connection_token(h.now, 1, Ok(secret("conn")));
    let actions = h.actions();
    let [Action::FetchChannelTokens { channels, .. }] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(channels.len(), 2);
    let tokens = HashMap::from([(CHAT.to_owned(), secret("sub"))]);
    h.session
        .handle_channel_tokens(h.now, 1, Purpose::Subscribe, channels.clone(), Ok(tokens));
    assert!(matches!(h.actions()[..], [Action::Dial { attempt: 1 }]));
    h.session.handle_dialed(h.now, 1, Ok(()));
    let frames = h.session.take_outgoing();
    assert_eq!(frames.len(), 1, "one frame for connect and both subscribes");
    let lines: Vec<Value> = frames[0]
        .split('\n')
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines[0]["connect"]["token"], "conn");
    let chat = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == CHAT)
        .unwrap();
    assert_eq!(chat["subscribe"]["token"], "sub");
    let info = lines
        .iter()
        .find(|l| l["subscribe"]["channel"] == INFO)
        .unwrap();
    assert!(
        info["subscribe"].get("token").is_none(),
        "no token, no field"
    );
    assert_eq!(h.session.state(), &State::Connecting);
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c1", "ping": 25, "pong": true}}));
    assert_eq!(h.session.state(), &State::Connected);
    assert!(matches!(&h.events()[..], [Event::Connected { client }] if client == "c1"));
}

#[test]
fn a_401_for_the_connection_token_finishes_at_once() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(401)));
    let actions = h.actions();
    assert!(
        matches!(finished(&actions), Some(CloseReason::Failed(e)) if e.kind() == ErrorKind::Unauthorized)
    );
    assert!(h.session.is_finished());
}

#[test]
fn a_503_for_a_token_retries_after_backoff_and_answers_for_an_old_attempt_are_ignored() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(503)));
    assert!(matches!(&h.events()[..], [Event::Disconnected { .. }]));
    let retry_at = h.session.poll_timeout().unwrap();
    assert!(retry_at >= h.now + Duration::from_millis(500));
    h.advance(retry_at - h.now);
    assert!(matches!(
        h.actions()[..],
        [Action::FetchConnectionToken { attempt: 2 }]
    ));
    // A late answer for attempt 1 changes nothing.
    h.session
        .handle_connection_token(h.now, 1, Ok(secret("old")));
    assert!(h.actions().is_empty());
}

#[test]
fn a_lost_connect_reply_gives_up_before_centrifugos_stale_timeout() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.open_link();
    let deadline = h.session.poll_timeout().unwrap();
    assert!(
        deadline - h.now < Duration::from_secs(10),
        "below the 10 s stale timeout"
    );
    h.advance(deadline - h.now);
    let actions = h.actions();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::CloseSocket { linger: false }))
    );
    assert!(finished(&actions).is_none(), "retried, not given up");
    assert!(matches!(&h.events()[..], [Event::Disconnected { .. }]));
}

#[test]
fn a_terminal_connect_error_finishes_and_a_temporary_one_retries() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(
        json!({"id": lines[0]["id"], "error": {"code": 3500, "message": "x", "temporary": true}}),
    );
    assert!(finished(&h.actions()).is_none());
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "error": {"code": 103, "message": "permission denied"}}));
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Failed(_))
    ));
}

// --- pings and the watchdog ------------------------------------------------

#[test]
fn answers_exactly_the_ping_line_and_skips_other_lines_without_an_id() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.sent();
    h.frame("{}");
    assert_eq!(h.sent(), [json!({})]);
    for line in [
        "[]",
        r#"{"foo":1}"#,
        r#"{"push":null}"#,
        r#"{"id":0}"#,
        "null",
        "{ } x",
    ] {
        h.frame(line);
        assert!(h.sent().is_empty(), "no pong for {line}");
    }
    assert!(h.session.is_open(), "odd lines end nothing");
    // A frame with a ping among other lines: one pong.
    h.frame("{\"foo\":1}\n{}\n[]");
    assert_eq!(h.sent(), [json!({})]);
}

#[test]
fn no_pong_when_the_server_does_not_ask_for_one() {
    let mut h = Harness::new(&[]);
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.frame("{}");
    assert!(h.sent().is_empty());
}

#[test]
fn a_silent_link_is_dead_after_ping_plus_margin_unless_reading_is_paused() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.actions();
    h.events();
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(35))
    );
    h.session.set_paused(h.now, true);
    h.advance(Duration::from_secs(60));
    assert!(h.session.is_open(), "our pause is not the server's silence");
    h.session.set_paused(h.now, false);
    h.advance(Duration::from_secs(34));
    assert!(h.session.is_open());
    h.advance(Duration::from_secs(1));
    assert!(!h.session.is_open());
    assert!(matches!(
        &h.events()[..],
        [Event::Disconnected { code: None, .. }]
    ));
}

#[test]
fn the_servers_ping_interval_is_clamped_so_the_watchdog_always_runs() {
    for (ping, watchdog) in [(0u64, 35u64), (4_294_967_295, 610)] {
        let mut h = Harness::new(&[]);
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": ping}}));
        assert_eq!(
            h.session.poll_timeout(),
            Some(h.now + Duration::from_secs(watchdog)),
            "ping {ping}"
        );
    }
}

#[test]
fn backoff_keeps_growing_when_the_server_closes_right_after_every_connect() {
    let mut h = Harness::new(&[]);
    for round in 1..=4 {
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        assert_eq!(h.session.failures, round, "no reset after a short link");
        h.now = h.session.poll_timeout().unwrap();
    }
    // A link that stayed up resets it.
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
    h.frame("{}");
    h.now += Duration::from_secs(31);
    h.session
        .handle_closed(h.now, Some(3001), "shutdown".into());
    assert_eq!(h.session.failures, 1);
}

#[test]
fn healthy_after_is_how_long_a_link_must_live_to_reset_the_backoff() {
    for (healthy_after, failures) in [(Duration::from_secs(60), 2), (Duration::from_secs(20), 1)] {
        let config = Config {
            healthy_after,
            ..Config::default()
        };
        let mut h = Harness::with_config(config, &[]);
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        h.now = h.session.poll_timeout().unwrap();
        let lines = h.open_link();
        h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c", "ping": 25}}));
        h.frame("{}");
        h.now += Duration::from_secs(21);
        h.frame("{}");
        h.now += Duration::from_secs(21);
        h.session
            .handle_closed(h.now, Some(3001), "shutdown".into());
        assert_eq!(
            h.session.failures, failures,
            "a link of 42 s with healthy_after {healthy_after:?}"
        );
    }
}

#[test]
fn the_configured_backoff_is_the_wait_before_the_next_attempt_or_what_the_server_asks() {
    let config = Config {
        backoff: Backoff::new(Duration::from_secs(7), Duration::from_secs(7)),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(CHAT, None)]);
    h.session.handle_timeout(h.now);
    h.actions();
    h.session
        .handle_connection_token(h.now, 1, Err(api_error(503)));
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(7))
    );
    h.advance(Duration::from_secs(7));
    h.actions();
    let asked = api_error(429).with_retry_after(Some(Duration::from_secs(30)));
    h.session.handle_connection_token(h.now, 2, Err(asked));
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(30)),
        "the server's Retry-After when it is longer"
    );
}

// --- closing -----------------------------------------------------------------

#[test]
fn reconnect_codes_reconnect_terminal_codes_finish_and_3500_gets_one_fresh_token() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.session.handle_closed(h.now, Some(3012), "no pong".into());
    assert!(finished(&h.actions()).is_none());
    h.now = h.session.poll_timeout().unwrap();
    h.connect();
    h.session
        .handle_closed(h.now, Some(3500), "invalid token".into());
    assert!(
        finished(&h.actions()).is_none(),
        "one retry with a fresh token"
    );
    h.now = h.session.poll_timeout().unwrap();
    h.connect();
    h.session
        .handle_closed(h.now, Some(3500), "invalid token".into());
    assert!(finished(&h.actions()).is_some());
    let mut h = Harness::new(&[]);
    h.connect();
    h.frame(r#"{"push":{"disconnect":{"code":3501,"reason":"bad request"}}}"#);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Failed(_))
    ));
}

#[test]
fn close_lingers_for_the_servers_close_frame_then_finishes() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    assert!(matches!(
        h.actions()[..],
        [Action::CloseSocket { linger: true }]
    ));
    // What the server still sends is delivered.
    h.frame(&publication(CHAT, 0, json!({"type": "x"})));
    h.session.handle_closed(h.now, Some(1000), String::new());
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
    assert_eq!(publications(&h.events()).len(), 1);

    let mut h = Harness::new(&[]);
    h.connect();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    h.actions();
    h.advance(CLOSE_LINGER);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
}

#[test]
fn close_while_waiting_to_reconnect_finishes_at_once() {
    let mut h = Harness::new(&[]);
    h.connect();
    h.lose_link();
    h.actions();
    h.session.handle_command(h.now, Command::Close);
    assert!(matches!(
        finished(&h.actions()),
        Some(CloseReason::Requested)
    ));
}
