//! Streams of publications: offsets, epochs, history, and the server's
//! unsubscribe pushes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::wire::{line, raw_json};
use super::{Out, State, Stream};
use crate::emulator::random::random_string;
use crate::protocol::{Publication, Push, Reply, UnsubscribePush, codes};

impl State {
    pub(super) fn stream_mut(&mut self, channel: &str) -> &mut Stream {
        self.streams
            .entry(channel.to_owned())
            .or_insert_with(Stream::new)
    }

    pub(crate) fn stream_position(&mut self, channel: &str) -> (String, u64) {
        let stream = self.stream_mut(channel);
        (stream.epoch.clone(), stream.top)
    }

    pub(crate) fn publish(&mut self, channel: &str, data: &serde_json::Value) -> u64 {
        self.bots.learn(channel, data);
        self.publish_raw(channel, raw_json(data))
    }

    /// [`State::publish`] with the payload already serialized. Returns the
    /// publication's offset, or 0 when history is off (it carries none).
    pub(crate) fn publish_raw(&mut self, channel: &str, data: Box<RawValue>) -> u64 {
        let history = self.config.history;
        let history_size = self.config.history_size;
        let stream = self.stream_mut(channel);
        let offset = if history {
            stream.top += 1;
            stream.top
        } else {
            0
        };
        let publication = Publication {
            data,
            offset,
            info: None,
            tags: None,
        };
        let push_line = line(&Reply {
            push: Some(Push {
                channel: channel.to_owned(),
                publication: Some(publication.clone()),
                ..Push::default()
            }),
            ..Reply::default()
        });
        let subscribers: Vec<u64> = stream.subscribers.iter().copied().collect();
        for id in subscribers {
            self.deliver(id, Out::Line(Arc::clone(&push_line)));
        }
        // After the pushes are queued, so a paced publication's stamp is not
        // delayed by the chat log.
        self.record_chat(channel, &publication.data);
        if history && history_size > 0 {
            let stream = self.stream_mut(channel);
            stream.history.push_back(publication);
            while stream.history.len() > history_size {
                stream.history.pop_front();
            }
        }
        offset
    }

    /// Turns history and recovery on or off. A change starts every channel's
    /// stream afresh (new epoch, offsets from 1, history cleared), as a
    /// Centrifugo restarted with the new setting would; subscriptions stay.
    pub(crate) fn set_history(&mut self, enabled: bool) {
        if self.config.history == enabled {
            return;
        }
        self.config.history = enabled;
        for stream in self.streams.values_mut() {
            stream.epoch = random_string(6);
            stream.top = 0;
            stream.history.clear();
        }
    }

    pub(crate) fn restart_channel(&mut self, channel: &str) {
        let stream = self.stream_mut(channel);
        stream.epoch = random_string(6);
        stream.top = 0;
        stream.history.clear();
        self.unsubscribe_all(
            channel,
            codes::UNSUBSCRIBE_INSUFFICIENT_STATE,
            "insufficient state",
        );
    }

    pub(crate) fn unsubscribe_all(&mut self, channel: &str, code: u32, reason: &str) {
        let subscribers: Vec<u64> = self
            .streams
            .get(channel)
            .map(|s| s.subscribers.iter().copied().collect())
            .unwrap_or_default();
        for id in subscribers {
            self.server_unsubscribe(id, channel, code, reason);
        }
    }

    /// Ends one subscription with an unsubscribe push.
    pub(crate) fn server_unsubscribe(&mut self, id: u64, channel: &str, code: u32, reason: &str) {
        let removed = self
            .connections
            .get_mut(&id)
            .is_some_and(|entry| entry.subs.remove(channel));
        if let Some(stream) = self.streams.get_mut(channel) {
            stream.subscribers.remove(&id);
        }
        if removed {
            let push = line(&Reply {
                push: Some(Push {
                    channel: channel.to_owned(),
                    unsubscribe: Some(UnsubscribePush {
                        code,
                        reason: reason.to_owned(),
                    }),
                    ..Push::default()
                }),
                ..Reply::default()
            });
            self.deliver(id, Out::Line(push));
        }
    }

    pub(crate) fn subscriber_count(&self, channel: &str) -> usize {
        self.streams
            .get(channel)
            .map_or(0, |stream| stream.subscribers.len())
    }

    /// Subscriber counts of every channel that has subscribers.
    pub(crate) fn subscriber_counts(&self) -> BTreeMap<String, usize> {
        self.streams
            .iter()
            .filter(|(_, stream)| !stream.subscribers.is_empty())
            .map(|(channel, stream)| (channel.clone(), stream.subscribers.len()))
            .collect()
    }
}
