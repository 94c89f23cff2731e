//! The registered VK channels: slugs, ids, their live streams, what
//! `GET /v1/channel` answers, and the chat log `GET /v1/chat/messages` reads.

use serde_json::json;
use serde_json::value::RawValue;

use super::chat_log::{ChatEntry, chat_entry};
use super::{CHAT_LOG_LIMIT, ChannelRecord, ChannelView, State};
use crate::emulator::clock::unix_now;
use crate::emulator::names::ChannelNames;
use crate::emulator::random::random_uuid;
use crate::event::WebSocketChannels;

impl State {
    pub(crate) fn add_channel(&mut self, slug: &str, channel_id: u64) -> ChannelNames {
        let registered = self
            .channels
            .get(slug)
            .map_or(self.channels.len() as u64, |record| record.registered);
        self.channels.insert(
            slug.to_owned(),
            ChannelRecord {
                slug: slug.to_owned(),
                id: channel_id,
                registered,
                started_at: unix_now(),
                stream_id: random_uuid(),
                category_id: random_uuid(),
                live: true,
            },
        );
        ChannelNames::for_channel_id(channel_id)
    }

    /// Starts a new stream on a channel: a new id and start time. False for
    /// an unknown slug.
    pub(crate) fn start_stream(&mut self, slug: &str) -> bool {
        let Some(record) = self.channels.get_mut(slug) else {
            return false;
        };
        record.stream_id = random_uuid();
        record.started_at = unix_now();
        record.live = true;
        true
    }

    /// Ends a channel's stream: `GET /v1/channel` answers `stream: null`.
    pub(crate) fn stop_stream(&mut self, slug: &str) -> bool {
        let Some(record) = self.channels.get_mut(slug) else {
            return false;
        };
        record.live = false;
        true
    }

    pub(crate) fn channel_view(&self, slug: &str) -> Option<ChannelView> {
        let record = self.channels.get(slug)?;
        Some(ChannelView {
            id: record.id,
            live_stream_id: record.live.then(|| record.stream_id.clone()),
        })
    }

    /// The slug of the channel with this id.
    pub(crate) fn channel_slug_of(&self, channel_id: u64) -> Option<String> {
        self.channels
            .values()
            .find(|record| record.id == channel_id)
            .map(|record| record.slug.clone())
    }

    /// The slug and channel id of a registered channel: `key` is a slug or
    /// the decimal id; `None` names the channel registered first.
    pub(crate) fn registered_channel(&self, key: Option<&str>) -> Option<(String, u64)> {
        match key {
            Some(key) => self
                .channels
                .values()
                .find(|record| record.slug == key || record.id.to_string() == key)
                .map(|record| (record.slug.clone(), record.id)),
            None => self
                .channels
                .values()
                .min_by_key(|record| record.registered)
                .map(|record| (record.slug.clone(), record.id)),
        }
    }

    /// The `data` of `GET /v1/channel`, per vk-devapi.md §3.3.
    pub(crate) fn channel_info(&self, slug: &str) -> Option<serde_json::Value> {
        let record = self.channels.get(slug)?;
        let names = ChannelNames::for_channel_id(record.id);
        let nick = self
            .users
            .get(&record.id)
            .cloned()
            .unwrap_or_else(|| record.slug.clone());
        let color = record.id % 16;
        let avatar = format!("https://images.emulator.invalid/avatar/{}.png", record.id);
        let stream = record.live.then(|| {
            json!({
                "id": record.stream_id,
                "title": format!("Эмулятор: стрим {}", record.slug),
                "started_at": record.started_at,
                "ended_at": null,
                "category": {"id": record.category_id, "title": "Общение", "type": "irl"},
                "counters": {"viewers": 512, "views": 1024},
            })
        });
        Some(json!({
            "channel": {
                "id": record.id,
                "url": record.slug,
                "nick": nick,
                "nick_color": color,
                "avatar_url": avatar,
                "status": if record.live { "online" } else { "offline" },
                "counters": {"subscribers": 128},
                "web_socket_channels": WebSocketChannels::from(&names),
            },
            "owner": {"id": record.id, "nick": nick, "nick_color": color, "avatar_url": avatar, "is_verified_streamer": true},
            "stream": stream,
            "streams": stream.iter().collect::<Vec<_>>(),
        }))
    }

    /// Applies a publication into `channel` to the chat log.
    pub(super) fn record_chat(&mut self, channel: &str, data: &RawValue) {
        if let Some(entry) = chat_entry(channel, data) {
            self.apply_chat_entry(channel, entry);
        }
    }

    /// Applies a chat-log entry of `channel`.
    pub(super) fn apply_chat_entry(&mut self, channel: &str, entry: ChatEntry) {
        match entry {
            ChatEntry::Send(message) => {
                let log = self.chat_logs.entry(channel.to_owned()).or_default();
                if log.len() >= CHAT_LOG_LIMIT {
                    log.pop_front();
                }
                log.push_back(message);
            }
            ChatEntry::Delete(id) => {
                if let Some(log) = self.chat_logs.get_mut(channel) {
                    log.retain(|message| message.id != Some(id));
                }
            }
        }
    }

    /// The most recent chat messages of the VK channel `slug` (at most
    /// `limit`), newest first, each the `data.chat_message` object of its
    /// `channel_chat_message_send`; `None` for an unknown slug.
    pub(crate) fn chat_messages(&self, slug: &str, limit: usize) -> Option<Vec<&RawValue>> {
        let record = self.channels.get(slug)?;
        let chat = ChannelNames::for_channel_id(record.id).chat;
        Some(
            self.chat_logs
                .get(&chat)
                .map(|log| {
                    log.iter()
                        .rev()
                        .take(limit)
                        .map(|logged| &*logged.message)
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// The id of the newest chat message in a public chat channel's log.
    pub(crate) fn newest_chat_message(&self, channel: &str) -> Option<i64> {
        self.chat_logs
            .get(channel)
            .and_then(|log| log.iter().rev().find_map(|message| message.id))
    }
}
