//! Recovery, and the catch-up from the server's history when it fails.

use super::*;

#[test]
fn a_recovered_resubscription_delivers_the_missed_publications_after_subscribed() {
    let mut h = Harness::new(&[(CHAT, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.frame(&publication(CHAT, 6, json!({"type": "x"})));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    let subscribe = &lines[1]["subscribe"];
    assert_eq!(
        (
            subscribe["recover"].clone(),
            subscribe["epoch"].clone(),
            subscribe["offset"].clone()
        ),
        (json!(true), json!("e"), json!(6))
    );
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 6,
        "was_recovering": true, "recovered": true,
        "publications": [{"data": {"type": "x"}, "offset": 7}, {"data": {"type": "x"}, "offset": 8}]}}));
    let events = h.events();
    assert_eq!(recovery_of(&events, CHAT), Some(Recovery::Recovered));
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [7, 8]
    );
    assert!(gaps(&events).is_empty());
    h.frame(&publication(CHAT, 8, json!({"type": "x"})));
    h.frame(&publication(CHAT, 9, json!({"type": "x"})));
    assert_eq!(
        publications(&h.events())
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [9]
    );
}

/// An info channel at offset 5 that lost its link, resubscribed, and found
/// the stream at 905: recovery failed; returns the history request sent.
fn failed_recovery_at_905() -> (Harness, Value) {
    let mut h = Harness::new(&[(INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 905, "was_recovering": true}}));
    let sent = h.sent();
    let history = sent
        .iter()
        .find(|l| l.get("history").is_some())
        .expect("a history request")
        .clone();
    assert_eq!(history["history"]["channel"], INFO);
    assert_eq!(
        history["history"]["since"],
        json!({"offset": 5, "epoch": "e"})
    );
    (h, history)
}

fn history_page(id: &Value, offsets: std::ops::RangeInclusive<u64>) -> Value {
    let publications: Vec<Value> = offsets
        .map(|offset| json!({"data": {"type": "x"}, "offset": offset}))
        .collect();
    json!({"id": id, "history": {"publications": publications, "epoch": "e", "offset": 905}})
}

#[test]
fn a_failed_recovery_without_history_access_reports_the_exact_number_missed() {
    let (mut h, history) = failed_recovery_at_905();
    let events = h.events();
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::Failed));
    // Live publications wait for the catch-up.
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    assert!(publications(&h.events()).is_empty());
    h.reply(json!({"id": history["id"], "error": {"code": 103, "message": "permission denied"}}));
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(900))]);
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [906]
    );
}

#[test]
fn a_failed_recovery_delivers_what_the_servers_history_still_has_and_counts_the_rest() {
    let (mut h, history) = failed_recovery_at_905();
    h.events();
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    // The server keeps 300: offsets 606 to 905, in pages of up to 1000.
    h.reply(history_page(&history["id"], 606..=905));
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(600))]);
    let offsets: Vec<u64> = publications(&events).iter().map(|p| p.0).collect();
    assert_eq!(offsets, (606..=906).collect::<Vec<_>>());
    let gap_at = events
        .iter()
        .position(|e| matches!(e, Event::Gap { .. }))
        .unwrap();
    assert!(
        events[..gap_at]
            .iter()
            .all(|e| !matches!(e, Event::Publication(_)))
    );
}

#[test]
fn a_long_catch_up_asks_page_after_page() {
    let mut h = Harness::new(&[(INFO, None)]);
    h.connect_with(json!({"recoverable": true, "epoch": "e", "offset": 5}));
    h.events();
    h.lose_link();
    let lines = h.open_link();
    h.reply(json!({"id": lines[0]["id"], "connect": {"client": "c2", "ping": 25}}));
    h.reply(json!({"id": lines[1]["id"], "subscribe": {"recoverable": true, "epoch": "e", "offset": 2505, "was_recovering": true}}));
    let mut delivered = 0;
    let mut since = 5;
    loop {
        let sent = h.sent();
        let Some(history) = sent.iter().find(|l| l.get("history").is_some()) else {
            break;
        };
        assert_eq!(history["history"]["since"]["offset"], since);
        let last = (since + 1000).min(2505);
        let mut page = history_page(&history["id"], since + 1..=last);
        page["history"]["offset"] = json!(2505);
        h.reply(page);
        since = last;
        delivered += publications(&h.events()).len();
    }
    assert_eq!(delivered, 2500);
    assert_eq!(since, 2505);
}

#[test]
fn a_link_lost_during_a_catch_up_reports_the_rest_and_delivers_what_was_held() {
    let (mut h, _history) = failed_recovery_at_905();
    h.events();
    h.frame(&publication(INFO, 906, json!({"type": "x"})));
    h.session
        .handle_closed(h.now, None, "connection lost".into());
    let events = h.events();
    assert_eq!(gaps(&events), [(INFO.to_owned(), Some(900))]);
    assert_eq!(
        publications(&events)
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        [906]
    );
}

#[test]
fn a_server_without_history_reports_a_possible_loss_on_resubscribe_not_a_first_subscription() {
    let mut h = Harness::new(&[(INFO, None)]);
    let events = {
        h.connect();
        h.events()
    };
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::NotRequested));
    assert!(gaps(&events).is_empty());
    h.lose_link();
    h.connect();
    let events = h.events();
    assert_eq!(recovery_of(&events, INFO), Some(Recovery::Failed));
    assert_eq!(gaps(&events), [(INFO.to_owned(), None)]);
}
