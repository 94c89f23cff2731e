//! Open connections: their queues, closes, aborts and per-connection faults.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::{ConnEntry, ConnFaults, Kill, Out, State, Subject, push_bounded};
use crate::emulator::reports::ConnectionInfo;

impl State {
    pub(crate) fn register_connection(
        &mut self,
    ) -> (
        u64,
        mpsc::Receiver<Out>,
        watch::Receiver<Kill>,
        Arc<ConnFaults>,
    ) {
        self.next_connection += 1;
        let id = self.next_connection;
        let (tx, rx) = mpsc::channel(self.config.outgoing_queue_capacity.max(1));
        let (kill, kill_rx) = watch::channel(Kill::Alive);
        let faults = Arc::new(ConnFaults::default());
        self.connections.insert(
            id,
            ConnEntry {
                tx,
                kill,
                subject: None,
                subs: HashSet::new(),
                closing: false,
                faults: Arc::clone(&faults),
            },
        );
        (id, rx, kill_rx, faults)
    }

    /// The open connections (not closing), by id.
    pub(crate) fn connections(&self) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = self
            .connections
            .iter()
            .filter(|(_, entry)| !entry.closing)
            .map(|(id, entry)| {
                let mut subscriptions: Vec<String> = entry.subs.iter().cloned().collect();
                subscriptions.sort();
                ConnectionInfo {
                    id: *id,
                    user_id: match &entry.subject {
                        Some(Subject::User(user)) => Some(*user),
                        _ => None,
                    },
                    app: match &entry.subject {
                        Some(Subject::App(app)) => Some(app.clone()),
                        _ => None,
                    },
                    subscriptions,
                }
            })
            .collect();
        list.sort_by_key(|info| info.id);
        list
    }

    /// The faults of an open connection, `None` for an unknown or closing one.
    pub(crate) fn faults(&self, id: u64) -> Option<Arc<ConnFaults>> {
        self.connections
            .get(&id)
            .filter(|entry| !entry.closing)
            .map(|entry| Arc::clone(&entry.faults))
    }

    /// Drops one connection at once, with no close frame. False when it is
    /// unknown or closing.
    pub(crate) fn abort_connection(&mut self, id: u64) -> bool {
        let Some(entry) = self.connections.get_mut(&id) else {
            return false;
        };
        if entry.closing {
            return false;
        }
        entry.closing = true;
        entry.kill.send_replace(Kill::Abort);
        self.detach(id);
        true
    }

    /// Whether `id` is an open connection.
    pub(crate) fn is_open(&self, id: u64) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|entry| !entry.closing)
    }

    /// Forgets a connection whose tasks have ended.
    pub(crate) fn remove_connection(&mut self, id: u64) {
        self.detach(id);
        self.connections.remove(&id);
    }

    /// Removes a connection's subscriptions from every stream.
    pub(super) fn detach(&mut self, id: u64) {
        let subs = self
            .connections
            .get_mut(&id)
            .map(|entry| std::mem::take(&mut entry.subs))
            .unwrap_or_default();
        for channel in subs {
            if let Some(stream) = self.streams.get_mut(&channel) {
                stream.subscribers.remove(&id);
            }
        }
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections
            .values()
            .filter(|entry| !entry.closing && entry.subject.is_some())
            .count()
    }

    /// Lines queued for the sockets and not yet taken by their writers.
    pub(crate) fn queued_lines(&self) -> usize {
        self.connections
            .values()
            .map(|entry| entry.tx.max_capacity() - entry.tx.capacity())
            .sum()
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.connections
            .values()
            .filter(|entry| !entry.closing)
            .count()
    }

    /// Queues `out` for a connection. A full queue closes it with 3008.
    pub(crate) fn deliver(&mut self, id: u64, out: Out) -> bool {
        let Some(entry) = self.connections.get_mut(&id) else {
            return false;
        };
        if entry.closing {
            return false;
        }
        match entry.tx.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                entry.closing = true;
                entry
                    .kill
                    .send_replace(Kill::CloseNow(3008, String::from("slow")));
                push_bounded(&mut self.close_codes, 3008);
                self.detach(id);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Closes a connection with a close frame after what is queued; the
    /// first close of a connection wins.
    pub(crate) fn close_connection(&mut self, id: u64, code: u16, reason: &str) {
        let Some(entry) = self.connections.get_mut(&id) else {
            return;
        };
        if entry.closing {
            return;
        }
        entry.closing = true;
        let kill = match entry.tx.try_send(Out::Close(code, reason.to_owned())) {
            Ok(()) => Kill::Closing,
            Err(_) => Kill::CloseNow(code, reason.to_owned()),
        };
        entry.kill.send_replace(kill);
        push_bounded(&mut self.close_codes, code);
        self.detach(id);
    }

    /// The peer closed: stop delivering to the connection.
    pub(crate) fn mark_closing(&mut self, id: u64) {
        if let Some(entry) = self.connections.get_mut(&id) {
            entry.closing = true;
        }
        self.detach(id);
    }

    pub(crate) fn close_all(&mut self, code: u16, reason: &str) {
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.close_connection(id, code, reason);
        }
    }

    pub(crate) fn abort_all(&mut self) {
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.abort_connection(id);
        }
    }

    /// The connection subscribed to `channel` (the first, if several are).
    pub(crate) fn connection_subscribed_to(&self, channel: &str) -> Option<u64> {
        let mut ids: Vec<u64> = self
            .connections
            .iter()
            .filter(|(_, entry)| entry.subs.contains(channel))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.first().copied()
    }

    pub(crate) fn send_raw(&mut self, frame: &str) {
        let frame: Arc<str> = Arc::from(frame);
        let ids: Vec<u64> = self.connections.keys().copied().collect();
        for id in ids {
            self.deliver(id, Out::Raw(Arc::clone(&frame)));
        }
    }
}
