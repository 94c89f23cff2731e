//! The demo traffic generator: realistic chat, now and then a follow, a
//! reward demand, a raid or a paid subscription (see
//! [`Emulator::start_demo`](super::Emulator::start_demo)).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::clock::unix_now;
use super::names::ChannelNames;
use super::payloads::{
    PHRASES, SONG_REWARD_ID, chat_message_send, demo_users, follow_create, pick, pick_str,
    raid_income, random_parts, reward_demand_create, subscription_create,
};
use super::state::Shared;

/// Spawns the demo traffic task: about `rate` publications a second until
/// the handle is aborted or the emulator shuts down.
pub(crate) fn spawn(shared: Arc<Shared>, names: ChannelNames, rate: f64) -> JoinHandle<()> {
    tokio::spawn(async move {
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let period = Duration::from_secs_f64((1.0 / rate).clamp(1e-6, 86_400.0));
        let users = demo_users();
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_message: i64 = 627_000_000 + i64::from(fastrand::u16(..));
        let mut next_demand: i64 = 9_000 + i64::from(fastrand::u8(..));
        loop {
            ticker.tick().await;
            if shared.is_shut_down() {
                return;
            }
            let author = pick(&users);
            let (channel, payload) = match fastrand::u32(..1000) {
                0..=939 => {
                    next_message += 1;
                    let parts = random_parts(&users);
                    let payload = chat_message_send(next_message, unix_now(), author, parts);
                    (&names.chat, payload)
                }
                940..=969 => (&names.info, follow_create(author)),
                970..=989 => {
                    next_demand += 1;
                    let payload = reward_demand_create(
                        next_demand,
                        author,
                        SONG_REWARD_ID,
                        pick_str(&PHRASES),
                    );
                    (&names.private_channel_points, payload)
                }
                990..=994 => {
                    let raiders = 5 + u64::from(fastrand::u8(..200));
                    (&names.info, raid_income(author, raiders))
                }
                _ => (&names.info, subscription_create(author, "Фанат", 99)),
            };
            shared.lock().publish(channel, &payload);
        }
    })
}
