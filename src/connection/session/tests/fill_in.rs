//! Chat filled in from REST after a loss.

use super::*;
use crate::connection::channel::Position;

/// A chat channel with slug, connected on a server without history, that
/// delivered message 1 (at START + 1 s) and then lost its link.
fn chat_after_an_outage() -> Harness {
    let mut h = Harness::new(&[(CHAT, Some("slug"))]);
    h.connect();
    h.frame(&publication(CHAT, 0, chat(1, START_MILLIS / 1000 + 1)));
    h.events();
    h.lose_link();
    h.connect();
    h
}

fn chat_request(actions: &[Action]) -> (Arc<str>, u64) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::FetchChatHistory {
                channel,
                slug,
                backfill,
            } if slug.as_ref() == "slug" => Some((channel.clone(), *backfill)),
            _ => None,
        })
        .expect("a chat history request")
}

#[test]
fn missed_chat_is_filled_in_from_rest_between_the_messages_before_and_after() {
    let mut h = chat_after_an_outage();
    let events = h.events();
    assert_eq!(recovery_of(&events, CHAT), Some(Recovery::Failed));
    assert!(
        gaps(&events).is_empty(),
        "not a gap while the fill-in may cover it"
    );
    let (channel, backfill) = chat_request(&h.actions());
    // Live chat after the reconnect waits for the fill-in, and one live
    // message is also in the REST answer.
    let t = START_MILLIS / 1000;
    h.frame(&publication(CHAT, 0, chat(5, t + 9)));
    h.frame(&publication(CHAT, 0, chat(6, t + 10)));
    assert!(publications(&h.events()).is_empty());
    let answer = vec![
        chat_message(5, t + 9),
        chat_message(4, t + 8),
        chat_message(3, t + 7),
        chat_message(2, t + 6),
        chat_message(1, t + 1),
    ];
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    let events = h.events();
    assert_eq!(
        publications(&events),
        [
            (0, 2, true),
            (0, 3, true),
            (0, 4, true),
            (0, 5, true),
            (0, 6, false)
        ]
    );
    assert!(gaps(&events).is_empty());
    // Later chat flows at once, and a repeat of a delivered id is dropped.
    h.frame(&publication(CHAT, 0, chat(7, t + 11)));
    h.frame(&publication(CHAT, 0, chat(6, t + 10)));
    assert_eq!(publications(&h.events()), [(0, 7, false)]);
}

#[test]
fn more_missed_than_one_answer_holds_delivers_the_newest_and_reports_one_gap() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    let answer: Vec<_> = (101..=300)
        .rev()
        .map(|id| chat_message(id, t + id))
        .collect();
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    let events = h.events();
    assert_eq!(gaps(&events), [(CHAT.to_owned(), None)]);
    let delivered = publications(&events);
    assert_eq!(delivered.len(), 200);
    assert_eq!(delivered.first(), Some(&(0, 101, true)));
    let gap_at = events
        .iter()
        .position(|e| matches!(e, Event::Gap { .. }))
        .unwrap();
    let first_at = events
        .iter()
        .position(|e| matches!(e, Event::Publication(_)))
        .unwrap();
    assert!(gap_at < first_at, "the gap stands where the loss is");
}

#[test]
fn a_failing_fill_in_is_retried_and_never_holds_live_chat_past_its_deadline() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    h.frame(&publication(CHAT, 0, chat(9, t + 20)));
    h.session
        .handle_chat_history(h.now, &channel, backfill, Err(api_error(503)));
    assert!(publications(&h.events()).is_empty(), "still held");
    h.advance(Config::default().backfill_hold);
    assert_eq!(
        publications(&h.events()),
        [(0, 9, false)],
        "released at the deadline"
    );
    h.frame("{}");
    let retry = h.session.poll_timeout().unwrap();
    h.advance(retry.saturating_duration_since(h.now));
    let (_, again) = chat_request(&h.actions());
    assert_eq!(again, backfill, "the same fill-in, asked again");
    h.session.handle_chat_history(
        h.now,
        &channel,
        backfill,
        Ok(vec![
            chat_message(8, t + 19),
            chat_message(9, t + 20),
            chat_message(10, t + 21),
        ]),
    );
    let events = h.events();
    // 8 is older than 9, delivered live at the deadline: it cannot come in
    // order any more, so it is a gap; 10 is new and comes, marked.
    assert_eq!(gaps(&events), [(CHAT.to_owned(), None)]);
    assert_eq!(publications(&events), [(0, 10, true)]);
}

#[test]
fn live_chat_waits_for_the_fill_in_at_most_the_configured_hold() {
    let config = Config {
        backfill_hold: Duration::from_secs(2),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(CHAT, Some("slug"))]);
    h.connect();
    h.frame(&publication(CHAT, 0, chat(1, START_MILLIS / 1000 + 1)));
    h.events();
    h.lose_link();
    h.connect();
    chat_request(&h.actions());
    h.frame(&publication(CHAT, 0, chat(9, START_MILLIS / 1000 + 20)));
    assert!(publications(&h.events()).is_empty(), "held");
    assert_eq!(
        h.session.poll_timeout(),
        Some(h.now + Duration::from_secs(2))
    );
    h.advance(Duration::from_secs(2));
    assert_eq!(publications(&h.events()), [(0, 9, false)], "released");
}

#[test]
fn a_chat_history_the_api_refuses_becomes_a_gap() {
    let mut h = chat_after_an_outage();
    let (channel, backfill) = chat_request(&h.actions());
    h.session
        .handle_chat_history(h.now, &channel, backfill, Err(api_error(404)));
    assert_eq!(gaps(&h.events()), [(CHAT.to_owned(), None)]);
}

#[test]
fn a_quiet_chat_is_filled_in_from_the_moment_the_link_went_down() {
    let mut h = Harness::new(&[(CHAT, Some("slug"))]);
    h.connect();
    h.now += Duration::from_secs(100);
    h.lose_link();
    h.connect();
    let (channel, backfill) = chat_request(&h.actions());
    let t = START_MILLIS / 1000;
    let answer = vec![chat_message(2, t + 101), chat_message(1, t + 50)];
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    assert_eq!(publications(&h.events()), [(0, 2, true)]);
}

/// A channel taken over from a reader on a server without history (resumed
/// at offset 0 in no epoch, with the newest chat message that reader
/// delivered): the first subscribe is a loss, filled in from REST after that
/// message, which is not delivered again.
#[test]
fn a_chat_taken_over_with_no_position_is_filled_in_after_the_last_chat_delivered() {
    let t = START_MILLIS / 1000;
    let last = chat_message(2, t - 5).key();
    let config = Config {
        resume_from: Arc::new([(CHAT.to_owned(), unknown_position())].into()),
        resume_chat: Arc::new([(CHAT.to_owned(), last)].into()),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(CHAT, Some("slug"))]);
    h.connect();
    let events = h.events();
    assert_eq!(recovery_of(&events, CHAT), Some(Recovery::Failed));
    assert!(gaps(&events).is_empty());
    let (channel, backfill) = chat_request(&h.actions());
    let answer = vec![
        chat_message(4, t - 1),
        chat_message(3, t - 2),
        chat_message(2, t - 5),
        chat_message(1, t - 9),
    ];
    h.session
        .handle_chat_history(h.now, &channel, backfill, Ok(answer));
    assert_eq!(
        publications(&h.events()),
        [(0, 3, true), (0, 4, true)],
        "after message 2, which was delivered before"
    );
}

/// The same takeover without any chat message to continue from: one gap
/// of unknown size, not silence.
#[test]
fn a_channel_taken_over_with_no_position_and_no_chat_reports_one_gap() {
    let config = Config {
        resume_from: Arc::new([(INFO.to_owned(), unknown_position())].into()),
        ..Config::default()
    };
    let mut h = Harness::with_config(config, &[(INFO, None)]);
    h.connect();
    assert_eq!(gaps(&h.events()), [(INFO.to_owned(), None)]);
}

/// What a relay resumes a channel at when the stream held it without
/// offsets (a server without history).
fn unknown_position() -> Position {
    Position {
        epoch: String::new(),
        offset: 0,
    }
}
