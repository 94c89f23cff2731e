//! VK channels followed by slug: look each up (`GET /v1/channel`), hand
//! its channels over to be subscribed, retry a lookup that may work later.

use std::sync::Arc;
use std::time::Instant;

use super::state::Resolution;
use super::{Action, Resolved, Session};
use crate::delivery::Event;
use crate::error::Error;
use crate::event::ChannelKey;

impl Session {
    /// The answer to [`Action::ResolveChannel`]: subscribe the VK channel's
    /// public channels (its chat filled in from REST after a loss) and the
    /// private ones granted; retry what may work later, report the rest.
    pub(crate) fn handle_resolved(
        &mut self,
        now: Instant,
        slug: &str,
        answer: Result<Resolved, Error>,
    ) {
        let Some((slug, lookup)) = self.slugs.get_key_value(slug) else {
            return;
        };
        let slug = slug.clone();
        let resolved = match answer {
            Ok(resolved) => resolved,
            Err(error) if error.is_retryable() => {
                let failures = lookup.failures;
                let delay = self.backoff(failures, error.retry_after());
                tracing::warn!(%slug, %error, "channel lookup failed; retrying");
                if let Some(lookup) = self.slugs.get_mut(&slug) {
                    lookup.failures = failures.saturating_add(1);
                    lookup.retry_at = Some(now + delay);
                }
                return;
            }
            Err(error) => {
                self.slugs.remove(&slug);
                self.push_event(Event::SubscriptionFailed {
                    channel: slug.to_string(),
                    code: 0,
                    reason: error.to_string(),
                });
                return;
            }
        };
        let skip = self.slugs.remove(&slug).map(|lookup| lookup.skip);
        let skip = skip.unwrap_or_default();
        let chat = resolved
            .channels
            .chat
            .as_deref()
            .filter(|name| !name.is_empty());
        let discovered: Vec<(String, Option<String>)> = resolved
            .channels
            .iter()
            .filter(|(key, _)| !skip.contains(key))
            .filter(|(key, name)| key.is_public() || resolved.granted.contains(*name))
            .map(|(_, name)| {
                let chat_slug = (chat == Some(name)).then(|| slug.to_string());
                (name.to_owned(), chat_slug)
            })
            .collect();
        tracing::debug!(%slug, channels = discovered.len(), "channel resolved");
        self.actions.push_back(Action::Discovered(discovered));
    }

    /// Starts following a VK channel by slug.
    pub(super) fn follow(&mut self, slug: String, skip: Vec<ChannelKey>) {
        let slug: Arc<str> = slug.into();
        if self.slugs.contains_key(&slug) {
            return;
        }
        let lookup = Resolution {
            skip,
            ..Resolution::default()
        };
        self.slugs.insert(slug.clone(), lookup);
        self.actions.push_back(Action::ResolveChannel { slug });
    }

    /// When the next lookup is due again.
    pub(super) fn next_lookup_timer(&self) -> Option<Instant> {
        self.slugs.values().filter_map(|slug| slug.retry_at).min()
    }

    /// Asks again for the lookups whose retry is due.
    pub(super) fn fire_lookup_timers(&mut self, now: Instant) {
        let due: Vec<Arc<str>> = self
            .slugs
            .iter()
            .filter(|(_, lookup)| lookup.retry_at.is_some_and(|at| at <= now))
            .map(|(slug, _)| slug.clone())
            .collect();
        for slug in due {
            if let Some(lookup) = self.slugs.get_mut(&slug) {
                lookup.retry_at = None;
            }
            self.actions.push_back(Action::ResolveChannel { slug });
        }
    }
}
