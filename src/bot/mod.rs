//! What a chat bot needs between its event loop and [`VkApi`]: a bounded
//! send queue per channel that drops the oldest waiting answer (and counts
//! it), a per-user cooldown for commands, a global limit across channels,
//! and REST calls that run off the event loop. See [`ChatBot`].

mod cooldown;
mod queue;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;

pub use cooldown::Cooldown;

use crate::auth::{Message, VkApi, channel_slug, reply_message};
use crate::error::{Error, ErrorKind};
use crate::event::ChatMessage;
use queue::DropOldest;

/// How a [`ChatBot`] queues, paces and rate-limits.
///
/// ```
/// use std::time::Duration;
/// use vklive_pubsub::bot::BotSettings;
/// let settings = BotSettings { queue_per_channel: 3, ..BotSettings::default() };
/// assert_eq!(settings.command_cooldown, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSettings {
    /// Answers waiting per channel (default 8, at least 1). A new one past
    /// it drops the oldest waiting one: a flood is answered with its newest
    /// messages, at the channel's pace ([`ChatSettings`](crate::auth::ChatSettings)),
    /// instead of minutes late.
    pub queue_per_channel: usize,
    /// How often one user may use one command (default 5 s; zero: no limit),
    /// see [`ChatBot::command_allowed`].
    pub command_cooldown: Duration,
    /// Users and commands remembered for the cooldown (default 10 000).
    pub cooldown_capacity: usize,
    /// At most one message per `global_interval` across all channels, on
    /// average (default 250 ms; zero: no global limit). VK publishes no
    /// number: this keeps a bot in many channels at a few messages a second.
    pub global_interval: Duration,
    /// Messages that may go out back to back across channels (default 4).
    pub global_burst: u32,
    /// Channels with answers waiting at once (default 1024); a message for
    /// yet another channel is refused with [`ErrorKind::InvalidArgument`].
    pub max_channels: usize,
}

impl Default for BotSettings {
    fn default() -> Self {
        BotSettings {
            queue_per_channel: 8,
            command_cooldown: Duration::from_secs(5),
            cooldown_capacity: 10_000,
            global_interval: Duration::from_millis(250),
            global_burst: 4,
            max_channels: 1024,
        }
    }
}

/// What became of a queued message, on [`Outcomes`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The message went out.
    Sent {
        /// The channel's slug.
        channel: String,
        /// What was sent.
        message: Message,
    },
    /// VK refused it, or it could not be sent (see [`VkApi::send_message`]).
    Failed {
        /// The channel's slug.
        channel: String,
        /// What was not sent.
        message: Message,
        /// Why.
        error: Error,
    },
    /// The queue of `channel` was full: `count` of its oldest waiting
    /// messages were dropped (since the previous report) for newer ones.
    Dropped {
        /// The channel's slug.
        channel: String,
        /// How many.
        count: u64,
    },
}

/// The stream of [`Outcome`]s of a [`ChatBot`] (bounded: read it, or drop
/// it; while it is full and kept, sending waits and the queues drop their
/// oldest).
#[derive(Debug)]
pub struct Outcomes {
    receiver: mpsc::Receiver<Outcome>,
}

impl Outcomes {
    /// The next outcome; `None` once every [`ChatBot`] clone is gone and all
    /// was reported.
    pub async fn recv(&mut self) -> Option<Outcome> {
        self.receiver.recv().await
    }
}

impl futures::Stream for Outcomes {
    type Item = Outcome;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Outcome>> {
        self.receiver.poll_recv(cx)
    }
}

/// An answer still to be worked out (a REST call, say), run by the channel's
/// sender when its turn comes: off the event loop, bounded by the queue.
type Later = Pin<Box<dyn Future<Output = Option<Message>> + Send>>;

enum Outgoing {
    Ready(Message),
    Later(Later),
}

/// A channel's waiting messages, and whether a sender task drains them.
struct Lane {
    queue: DropOldest<Outgoing>,
    draining: bool,
}

/// How many texts the bot remembers having sent, for
/// [`ChatBot::is_own_echo`].
const REMEMBERED_TEXTS: usize = 32;

struct Shared {
    api: VkApi,
    settings: BotSettings,
    global: Option<DefaultDirectRateLimiter>,
    lanes: Mutex<HashMap<String, Lane>>,
    cooldown: Mutex<Cooldown>,
    sent_texts: Mutex<VecDeque<(String, String)>>,
    dropped: AtomicU64,
    outcomes: mpsc::Sender<Outcome>,
}

/// The sending side of a chat bot, over [`VkApi::send_message`] (which
/// paces each channel, one message per 1.5 s by default, and retries
/// `send_too_fast`). Cheap to clone; every method returns at once, so the
/// event loop never waits for a send or a REST call.
///
/// - [`ChatBot::say`] / [`ChatBot::reply`] queue a message for a channel;
///   each channel's queue holds [`BotSettings::queue_per_channel`] and drops
///   the oldest past it, reporting [`Outcome::Dropped`] with the count.
/// - [`ChatBot::say_later`] queues an answer still to be worked out (a REST
///   call): it runs when its turn comes, in the channel's sender task.
/// - [`ChatBot::command_allowed`] is the per-user cooldown.
/// - All channels together send at most one message per
///   [`BotSettings::global_interval`] (a `governor` limiter).
///
/// One sender task runs per channel with messages waiting, and ends when
/// its queue is empty: tasks, queues and memory are bounded whatever the
/// chat does. Must be used inside a tokio runtime.
///
/// ```
/// # #[cfg(feature = "emulator")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use vklive_pubsub::auth::VkApi;
/// use vklive_pubsub::bot::{BotSettings, ChatBot, Outcome};
/// use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
/// use vklive_pubsub::Authorization;
///
/// let emulator = Emulator::start(EmulatorConfig::default()).await?;
/// emulator.add_user("bot-token", 2, "bot");
/// emulator.add_channel("streamer", 1);
/// let api = VkApi::new(&emulator.api_url(), Arc::new(Authorization::user("bot-token")))?;
/// let (bot, mut outcomes) = ChatBot::new(api.clone(), BotSettings::default());
/// if bot.command_allowed(1000, "uptime") {
///     bot.say_later("streamer", async move {
///         let stream = api.live_stream("streamer").await.ok()?; // off the event loop
///         Some(format!("live since {:?}", stream.started_at).into())
///     })?;
/// }
/// assert!(!bot.command_allowed(1000, "uptime")); // cooling down
/// match outcomes.recv().await {
///     Some(Outcome::Sent { message, .. }) => assert!(message.plain_text().starts_with("live since")),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// # #[cfg(not(feature = "emulator"))]
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct ChatBot {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ChatBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatBot")
            .field("api", &self.shared.api)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

/// How many outcomes wait for the reader at most.
const OUTCOMES_WAITING: usize = 64;

impl ChatBot {
    /// A bot sending through `api`, and the stream of what became of each
    /// message.
    pub fn new(api: VkApi, settings: BotSettings) -> (ChatBot, Outcomes) {
        let (outcomes, receiver) = mpsc::channel(OUTCOMES_WAITING);
        let burst = NonZeroU32::new(settings.global_burst).unwrap_or(NonZeroU32::MIN);
        let global = Quota::with_period(settings.global_interval)
            .map(|quota| RateLimiter::direct(quota.allow_burst(burst)));
        let cooldown = Cooldown::new(settings.command_cooldown, settings.cooldown_capacity);
        let shared = Shared {
            api,
            settings,
            global,
            lanes: Mutex::new(HashMap::new()),
            cooldown: Mutex::new(cooldown),
            sent_texts: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            outcomes,
        };
        (
            ChatBot {
                shared: Arc::new(shared),
            },
            Outcomes { receiver },
        )
    }

    /// Queues `message` for the chat of `channel_url` (a slug or a channel
    /// URL). Errors only for a bad channel, an empty message, or too many
    /// channels waiting at once.
    pub fn say(&self, channel_url: &str, message: impl Into<Message>) -> Result<(), Error> {
        let message = message.into();
        if message.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "a chat message needs at least one part",
            ));
        }
        self.enqueue(channel_url, Outgoing::Ready(message))
    }

    /// Queues an answer to `to`: a mention of its author, a space, then
    /// `message` (as [`VkApi::reply`]).
    pub fn reply(
        &self,
        channel_url: &str,
        to: &ChatMessage,
        message: impl Into<Message>,
    ) -> Result<(), Error> {
        self.say(channel_url, reply_message(to, message.into()))
    }

    /// Queues an answer still to be worked out: `answer` runs when its turn
    /// in the channel's queue comes, in the channel's sender task (never in
    /// the caller's loop); `None` sends nothing. Dropped unrun when the
    /// queue drops it; one that panics is skipped (logged at `warn`).
    pub fn say_later(
        &self,
        channel_url: &str,
        answer: impl Future<Output = Option<Message>> + Send + 'static,
    ) -> Result<(), Error> {
        self.enqueue(channel_url, Outgoing::Later(Box::pin(answer)))
    }

    /// Whether `user_id` may use `command` now (names ignore case): at most
    /// once per [`BotSettings::command_cooldown`]. A use let through starts
    /// the user's next cooldown.
    pub fn command_allowed(&self, user_id: i64, command: &str) -> bool {
        self.shared
            .cooldown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .allow(user_id, command, Instant::now())
    }

    /// Whether `message` reads as one of the last texts this bot sent to
    /// `channel_url`: how a bot that cannot learn its own user id (no
    /// `GET /v1/current_user`) tells its own messages from viewers'.
    pub fn is_own_echo(&self, channel_url: &str, message: &ChatMessage) -> bool {
        let Ok(slug) = channel_slug(channel_url) else {
            return false;
        };
        let text = message.plain_text();
        self.shared
            .sent_texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(channel, sent)| *channel == slug && *sent == text)
    }

    /// Messages waiting for `channel_url` (at most
    /// [`BotSettings::queue_per_channel`]).
    pub fn queued(&self, channel_url: &str) -> usize {
        let Ok(slug) = channel_slug(channel_url) else {
            return 0;
        };
        self.lanes().get(&slug).map_or(0, |lane| lane.queue.len())
    }

    /// Messages dropped by the queues since the bot was made.
    pub fn dropped_total(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lane>> {
        self.shared
            .lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, channel_url: &str, outgoing: Outgoing) -> Result<(), Error> {
        let slug = channel_slug(channel_url)?;
        let start = {
            let mut lanes = self.lanes();
            if !lanes.contains_key(&slug) && lanes.len() >= self.shared.settings.max_channels {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "chat bot: {} channels have messages waiting already",
                        lanes.len()
                    ),
                ));
            }
            let lane = lanes.entry(slug.clone()).or_insert_with(|| Lane {
                queue: DropOldest::new(self.shared.settings.queue_per_channel),
                draining: false,
            });
            if lane.queue.push(outgoing) {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
            !std::mem::replace(&mut lane.draining, true)
        };
        if start {
            tokio::spawn(drain(Arc::clone(&self.shared), slug));
        }
        Ok(())
    }
}

/// The sender task of one channel: sends its queue in order, then ends
/// (removing the channel's lane) once it is empty.
async fn drain(shared: Arc<Shared>, slug: String) {
    loop {
        let (next, dropped) = {
            let mut lanes = shared.lanes.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(lane) = lanes.get_mut(&slug) else {
                return;
            };
            let dropped = lane.queue.take_dropped();
            match lane.queue.pop() {
                Some(next) => (next, dropped),
                None => {
                    lanes.remove(&slug);
                    return;
                }
            }
        };
        if dropped > 0 {
            tracing::warn!(channel = %slug, dropped, "chat bot: queue full, dropped the oldest waiting messages");
            report(
                &shared,
                Outcome::Dropped {
                    channel: slug.clone(),
                    count: dropped,
                },
            )
            .await;
        }
        let message = match next {
            Outgoing::Ready(message) => message,
            // A panicking answer costs only itself, not the channel's queue.
            Outgoing::Later(answer) => match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(Some(message)) if !message.is_empty() => message,
                Ok(_) => continue,
                Err(_) => {
                    tracing::warn!(channel = %slug, "chat bot: an answer panicked; skipped");
                    continue;
                }
            },
        };
        if let Some(global) = &shared.global {
            global.until_ready().await;
        }
        let outcome = match shared.api.send_message(&slug, message.clone()).await {
            Ok(()) => {
                remember_sent(&shared, &slug, &message);
                Outcome::Sent {
                    channel: slug.clone(),
                    message,
                }
            }
            Err(error) => Outcome::Failed {
                channel: slug.clone(),
                message,
                error,
            },
        };
        report(&shared, outcome).await;
    }
}

async fn report(shared: &Shared, outcome: Outcome) {
    // Nobody reads the outcomes: nothing to do.
    let _ = shared.outcomes.send(outcome).await;
}

fn remember_sent(shared: &Shared, slug: &str, message: &Message) {
    let mut texts = shared
        .sent_texts
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if texts.len() >= REMEMBERED_TEXTS {
        texts.pop_front();
    }
    texts.push_back((slug.to_owned(), message.plain_text()));
}
