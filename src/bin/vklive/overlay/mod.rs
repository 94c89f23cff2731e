//! `vklive overlay`: a stream overlay for OBS. Follows one VK Video Live
//! channel and serves a page with alerts (follows, raids, subscriptions,
//! redemptions) and the chat, fed live over Server-Sent Events. See
//! `docs/overlay.md`.
//!
//! The page (`assets/`) is compiled in; its safety rules (text only through
//! `textContent`, images only from `http:`/`https:` URLs, a strict
//! Content-Security-Policy) are in `docs/overlay.md`.

mod feed;
mod http;
mod item;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use futures::StreamExt;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::event::ChannelKey;
use vklive_pubsub::{Authorization, Client, CloseReason, Credentials, Event, Events};

use crate::credentials::{self, TokenArgs};
use crate::kinds::{Kind, KindFilter};
use crate::numbers::non_negative;
use crate::render::clean;
use crate::shutdown::Shutdown;
use feed::Feed;
use http::AllowedHosts;
use item::Item;

/// Default size of the replay buffer, in events.
pub(crate) const DEFAULT_REPLAY: usize = 1000;

/// The chats an overlay never shows on stream: what they carry is meant for
/// the token's user (or the channel's moderators), not for every viewer.
const HIDDEN_CHATS: [ChannelKey; 3] = [
    ChannelKey::PrivateChat,
    ChannelKey::LimitedChat,
    ChannelKey::LimitedPrivateChat,
];

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the page's URL (http://127.0.0.1:PORT/) as the one line on stdout: \
add it to OBS as a browser source. The access token comes from --token-file, else VKLIVE_TOKEN, else \
the login stored by `vklive token`. Exits 1 when the connection to VK ends for good, 0 on Ctrl-C or SIGTERM."
)]
pub(crate) struct Args {
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    api_url: String,
    /// Pubsub WebSocket URL.
    #[arg(long, default_value = vklive_pubsub::DEFAULT_WS_URL)]
    ws_url: String,
    #[command(flatten)]
    token: TokenArgs,
    /// The channel to follow: its slug (`live.vkvideo.ru/<SLUG>`) or page URL.
    #[arg(
        long = "channel-url",
        value_name = "SLUG",
        required_unless_present = "demo"
    )]
    channel_url: Option<String>,
    /// Port on 127.0.0.1 to serve the page on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Show only these kinds of event (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,...")]
    kind: Vec<Kind>,
    /// Also answer requests for this host name (`NAME` or `NAME:PORT`), for
    /// a browser source on another machine; by default only
    /// 127.0.0.1:PORT and localhost:PORT are answered. May be repeated.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// How many events the server keeps for pages that reconnect.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REPLAY)]
    replay: usize,
    /// Start the embedded emulator with demo traffic and follow its demo channel.
    #[arg(long, conflicts_with_all = ["api_url", "ws_url", "channel_url"])]
    demo: bool,
    /// Demo traffic: publications a second (with --demo).
    #[arg(long, value_name = "RATE", default_value_t = 5.0, value_parser = non_negative)]
    demo_rate: f64,
}

pub(crate) async fn run(args: Args) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    let overlay = tokio::select! {
        overlay = start(args) => overlay?,
        () = shutdown.requested() => return Ok(()),
    };
    println!("{}", overlay.url);
    eprintln!(
        "overlay: add {} to OBS as a browser source (Sources → + → Browser); stop with Ctrl-C",
        overlay.url
    );
    tokio::select! {
        outcome = overlay.finished() => outcome,
        () = shutdown.requested() => Ok(()),
    }
}

/// A running overlay server.
struct Overlay {
    url: String,
    _emulator: Option<Emulator>,
    follower: tokio::task::JoinHandle<Result<(), String>>,
}

impl Overlay {
    /// Resolves when the connection to VK ends for good: `Err` with the
    /// reason when it failed (a revoked token, …).
    async fn finished(self) -> Result<(), String> {
        match self.follower.await {
            Ok(outcome) => outcome,
            Err(error) => Err(format!("event task failed: {error}")),
        }
    }
}

/// Connects, binds the port and starts serving.
async fn start(mut args: Args) -> Result<Overlay, String> {
    let (emulator, credentials) = if args.demo {
        let (emulator, credentials) = start_demo(&mut args).await?;
        (Some(emulator), credentials)
    } else {
        (None, credentials::required(&args.token)?)
    };
    let slug = args
        .channel_url
        .clone()
        .ok_or("no channel: pass --channel-url SLUG, or use --demo")?;
    let (client, events) = Client::builder_with(credentials)
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channel_url_without(&slug, HIDDEN_CHATS)
        .connect()
        .await
        .map_err(|error| clean(&error.to_string()))?;
    tracing::info!("following {slug}");

    let feed = Arc::new(Feed::new(args.replay));
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .map_err(|error| format!("cannot listen on 127.0.0.1:{}: {error}", args.port))?;
    let addr: SocketAddr = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let app = http::router(
        Arc::clone(&feed),
        AllowedHosts::new(addr.port(), &args.allow_host),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "overlay server stopped");
        }
    });
    let show = Show {
        kinds: KindFilter::new(&args.kind),
    };
    let follower = tokio::spawn(follow(client, events, feed, show));
    Ok(Overlay {
        url: format!("http://{addr}/"),
        _emulator: emulator,
        follower,
    })
}

/// Starts the embedded emulator with demo traffic and points `args` at it.
async fn start_demo(args: &mut Args) -> Result<(Emulator, Arc<dyn Credentials>), String> {
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
    args.channel_url = Some("demo".into());
    Ok((emulator, Arc::new(Authorization::user(token))))
}

/// What the page gets: the kinds asked for (the channels it may not show
/// are never subscribed: [`HIDDEN_CHATS`]).
struct Show {
    kinds: KindFilter,
}

/// Reads the connector's events into the feed until the connection ends
/// (`_client` is held so that the connection lives as long as the feed).
async fn follow(
    _client: Client,
    mut events: Events,
    feed: Arc<Feed>,
    show: Show,
) -> Result<(), String> {
    while let Some(event) = events.next().await {
        match event {
            Event::Publication(publication) => {
                if !show.kinds.shows(&publication.event) {
                    continue;
                }
                if let Some(item) = Item::from_event(&publication.event) {
                    feed.push(&item);
                }
            }
            Event::Closed { reason } => {
                return match reason {
                    CloseReason::Failed(error) => Err(clean(&error.to_string())),
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
