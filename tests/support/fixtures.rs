//! The VK event fixtures as they travel: compacted to one line, `type`
//! first as VK sends it. Shared by the decoder agreement tests, which run
//! without the emulator (so not through `tests/common`).

use serde_json::Value;

/// Every fixture that is a publication payload (`{"type", "data"}`).
pub const PUBLICATIONS: [&str; 13] = [
    "channel_chat_message_delete.json",
    "channel_chat_message_send.json",
    "channel_chat_message_send_bot.json",
    "channel_follow_create.json",
    "channel_points_reward_demand_create.json",
    "channel_raid_income.json",
    "channel_stream_pause.json",
    "channel_stream_record_new.json",
    "channel_stream_resume.json",
    "channel_stream_settings_change.json",
    "channel_stream_start.json",
    "channel_stream_stop.json",
    "channel_subscription_create.json",
];

/// A fixture compacted to one line. A payload keeps `type` before `data`
/// (re-serializing a `Value` would sort `data` first); any other fixture is
/// compacted as it is.
pub fn payload(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let value: Value = serde_json::from_str(&text).expect("fixture is JSON");
    match (value.get("type"), value.get("data")) {
        (Some(kind), Some(data)) => format!("{{\"type\":{kind},\"data\":{data}}}"),
        _ => value.to_string(),
    }
}
