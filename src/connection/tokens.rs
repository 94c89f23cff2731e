//! Subscription tokens shared by the connections of a pool.
//!
//! Every connection's session asks for the tokens of its own channels. The
//! broker asks the API only for channels that no fetch already covers, and
//! the first request after channels were placed fetches the tokens of all of
//! them: the channels a client starts with (or a burst of subscribes) are
//! fetched once, together (the API client batches them by 100), and each
//! connection's request is answered from that fetch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pool::MemberId;
use super::session::Purpose;
use crate::error::Error;
use crate::secret::Secret;

/// A fetched token is handed out only this long after its fetch: after
/// that a fresh one is fetched (a token's lifetime is the server's).
const FRESH_FOR: Duration = Duration::from_secs(30);

/// A session's request for channel tokens.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) member: MemberId,
    pub(crate) attempt: u64,
    pub(crate) purpose: Purpose,
    pub(crate) channels: Vec<Arc<str>>,
}

/// Channels to fetch, under a fetch number.
pub(crate) type Fetch = (u64, Vec<Arc<str>>);

/// A request answered.
pub(crate) type Answered = (Request, Result<HashMap<String, Secret>, Error>);

/// The broker's bookkeeping; the actor performs the fetches it asks for.
#[derive(Debug, Default)]
pub(crate) struct Broker {
    next_fetch: u64,
    /// Channels being fetched, by fetch.
    in_flight: HashMap<Arc<str>, u64>,
    /// Fetched lately: the token, if one was granted, and when.
    ready: HashMap<Arc<str>, (Option<Secret>, Instant)>,
    waiting: Vec<Request>,
    /// Channels placed on a connection whose token nobody asked for yet.
    expected: std::collections::HashSet<Arc<str>>,
}

impl Broker {
    /// Takes a session's request. Returns the channels to fetch now (under
    /// a fetch number), if any, and the requests answered at once (this one,
    /// if every token it asks for was fetched already). Otherwise it is
    /// answered by [`Broker::fetched`] once all its channels are known.
    pub(crate) fn request(
        &mut self,
        request: Request,
        now: Instant,
    ) -> (Option<Fetch>, Vec<Answered>) {
        // Only a first subscribe may use a token fetched for someone else;
        // a refresh, or a resubscribe after a token was refused, fetches anew.
        let fresh = request.purpose == Purpose::Subscribe;
        let missing: Vec<Arc<str>> = request
            .channels
            .iter()
            .filter(|name| {
                let ready = fresh
                    && self
                        .ready
                        .get(*name)
                        .is_some_and(|(_, at)| now.saturating_duration_since(*at) < FRESH_FOR);
                !(ready || fresh && self.in_flight.contains_key(*name))
            })
            .cloned()
            .collect();
        let mut missing = missing;
        if fresh {
            // Whatever else was placed comes along in the same fetch.
            for name in &request.channels {
                self.expected.remove(name);
            }
            missing.extend(
                self.expected
                    .drain()
                    .filter(|name| !self.in_flight.contains_key(name)),
            );
        }
        for name in &missing {
            self.ready.remove(name);
        }
        self.waiting.push(request);
        let fetch = self.fetch(missing);
        (fetch, self.complete(now))
    }

    /// Channels just placed on connections, whose tokens their sessions
    /// will ask for: the first such request fetches them all.
    pub(crate) fn expect(&mut self, channels: impl IntoIterator<Item = Arc<str>>) {
        self.expected.extend(channels);
    }

    fn fetch(&mut self, channels: Vec<Arc<str>>) -> Option<Fetch> {
        if channels.is_empty() {
            return None;
        }
        self.next_fetch += 1;
        for name in &channels {
            self.in_flight.insert(name.clone(), self.next_fetch);
        }
        Some((self.next_fetch, channels))
    }

    /// A fetch finished: returns the requests it completes.
    pub(crate) fn fetched(
        &mut self,
        fetch: u64,
        channels: Vec<Arc<str>>,
        result: Result<HashMap<String, Secret>, Error>,
        now: Instant,
    ) -> Vec<Answered> {
        for name in &channels {
            if self.in_flight.get(name) == Some(&fetch) {
                self.in_flight.remove(name);
            }
        }
        match result {
            Ok(mut tokens) => {
                self.ready
                    .retain(|_, (_, at)| now.saturating_duration_since(*at) < FRESH_FOR);
                for name in channels {
                    let token = tokens.remove(name.as_ref());
                    self.ready.insert(name, (token, now));
                }
                self.complete(now)
            }
            Err(error) => {
                // Every request waiting for one of these channels fails.
                let failed: std::collections::HashSet<Arc<str>> = channels.into_iter().collect();
                let (hit, rest): (Vec<Request>, Vec<Request>) = std::mem::take(&mut self.waiting)
                    .into_iter()
                    .partition(|request| request.channels.iter().any(|c| failed.contains(c)));
                self.waiting = rest;
                hit.into_iter()
                    .map(|request| (request, Err(copy(&error))))
                    .collect()
            }
        }
    }

    /// Answers every waiting request whose channels are all known and fresh.
    fn complete(&mut self, now: Instant) -> Vec<Answered> {
        let mut done = Vec::new();
        let mut index = 0;
        while index < self.waiting.len() {
            let known = self.waiting[index].channels.iter().all(|name| {
                self.ready
                    .get(name)
                    .is_some_and(|(_, at)| now.saturating_duration_since(*at) < FRESH_FOR)
            });
            if !known {
                index += 1;
                continue;
            }
            let request = self.waiting.swap_remove(index);
            // Tokens stay for other requests of the same channels (a
            // session that reconnected while its first request waited asks
            // again); they age out after `FRESH_FOR`.
            let tokens = request
                .channels
                .iter()
                .filter_map(|name| {
                    let (token, _) = self.ready.get(name)?;
                    Some((name.to_string(), token.clone()?))
                })
                .collect();
            done.push((request, Ok(tokens)));
        }
        done
    }

    /// Forgets a channel no longer wanted (its fetched token, if any).
    pub(crate) fn forget(&mut self, channel: &str) {
        self.ready.remove(channel);
        self.expected.remove(channel);
    }
}

/// The same error again, for each request it fails.
fn copy(error: &Error) -> Error {
    let mut copy =
        Error::new(error.kind(), error.to_string()).with_retry_after(error.retry_after());
    if let Some(status) = error.status() {
        copy = copy.with_status(status);
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn names(range: std::ops::Range<usize>) -> Vec<Arc<str>> {
        range.map(|i| Arc::from(format!("c{i}"))).collect()
    }

    fn request(member: MemberId, channels: Vec<Arc<str>>) -> Request {
        Request {
            member,
            attempt: 1,
            purpose: Purpose::Subscribe,
            channels,
        }
    }

    fn granted(channels: &[Arc<str>]) -> HashMap<String, Secret> {
        channels
            .iter()
            .map(|name| (name.to_string(), Secret::from(format!("t-{name}"))))
            .collect()
    }

    #[test]
    fn the_first_request_fetches_every_placed_channel_and_the_others_are_answered_from_it() {
        let now = Instant::now();
        let mut broker = Broker::default();
        broker.expect(names(0..300));
        let (fetch, _) = broker.request(request(0, names(0..128)), now);
        let (fetch, mut all) = fetch.unwrap();
        all.sort();
        let mut expected = names(0..300);
        expected.sort();
        assert_eq!(all, expected, "all placed channels in one fetch");
        let (more, answered) = broker.request(request(1, names(128..256)), now);
        assert!(more.is_none() && answered.is_empty());
        let answered = broker.fetched(fetch, all.clone(), Ok(granted(&all)), now);
        assert_eq!(answered.len(), 2);
        for (request, result) in answered {
            assert_eq!(result.unwrap().len(), 128, "member {}", request.member);
        }
        // The rest is handed out later, at once; asked again (a session
        // that reconnected), still from the same fetch.
        let (more, answered) = broker.request(request(2, names(256..300)), now);
        assert!(more.is_none());
        assert_eq!(answered.len(), 1);
        let (again, answered) = broker.request(request(2, names(256..300)), now);
        assert!(again.is_none());
        assert_eq!(answered[0].1.as_ref().unwrap().len(), 44);
    }

    #[test]
    fn a_failed_fetch_fails_the_requests_waiting_for_it() {
        let now = Instant::now();
        let mut broker = Broker::default();
        let (fetch, channels) = broker.request(request(0, names(0..3)), now).0.unwrap();
        let error = Error::new(ErrorKind::ServerUnavailable, "503").with_status(503);
        let answered = broker.fetched(fetch, channels, Err(error), now);
        assert_eq!(answered.len(), 1);
        let error = answered.into_iter().next().unwrap().1.unwrap_err();
        assert_eq!(
            (error.kind(), error.status()),
            (ErrorKind::ServerUnavailable, Some(503))
        );
    }

    #[test]
    fn two_requests_waiting_for_one_fetch_are_both_answered() {
        let now = Instant::now();
        let mut broker = Broker::default();
        let (fetch, channels) = broker.request(request(0, names(0..2)), now).0.unwrap();
        // The session reconnected and asks again while the fetch runs.
        assert!(broker.request(request(0, names(0..2)), now).0.is_none());
        let answered = broker.fetched(fetch, channels.clone(), Ok(granted(&channels)), now);
        assert_eq!(answered.len(), 2);
        assert!(answered.iter().all(|(_, r)| r.as_ref().unwrap().len() == 2));
    }

    #[test]
    fn refreshes_are_always_fetched_and_old_tokens_are_not_handed_out() {
        let now = Instant::now();
        let mut broker = Broker::default();
        broker.expect(names(0..2));
        let (fetch, all) = broker.request(request(9, names(0..2)), now).0.unwrap();
        broker.fetched(fetch, all.clone(), Ok(granted(&all)), now);
        let refresh = Request {
            purpose: Purpose::Refresh,
            ..request(0, names(0..1))
        };
        assert!(broker.request(refresh, now).0.is_some());
        let later = now + FRESH_FOR;
        assert!(broker.request(request(1, names(1..2)), later).0.is_some());
    }
}
