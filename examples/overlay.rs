//! `overlay`: a stream overlay for OBS. Follows one VK Video Live channel and
//! serves a page with alerts (follows, raids, subscriptions, redemptions) and
//! the chat, fed live over Server-Sent Events. See `docs/overlay.md`.
//!
//! ```text
//! overlay [--api-url URL] [--ws-url URL] --channel-url SLUG [--port P] [--replay N]
//! overlay --demo [--port P]
//! ```
//!
//! The access token comes from `VKLIVE_TOKEN` (or `--token`). The server listens
//! on `127.0.0.1` only and prints the page's URL as one line on stdout; add that
//! URL to OBS as a browser source. Logs go to stderr (`RUST_LOG`).
//!
//! The page (`examples/overlay/`) is compiled in; its safety rules (text only
//! through `textContent`, images only from `http:`/`https:` URLs, a strict
//! Content-Security-Policy) are in `docs/overlay.md`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::event::{Part, User};
use vklive_pubsub::{Authorization, Client, CloseReason, Event, Events, VkEvent};

const INDEX_HTML: &str = include_str!("overlay/index.html");
const OVERLAY_JS: &str = include_str!("overlay/overlay.js");
const OVERLAY_CSS: &str = include_str!("overlay/overlay.css");

/// Sent with every response. No inline script or style, no plugins, no
/// frames; scripts, styles and the event stream from this server only;
/// images from this server or any `http:`/`https:` URL (smiles, avatars).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' http: https:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'";

/// Default size of the replay buffer, in events.
pub const DEFAULT_REPLAY: usize = 1000;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "overlay",
    about = "Serve a VK Video Live alerts-and-chat overlay for OBS"
)]
pub struct Args {
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    pub api_url: String,
    /// Pubsub WebSocket URL.
    #[arg(long, default_value = vklive_pubsub::DEFAULT_WS_URL)]
    pub ws_url: String,
    /// A user access token (default: the VKLIVE_TOKEN environment variable).
    #[arg(long, env = "VKLIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The channel to follow: its slug (`live.vkvideo.ru/<SLUG>`).
    #[arg(long = "channel-url", value_name = "SLUG")]
    pub channel_url: Option<String>,
    /// Port on 127.0.0.1 to serve the page on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How many events the server keeps for pages that reconnect.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REPLAY)]
    pub replay: usize,
    /// Start the embedded emulator with demo traffic and follow its demo channel.
    #[arg(long)]
    pub demo: bool,
    /// Demo traffic: publications a second (with --demo).
    #[arg(long, value_name = "RATE", default_value_t = 5.0)]
    pub demo_rate: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let wanted = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,overlay=info"));
    // tungstenite dumps whole frames at `trace`, tokens included: drop those lines.
    let safe = filter_fn(|metadata| !vklive_pubsub::may_contain_tokens(metadata));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(wanted.and(safe)),
        )
        .init();
    let overlay = match start(Args::parse()).await {
        Ok(overlay) => overlay,
        Err(message) => {
            eprintln!("overlay: {message}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", overlay.url);
    let outcome = tokio::select! {
        outcome = overlay.finished() => outcome,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("overlay: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A running overlay server.
pub struct Overlay {
    /// The page's URL, `http://127.0.0.1:PORT/`.
    pub url: String,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The embedded emulator, with `--demo`.
    pub emulator: Option<Emulator>,
    follower: tokio::task::JoinHandle<Result<(), String>>,
}

impl Overlay {
    /// Resolves when the connection to VK ends for good: `Err` with the
    /// reason when it failed (a revoked token, …).
    pub async fn finished(self) -> Result<(), String> {
        match self.follower.await {
            Ok(outcome) => outcome,
            Err(error) => Err(format!("event task failed: {error}")),
        }
    }
}

/// Resolves the channel, connects, binds the port and starts serving.
pub async fn start(mut args: Args) -> Result<Overlay, String> {
    let emulator = if args.demo {
        Some(start_demo(&mut args).await?)
    } else {
        None
    };
    let token = args
        .token
        .clone()
        .ok_or("no access token: set VKLIVE_TOKEN (or pass --token), or use --demo")?;
    let slug = args
        .channel_url
        .clone()
        .ok_or("no channel: pass --channel-url SLUG, or use --demo")?;
    let channels = resolve_channels(&args.api_url, &token, &slug).await?;
    tracing::info!(?channels, "following {slug}");
    let (client, events) = Client::with_user_token(token)
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channels(channels)
        .spawn()
        .map_err(|error| error.to_string())?;

    let feed = Arc::new(Feed::new(args.replay));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .map_err(|error| format!("cannot listen on 127.0.0.1:{}: {error}", args.port))?;
    let addr = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let app = router(Arc::clone(&feed));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "overlay server stopped");
        }
    });
    let follower = tokio::spawn(follow(client, events, feed));
    Ok(Overlay {
        url: format!("http://{addr}/"),
        addr,
        emulator,
        follower,
    })
}

/// The pubsub channels of the VK channel `slug` that an overlay shows: the
/// public ones (`chat`, `info`, `channel_points`) and, when this user is
/// granted a token for them, `private_info` and `private_channel_points`
/// (reward redemptions). Private and limited chats are left out: what they
/// carry is meant for the token's user, not for everyone watching the stream.
// TODO: once `ClientBuilder::channel_url` lands on this branch, use it and
// filter the private chats there.
async fn resolve_channels(api_url: &str, token: &str, slug: &str) -> Result<Vec<String>, String> {
    use vklive_pubsub::event::ChannelKey;
    let api = vklive_pubsub::auth::VkApi::new(api_url, Arc::new(Authorization::user(token)))
        .map_err(|error| error.to_string())?;
    let info = api
        .channel(slug)
        .await
        .map_err(|error| format!("cannot look up channel {slug:?}: {error}"))?;
    let names = &info.web_socket_channels;
    let mut channels = names.public();
    let private: Vec<String> = [ChannelKey::PrivateInfo, ChannelKey::PrivateChannelPoints]
        .into_iter()
        .filter_map(|key| names.get(key).map(str::to_owned))
        .collect();
    let granted = api
        .subscription_tokens(&private)
        .await
        .map_err(|error| format!("cannot get subscription tokens: {error}"))?;
    channels.extend(
        private
            .into_iter()
            .filter(|name| granted.contains_key(name)),
    );
    if channels.is_empty() {
        return Err(format!("channel {slug:?} has no pubsub channels"));
    }
    Ok(channels)
}

/// Starts the embedded emulator with demo traffic and points `args` at it.
async fn start_demo(args: &mut Args) -> Result<Emulator, String> {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .map_err(|error| format!("cannot start the emulator: {error}"))?;
    let token = "demo-access-token";
    emulator.add_user(token, 1, "demo-viewer");
    let names = emulator.add_channel("demo", 1);
    emulator.start_demo(&names, args.demo_rate);
    tracing::info!(api_url = %emulator.api_url(), "--demo: following the embedded emulator's demo channel");
    args.api_url = emulator.api_url();
    args.ws_url = emulator.ws_url();
    args.token = Some(token.to_owned());
    args.channel_url = Some("demo".into());
    Ok(emulator)
}

/// Reads the connector's events into the feed until the connection ends.
async fn follow(_client: Client, mut events: Events, feed: Arc<Feed>) -> Result<(), String> {
    while let Some(event) = events.next().await {
        match event {
            Event::Publication(publication) => {
                if let Some(item) = Item::from_event(&publication.event) {
                    feed.push(&item);
                }
            }
            Event::Closed { reason } => {
                return match reason {
                    CloseReason::Failed(error) => Err(error.to_string()),
                    _ => Ok(()),
                };
            }
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => tracing::warn!(%channel, code, %reason, "subscription failed"),
            Event::Lagged { dropped } => tracing::warn!(dropped, "events dropped"),
            Event::Disconnected { code, reason } => {
                tracing::warn!(?code, %reason, "disconnected; reconnecting")
            }
            other => tracing::debug!(?other, "lifecycle"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// What the page gets: one small JSON object per event (docs/overlay.md)
// ---------------------------------------------------------------------------

/// One event for the page, the `data` of an SSE `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// Someone followed.
    Follow { user: Person },
    /// Another channel raided this one.
    Raid {
        user: Person,
        /// The raiding channel's slug, when known.
        channel: Option<String>,
        /// How many viewers came along, when known.
        viewers: Option<i64>,
    },
    /// A paid subscription.
    Subscription {
        user: Person,
        /// The level's name, when known.
        level: Option<String>,
    },
    /// A channel-points reward was redeemed.
    Redemption {
        user: Person,
        /// The reward's name, when known.
        reward: Option<String>,
        /// Its price in points, when known.
        cost: Option<i64>,
        /// The viewer's message (may be empty).
        message: String,
    },
    /// A public chat message.
    Chat {
        id: i64,
        user: Person,
        parts: Vec<Piece>,
    },
    /// A chat message was deleted.
    Delete { id: i64 },
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Display name, as sent by VK (any text).
    pub nick: String,
    /// Nick colour `#RRGGBB` from the VK palette, when known.
    pub color: Option<String>,
    /// Avatar image URL as sent by VK (chat only; the page shows it only
    /// when it is `http:` or `https:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// One piece of a chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Piece {
    /// Plain text.
    Text(String),
    /// A mentioned nick, without the `@`.
    Mention(String),
    /// An emote: its name and image URL (as sent by VK).
    Smile { name: String, url: Option<String> },
    /// A link: its visible text and target.
    Link { text: String, url: String },
}

impl Person {
    fn of(user: &User) -> Person {
        Person {
            nick: user.nick.clone(),
            color: user.nick_color_hex().map(str::to_owned),
            avatar: None,
        }
    }
}

impl Item {
    /// The overlay's view of an event; `None` for what it does not show
    /// (private messages, stream events, unknown types).
    pub fn from_event(event: &VkEvent) -> Option<Item> {
        let item = match event {
            VkEvent::Follow(follow) => Item::Follow {
                user: Person::of(&follow.follower),
            },
            VkEvent::Raid(raid) => {
                let channel = raid
                    .source
                    .channel
                    .as_ref()
                    .map(|channel| channel.url.clone());
                let mut user = raid
                    .source
                    .owner
                    .as_ref()
                    .map(Person::of)
                    .unwrap_or_default();
                if user.nick.is_empty() {
                    user.nick = channel.clone().unwrap_or_default();
                }
                Item::Raid {
                    user,
                    channel,
                    viewers: raid.raiders_count,
                }
            }
            VkEvent::Subscription(subscription) => Item::Subscription {
                user: subscription
                    .subscriber
                    .as_ref()
                    .map(Person::of)
                    .unwrap_or_default(),
                level: subscription
                    .level
                    .as_ref()
                    .and_then(|level| level.name.clone()),
            },
            VkEvent::RewardDemand(demand) => Item::Redemption {
                user: demand.user.as_ref().map(Person::of).unwrap_or_default(),
                reward: demand.reward.name.clone(),
                cost: demand.reward.price,
                message: demand.message_text(),
            },
            VkEvent::ChatMessage(message) if !message.is_private => {
                let author = message.author.clone().unwrap_or_default();
                Item::Chat {
                    id: message.id,
                    user: Person {
                        color: author.nick_color_hex().map(str::to_owned),
                        nick: author.nick,
                        avatar: author.avatar_url,
                    },
                    parts: pieces(&message.parts),
                }
            }
            VkEvent::ChatMessageDelete(deleted) => Item::Delete { id: deleted.id },
            _ => return None,
        };
        Some(item)
    }
}

fn pieces(parts: &[Part]) -> Vec<Piece> {
    let mut pieces = Vec::with_capacity(parts.len());
    for part in parts {
        pieces.push(match part {
            Part::Text(text) => Piece::Text(text.content.clone()),
            Part::Mention(mention) => Piece::Mention(match (mention.nick.is_empty(), mention.id) {
                (true, Some(id)) => id.to_string(),
                _ => mention.nick.clone(),
            }),
            Part::Smile(smile) => Piece::Smile {
                name: smile.name.clone(),
                url: smile
                    .medium_url
                    .clone()
                    .or_else(|| smile.small_url.clone())
                    .or_else(|| smile.large_url.clone()),
            },
            Part::Link(link) => Piece::Link {
                text: link.content.clone(),
                url: link.url.clone(),
            },
            _ => continue,
        });
    }
    // VK ends many messages with a text part holding only "\n".
    while matches!(pieces.last(), Some(Piece::Text(text)) if text.trim().is_empty()) {
        pieces.pop();
    }
    pieces
}

// ---------------------------------------------------------------------------
// The feed: numbered events and a bounded replay buffer
// ---------------------------------------------------------------------------

/// Every event gets the next sequence number; the last `capacity` are kept
/// so that a page that reconnects gets what it missed. SSE ids are
/// `<boot>-<seq>`, where `boot` names this run of the server: an id from
/// another run means "everything you have".
pub struct Feed {
    boot: String,
    capacity: usize,
    inner: Mutex<Buffer>,
    latest: watch::Sender<u64>,
}

struct Buffer {
    last: u64,
    items: VecDeque<(u64, Arc<str>)>,
}

impl Feed {
    pub fn new(capacity: usize) -> Feed {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Feed {
            boot: format!("{:x}", nanos & 0xffff_ffff_ffff),
            capacity: capacity.max(1),
            inner: Mutex::new(Buffer {
                last: 0,
                items: VecDeque::new(),
            }),
            latest: watch::channel(0).0,
        }
    }

    pub fn push(&self, item: &Item) {
        let json: Arc<str> = match serde_json::to_string(item) {
            Ok(json) => json.into(),
            Err(error) => {
                tracing::warn!(%error, "cannot encode an event");
                return;
            }
        };
        let seq = {
            let mut buffer = self.inner.lock().expect("feed lock");
            buffer.last += 1;
            let seq = buffer.last;
            buffer.items.push_back((seq, json));
            while buffer.items.len() > self.capacity {
                buffer.items.pop_front();
            }
            seq
        };
        self.latest.send_replace(seq);
    }

    fn id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.boot)
    }

    /// Where a page that presents `resume` (a `Last-Event-ID`) starts: after
    /// that event when it is from this run, at the start of the buffer when
    /// it is from another run, at the live edge when there is none.
    fn start_after(&self, resume: Option<&str>) -> u64 {
        let last = self.inner.lock().expect("feed lock").last;
        let Some(resume) = resume.map(str::trim).filter(|resume| !resume.is_empty()) else {
            return last;
        };
        match resume.rsplit_once('-') {
            Some((boot, seq)) if boot == self.boot => {
                seq.parse::<u64>().map_or(last, |seq| seq.min(last))
            }
            _ => 0,
        }
    }

    /// The events after `seq`, and how many of those were already dropped
    /// from the buffer.
    fn after(&self, seq: u64) -> (Vec<(u64, Arc<str>)>, u64) {
        let buffer = self.inner.lock().expect("feed lock");
        let oldest = buffer
            .items
            .front()
            .map_or(buffer.last + 1, |(seq, _)| *seq);
        let missed = oldest.saturating_sub(seq + 1);
        let skip = buffer.items.partition_point(|(kept, _)| *kept <= seq);
        let items = buffer.items.iter().skip(skip).cloned().collect();
        (items, missed)
    }
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

pub fn router(feed: Arc<Feed>) -> Router {
    Router::new()
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/overlay.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    OVERLAY_JS,
                )
            }),
        )
        .route(
            "/overlay.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
                    OVERLAY_CSS,
                )
            }),
        )
        .route("/events", get(events))
        .layer(axum::middleware::map_response(harden))
        .with_state(feed)
}

async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[derive(Deserialize)]
struct Resume {
    /// The page's saved position, for a reload (an `EventSource` cannot set
    /// `Last-Event-ID` on its first request).
    since: Option<String>,
}

/// `GET /events`: the SSE stream. Starts with a `hello` event whose id is
/// the position the stream starts from, then a `gap` event if the buffer no
/// longer holds all that was missed, then one `message` per event.
async fn events(
    State(feed): State<Arc<Feed>>,
    headers: HeaderMap,
    Query(resume): Query<Resume>,
) -> impl IntoResponse {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok());
    let start = feed.start_after(last_event_id.or(resume.since.as_deref()));
    let hello = SseEvent::default()
        .event("hello")
        .id(feed.id(start))
        .retry(Duration::from_secs(1))
        .data(format!(r#"{{"replay":{}}}"#, feed.capacity));
    let state = Cursor {
        latest: feed.latest.subscribe(),
        feed,
        last: start,
        pending: VecDeque::from([hello]),
    };
    Sse::new(stream(state)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

struct Cursor {
    feed: Arc<Feed>,
    latest: watch::Receiver<u64>,
    last: u64,
    pending: VecDeque<SseEvent>,
}

fn stream(state: Cursor) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            // Marked seen before reading, so a push after the read wakes us.
            state.latest.borrow_and_update();
            let (items, missed) = state.feed.after(state.last);
            if missed > 0 {
                state.pending.push_back(
                    SseEvent::default()
                        .event("gap")
                        .data(format!(r#"{{"missed":{missed}}}"#)),
                );
            }
            for (seq, json) in items {
                state.last = seq;
                state
                    .pending
                    .push_back(SseEvent::default().id(state.feed.id(seq)).data(&*json));
            }
            if state.pending.is_empty() && state.latest.changed().await.is_err() {
                return None;
            }
        }
    })
}
