//! Unit tests of the state, job by job.

use serde_json::json;
use tokio::time::{Duration, Instant};

use super::blast::MAX_BLAST_COUNT;
use super::blast::build;
use super::wire::ttl_secs;
use super::*;
use crate::emulator::payloads::{chat_message_delete, demo_chat_message};
use crate::emulator::pool::chat_payload;

#[test]
fn ttl_rounds_up_and_is_at_least_one_second() {
    let now = Instant::now();
    assert_eq!(ttl_secs(now + Duration::from_millis(1500), now), 2);
    assert_eq!(ttl_secs(now + Duration::from_secs(3), now), 3);
    assert_eq!(ttl_secs(now, now), 1);
}

#[test]
fn history_is_bounded_and_offsets_restart_with_a_new_epoch() {
    let mut state = State::new(EmulatorConfig {
        history_size: 3,
        ..EmulatorConfig::default()
    });
    for n in 1..=5 {
        assert_eq!(state.publish("api-channel-chat:1", &json!({"n": n})), n);
    }
    let (epoch, top) = state.stream_position("api-channel-chat:1");
    assert_eq!(top, 5);
    let stream = &state.streams["api-channel-chat:1"];
    let kept: Vec<u64> = stream.history.iter().map(|p| p.offset).collect();
    assert_eq!(kept, vec![3, 4, 5]);
    state.restart_channel("api-channel-chat:1");
    let (new_epoch, top) = state.stream_position("api-channel-chat:1");
    assert_eq!(top, 0);
    assert_ne!(epoch, new_epoch);
    assert_eq!(state.publish("api-channel-chat:1", &json!({})), 1);
}

fn logged_ids(state: &State, slug: &str, limit: usize) -> Vec<i64> {
    state
        .chat_messages(slug, limit)
        .expect("known slug")
        .iter()
        .map(|message| {
            serde_json::from_str::<serde_json::Value>(message.get()).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[test]
fn chat_log_is_bounded_newest_first_and_kept_without_history() {
    let mut state = State::new(EmulatorConfig {
        history: false,
        ..EmulatorConfig::default()
    });
    let names = state.add_channel("slug", 4);
    let total = CHAT_LOG_LIMIT as i64 + 5;
    for id in 1..=total {
        let payload = demo_chat_message(id, "hi");
        assert_eq!(state.publish(&names.chat, &payload), 0);
    }
    // Other channels and other types are not chat.
    state.publish(&names.private_chat, &demo_chat_message(-1, "x"));
    state.publish(
        &names.chat,
        &json!({"type": "channel_follow_create", "data": {}}),
    );
    state.publish(&names.chat, &json!({"unexpected": true}));
    assert_eq!(state.chat_logs[&names.chat].len(), CHAT_LOG_LIMIT);
    assert_eq!(
        logged_ids(&state, "slug", 3),
        vec![total, total - 1, total - 2]
    );
    assert_eq!(
        logged_ids(&state, "slug", usize::MAX).last(),
        Some(&(total - CHAT_LOG_LIMIT as i64 + 1))
    );
    state.publish(&names.chat, &chat_message_delete(total - 1));
    assert_eq!(logged_ids(&state, "slug", 2), vec![total, total - 2]);
    assert!(state.chat_messages("unknown", 5).is_none());
    assert!(state.streams[&names.chat].history.is_empty());
}

#[test]
fn without_history_blast_frames_carry_no_offset_and_fill_the_chat_log() {
    let mut state = State::new(EmulatorConfig {
        history: false,
        ..EmulatorConfig::default()
    });
    state.add_channel("slug", 2);
    let report = state
        .blast("api-channel-chat:2", 1_500, 100, chat_payload)
        .unwrap();
    assert_eq!((report.first_offset, report.last_offset), (0, 0));
    assert_eq!(state.stream_position("api-channel-chat:2").1, 0);
    assert_eq!(state.chat_logs["api-channel-chat:2"].len(), CHAT_LOG_LIMIT);
    assert_eq!(logged_ids(&state, "slug", 1), vec![700_000_000 + 1_499]);
}

#[test]
fn switching_history_restarts_every_stream() {
    let mut state = State::new(EmulatorConfig::default());
    state.publish("api-channel-chat:1", &json!({}));
    let (epoch, _) = state.stream_position("api-channel-chat:1");
    state.set_history(false);
    assert_eq!(state.publish("api-channel-chat:1", &json!({})), 0);
    assert!(state.streams["api-channel-chat:1"].history.is_empty());
    state.set_history(true);
    let (new_epoch, top) = state.stream_position("api-channel-chat:1");
    assert_ne!(epoch, new_epoch);
    assert_eq!(top, 0);
    assert_eq!(state.publish("api-channel-chat:1", &json!({})), 1);
    // Setting the same value again changes nothing.
    state.set_history(true);
    assert_eq!(state.stream_position("api-channel-chat:1"), (new_epoch, 1));
}

#[test]
fn injected_rest_failures_run_out() {
    let mut state = State::new(EmulatorConfig::default());
    state.fail_next_rest(2, 503, Some(1));
    assert_eq!(state.take_rest_failure().map(|f| f.status), Some(503));
    assert_eq!(state.take_rest_failure().map(|f| f.status), Some(503));
    assert!(state.take_rest_failure().is_none());
}

#[test]
fn refresh_tokens_rotate_and_are_bound_to_their_client() {
    let mut state = State::new(EmulatorConfig::default());
    state.add_refresh_token("r1", 5, "app");
    assert!(state.oauth_refresh("other-app", "r1").is_err());
    let (access, refresh, _) = state.oauth_refresh("app", "r1").unwrap();
    assert!(state.oauth_refresh("app", "r1").is_err());
    assert!(matches!(
        state.authenticate(Some(&format!("Bearer {access}"))),
        Some(Caller::User { user_id: 5, .. })
    ));
    assert!(state.oauth_refresh("app", &refresh).is_ok());
}

#[test]
fn a_blast_built_outside_the_lock_is_refused_when_the_stream_moved() {
    let mut state = State::new(EmulatorConfig::default());
    state.publish("api-channel-chat:1", &json!({}));
    let plan = state.plan_blast("api-channel-chat:1", 10, 4).unwrap();
    // Another publication lands while the frames are built.
    state.publish("api-channel-chat:1", &json!({}));
    let stale = build(plan, chat_payload);
    assert!(state.commit_blast(stale).is_err());
    assert_eq!(state.stream_position("api-channel-chat:1").1, 2);
    let plan = state.plan_blast("api-channel-chat:1", 10, 4).unwrap();
    let report = state
        .commit_blast(build(plan, chat_payload))
        .expect("the stream did not move");
    assert_eq!((report.first_offset, report.last_offset), (3, 12));
    assert_eq!(report.frames, 3);
    let kept: Vec<u64> = state.streams["api-channel-chat:1"]
        .history
        .iter()
        .map(|p| p.offset)
        .collect();
    assert_eq!(kept, (1..=12).collect::<Vec<u64>>());
}

#[test]
fn a_blast_past_the_bound_is_refused() {
    let mut state = State::new(EmulatorConfig::default());
    let error = state
        .plan_blast("api-channel-chat:1", MAX_BLAST_COUNT + 1, 1_000)
        .unwrap_err();
    assert!(error.contains("more than a blast may queue"), "{error}");
}
