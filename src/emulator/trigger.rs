//! Named events fired into the emulator, as `twitch event trigger` does:
//! [`Emulator::trigger`](super::Emulator::trigger), `POST /_emulator/trigger`
//! and `vklive trigger`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clock::unix_now;
use super::names::ChannelNames;
use super::payloads::{
    DemoUser, SONG_REWARD_ID, chat_message_delete, chat_message_send, demo_users, follow_create,
    raid_income, reward_demand_create, subscription_create, text_part,
};
use super::state::State;
use crate::event::EventKind;

/// The events a [`Trigger`] can fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerEvent {
    /// `channel_chat_message_send` in the public chat.
    #[default]
    Chat,
    /// `channel_chat_message_delete` in the public chat (of `id`, or of the
    /// newest chat message the channel's chat log holds).
    Delete,
    /// `channel_follow_create` in the info channel.
    Follow,
    /// `channel_raid_income` in the info channel.
    Raid,
    /// `channel_subscription_create` (a paid subscription) in the info channel.
    Subscription,
    /// `channel_points_reward_demand_create` in the private channel-points
    /// channel, for the demo reward "Заказать трек" (its title and price in
    /// `reward`).
    Reward,
    /// `channel_stream_start` in the info channel.
    StreamStart,
    /// `channel_stream_stop` in the info channel.
    StreamStop,
    /// An event type the connector does not know (`emulator_unknown_event`),
    /// in the info channel: clients must keep it as `VkEvent::Unknown`.
    Unknown,
}

impl TriggerEvent {
    /// Every event, in the order of `vklive trigger --help`.
    pub const ALL: [TriggerEvent; 9] = [
        TriggerEvent::Chat,
        TriggerEvent::Delete,
        TriggerEvent::Follow,
        TriggerEvent::Raid,
        TriggerEvent::Subscription,
        TriggerEvent::Reward,
        TriggerEvent::StreamStart,
        TriggerEvent::StreamStop,
        TriggerEvent::Unknown,
    ];

    /// Its name on the command line and in `POST /_emulator/trigger`.
    pub fn name(self) -> &'static str {
        match self {
            TriggerEvent::Chat => "chat",
            TriggerEvent::Delete => "delete",
            TriggerEvent::Follow => "follow",
            TriggerEvent::Raid => "raid",
            TriggerEvent::Subscription => "subscription",
            TriggerEvent::Reward => "reward",
            TriggerEvent::StreamStart => "stream-start",
            TriggerEvent::StreamStop => "stream-stop",
            TriggerEvent::Unknown => "unknown",
        }
    }

    /// The trigger that fires an event of `kind` (for
    /// [`EventKind::Stream`], `channel_stream_start`): every kind has one.
    ///
    /// ```
    /// use vklive_pubsub::emulator::TriggerEvent;
    /// use vklive_pubsub::event::EventKind;
    ///
    /// assert_eq!(TriggerEvent::for_kind(EventKind::RewardDemand), TriggerEvent::Reward);
    /// ```
    pub fn for_kind(kind: EventKind) -> TriggerEvent {
        match kind {
            EventKind::ChatMessage => TriggerEvent::Chat,
            EventKind::ChatMessageDelete => TriggerEvent::Delete,
            EventKind::Follow => TriggerEvent::Follow,
            EventKind::Raid => TriggerEvent::Raid,
            EventKind::Subscription => TriggerEvent::Subscription,
            EventKind::RewardDemand => TriggerEvent::Reward,
            EventKind::Stream => TriggerEvent::StreamStart,
        }
    }

    /// The event named `name` (see [`TriggerEvent::name`]).
    pub fn from_name(name: &str) -> Option<TriggerEvent> {
        TriggerEvent::ALL
            .into_iter()
            .find(|event| event.name() == name)
    }
}

/// A named event to fire, with what to change in it. Build it with struct
/// update syntax: `Trigger { event: TriggerEvent::Follow, nick: Some("X".into()), ..Default::default() }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trigger {
    /// What to fire.
    pub event: TriggerEvent,
    /// Where: a registered channel's slug or id (the event goes to the
    /// channel of its kind: chat, info or private channel points), or a
    /// pubsub channel name (`api-channel-info:7`) to publish into exactly that
    /// one. Default: the channel registered first.
    pub channel: Option<String>,
    /// The nick of the author, follower, raider, subscriber or demanding
    /// user (default: one of [`demo_users`]).
    pub nick: Option<String>,
    /// Chat text, or the text of a reward demand.
    pub text: Option<String>,
    /// The chat message or demand id (default: counting up from 800 000 000;
    /// with `count` above 1, `id`, `id + 1`, …); for `delete`, the message
    /// to delete.
    pub id: Option<i64>,
    /// How many to fire (default 1).
    pub count: Option<usize>,
    /// A JSON merge patch (RFC 7396) applied to each `{"type":…,"data":…}`
    /// envelope before it is published, to set any field:
    /// `{"data":{"raid":{"raiders_count":500}}}`.
    pub overrides: Option<Value>,
}

/// One publication a [`Trigger`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triggered {
    /// The pubsub channel it went to.
    pub channel: String,
    /// Its offset (0 with history off).
    pub offset: u64,
    /// Its VK event type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Most events one trigger may fire.
pub const MAX_TRIGGER_COUNT: usize = 10_000;

/// Fires `trigger` under the state's lock.
pub(crate) fn fire(state: &mut State, trigger: &Trigger) -> Result<Vec<Triggered>, String> {
    let count = trigger.count.unwrap_or(1);
    if count == 0 || count > MAX_TRIGGER_COUNT {
        return Err(format!("count must be in 1..={MAX_TRIGGER_COUNT}"));
    }
    let channel = target(state, trigger)?;
    let user = match &trigger.nick {
        Some(nick) => DemoUser::new(user_id_of(nick), nick),
        None => {
            let users = demo_users();
            users[fastrand::usize(1..users.len())].clone()
        }
    };
    let mut fired = Vec::with_capacity(count);
    for index in 0..count {
        let id = match trigger.id {
            Some(id) => id.saturating_add(index as i64),
            None if trigger.event == TriggerEvent::Delete => state
                .newest_chat_message(&channel)
                .ok_or_else(|| format!("no chat message in {channel} to delete: give an id"))?,
            None => {
                state.next_trigger_id += 1;
                state.next_trigger_id
            }
        };
        let mut envelope = envelope(trigger, &user, id);
        if let Some(patch) = &trigger.overrides {
            merge_patch(&mut envelope, patch);
        }
        let kind = envelope["type"].as_str().unwrap_or_default().to_owned();
        let offset = state.publish(&channel, &envelope);
        fired.push(Triggered {
            channel: channel.clone(),
            offset,
            kind,
        });
    }
    Ok(fired)
}

/// The pubsub channel a trigger publishes into.
fn target(state: &State, trigger: &Trigger) -> Result<String, String> {
    if let Some(name) = trigger.channel.as_deref()
        && name.contains(':')
    {
        return Ok(name.to_owned());
    }
    let (_, id) = state
        .registered_channel(trigger.channel.as_deref())
        .ok_or_else(|| match &trigger.channel {
            Some(name) => format!("no channel registered as {name:?}"),
            None => String::from("no channel registered: add one first"),
        })?;
    let names = ChannelNames::for_channel_id(id);
    Ok(match trigger.event {
        TriggerEvent::Chat | TriggerEvent::Delete => names.chat,
        TriggerEvent::Reward => names.private_channel_points,
        _ => names.info,
    })
}

/// A stable user id for a nick, so the same nick is the same user.
fn user_id_of(nick: &str) -> u64 {
    let hash = nick.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    90_000_000 + hash % 10_000_000
}

fn envelope(trigger: &Trigger, user: &DemoUser, id: i64) -> Value {
    let text = trigger.text.as_deref();
    match trigger.event {
        TriggerEvent::Chat => chat_message_send(
            id,
            unix_now(),
            user,
            vec![text_part(text.unwrap_or("hello from vklive trigger"))],
        ),
        TriggerEvent::Delete => chat_message_delete(id),
        TriggerEvent::Follow => follow_create(user),
        TriggerEvent::Raid => raid_income(user, 10),
        TriggerEvent::Subscription => subscription_create(user, "Фанат", 99),
        TriggerEvent::Reward => {
            reward_demand_create(id, user, SONG_REWARD_ID, text.unwrap_or("play my song"))
        }
        TriggerEvent::StreamStart => json!({"type": "channel_stream_start", "data": {}}),
        TriggerEvent::StreamStop => json!({"type": "channel_stream_stop", "data": {}}),
        TriggerEvent::Unknown => json!({
            "type": "emulator_unknown_event",
            "data": {"note": text.unwrap_or("a type the connector does not know")},
        }),
    }
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_replaces_and_removes() {
        let mut value = json!({"type": "a", "data": {"x": 1, "y": {"z": 2}}});
        merge_patch(
            &mut value,
            &json!({"data": {"x": null, "y": {"w": 3}}, "type": "b"}),
        );
        assert_eq!(value, json!({"type": "b", "data": {"y": {"z": 2, "w": 3}}}));
    }

    #[test]
    fn event_names_round_trip() {
        for event in TriggerEvent::ALL {
            assert_eq!(TriggerEvent::from_name(event.name()), Some(event));
            let json = serde_json::to_value(event).unwrap();
            assert_eq!(json, event.name());
        }
    }

    /// Each kind's trigger is listed (so `vklive trigger` offers it) and
    /// fires an event that decodes to that kind, typed.
    #[test]
    fn every_event_kind_has_a_trigger_that_fires_it() {
        let user = DemoUser::new(1, "X");
        for kind in EventKind::ALL {
            let event = TriggerEvent::for_kind(kind);
            assert!(
                TriggerEvent::ALL.contains(&event),
                "TriggerEvent::ALL lacks {event:?}, the trigger of {kind:?}"
            );
            let trigger = Trigger {
                event,
                ..Trigger::default()
            };
            let envelope = envelope(&trigger, &user, 7).to_string();
            let decoded = crate::VkEvent::decode_str(&envelope);
            assert_eq!(
                decoded.event_kind(),
                Some(kind),
                "the {} trigger fires {envelope}",
                event.name()
            );
        }
    }

    #[test]
    fn a_nick_is_always_the_same_user() {
        assert_eq!(user_id_of("X"), user_id_of("X"));
        assert_ne!(user_id_of("X"), user_id_of("Y"));
    }
}
