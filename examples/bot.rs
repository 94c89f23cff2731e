//! `bot`: a chat bot for VK Video Live.
//!
//! ```text
//! VKLIVE_TOKEN=... cargo run --features emulator --example bot -- \
//!     --api-url URL --ws-url URL --channel-url SLUG
//! cargo run --features emulator --example bot -- --demo   # embedded emulator, scripted viewers
//! ```
//!
//! It answers `!ping` with `pong` (mentioning the asker) and `!uptime` with
//! the time since the stream started, thanks new followers, raiders and
//! subscribers in chat, never answers its own messages, and sends no faster
//! than the library's per-channel rate limit (one message per 1.5 s). The
//! token (in `VKLIVE_TOKEN`) needs the `chat:message:send` scope. Every
//! message it sends is printed on stdout as one line.

use std::time::{Duration, SystemTime};

use clap::Parser;
use futures::StreamExt;
use vklive_pubsub::auth::{DEFAULT_API_URL, Message, VkApi};
use vklive_pubsub::emulator::{
    DemoUser, Emulator, EmulatorConfig, chat_message_send, demo_users, follow_create, raid_income,
    subscription_create, text_part,
};
use vklive_pubsub::event::{ChatMessage, MentionPart, Part};
use vklive_pubsub::{Authorization, Client, DEFAULT_WS_URL, ErrorKind, Event, VkEvent};

#[derive(Debug, Parser)]
#[command(
    about = "A VK Video Live chat bot: !ping, !uptime, thanks for follows, raids and subscriptions"
)]
struct Args {
    /// DevAPI REST base URL.
    #[arg(long, default_value = DEFAULT_API_URL)]
    api_url: String,
    /// Pubsub WebSocket URL.
    #[arg(long, default_value = DEFAULT_WS_URL)]
    ws_url: String,
    /// The channel: a slug or `https://live.vkvideo.ru/<slug>`.
    #[arg(long, required_unless_present = "demo")]
    channel_url: Option<String>,
    /// Command prefix.
    #[arg(long, default_value = "!")]
    prefix: String,
    /// Run against an embedded emulator with scripted viewers (no account needed).
    #[arg(long)]
    demo: bool,
    /// Read the channel's events from `vklive relay`'s stream in this NATS
    /// server, as one bot of a fleet sharing the durable consumer
    /// `vklive-bot`: each event reaches one bot, so each command is answered
    /// once (docs/relay.md). Needs the `relay` feature.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(error) = run(args).await {
        eprintln!("bot: {error}");
        std::process::exit(1);
    }
}

async fn run(mut args: Args) -> Result<(), vklive_pubsub::Error> {
    let token = if args.demo {
        let emulator = start_demo().await?;
        args.api_url = emulator.api_url();
        args.ws_url = emulator.ws_url();
        args.channel_url = Some(String::from("demo"));
        String::from(DEMO_BOT_TOKEN)
    } else {
        std::env::var("VKLIVE_TOKEN").map_err(|_| {
            vklive_pubsub::Error::new(ErrorKind::InvalidArgument, "set VKLIVE_TOKEN")
        })?
    };
    let slug = args.channel_url.unwrap_or_default();

    // Until the builder subscribes by slug: look the channel up, subscribe its public names.
    let api = VkApi::new(
        &args.api_url,
        std::sync::Arc::new(Authorization::user(token.as_str())),
    )?;
    let me = api.current_user().await?.user;
    let channel = api.channel_response(&slug).await?.channel;
    let channels = channel.web_socket_channels.public();
    let (client, events) = Client::with_user_token(token)
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channels(if args.nats.is_some() {
            Vec::new()
        } else {
            channels.clone()
        })
        .connect()
        .await?;
    let mut events = match &args.nats {
        Some(url) => fleet_events(url, &channels).await?,
        None => events.boxed(),
    };
    eprintln!("bot: {} ({}) in {}", me.nick, me.id, channel.url);

    while let Some(event) = events.next().await {
        let publication = match event {
            Event::Publication(publication) => publication,
            Event::Closed { reason } => {
                eprintln!("bot: closed: {reason:?}");
                break;
            }
            _ => continue,
        };
        let answer = match publication.event {
            VkEvent::ChatMessage(message) if !message.is_from(me.id) => {
                answer(client.api(), &slug, &args.prefix, &message).await
            }
            VkEvent::Follow(follow) => Some(thanks(
                "Thanks for following, ",
                follow.follower.id,
                &follow.follower.nick,
            )),
            VkEvent::Raid(raid) => {
                let owner = raid.source.owner.unwrap_or_default();
                let count = raid.raiders_count.unwrap_or(0);
                Some(
                    thanks(
                        "Welcome, raiders! Thanks for the raid, ",
                        owner.id,
                        &owner.nick,
                    )
                    .text(format!(" ({count} viewers)")),
                )
            }
            VkEvent::Subscription(subscription) => {
                let fan = subscription.subscriber.unwrap_or_default();
                Some(thanks("Thank you for subscribing, ", fan.id, &fan.nick))
            }
            _ => None,
        };
        if let Some(message) = answer {
            // Sends wait for the rate limit in their own task, so reading goes on.
            let (api, slug) = (client.api().clone(), slug.clone());
            tokio::spawn(async move { send(&api, &slug, message).await });
        }
    }
    Ok(())
}

/// The channels' events from the relay's stream, through the fleet's shared consumer.
#[cfg(feature = "relay")]
async fn fleet_events(
    url: &str,
    channels: &[String],
) -> Result<futures::stream::BoxStream<'static, Event>, vklive_pubsub::Error> {
    use vklive_pubsub::relay::{DEFAULT_STREAM, NatsOptions, Start, Subscriber};
    let fail = |error: vklive_pubsub::relay::RelayError| {
        vklive_pubsub::Error::new(ErrorKind::Transport, error.to_string())
    };
    let nats = NatsOptions::new(url).connect().await.map_err(fail)?;
    let shared = Subscriber::shared(nats, DEFAULT_STREAM, "vklive-bot", Start::New, channels);
    Ok(shared.await.map_err(fail)?.boxed())
}

#[cfg(not(feature = "relay"))]
async fn fleet_events(
    _: &str,
    _: &[String],
) -> Result<futures::stream::BoxStream<'static, Event>, vklive_pubsub::Error> {
    let message = "--nats needs the relay feature: --features emulator,relay";
    Err(vklive_pubsub::Error::new(
        ErrorKind::InvalidArgument,
        message,
    ))
}

/// The answer to a chat message, if it is a command the bot knows.
async fn answer(api: &VkApi, slug: &str, prefix: &str, message: &ChatMessage) -> Option<Message> {
    let command = message.command(prefix)?;
    let author = message.author_id()?;
    let text = if command.is("ping") {
        String::from(" pong")
    } else if command.is("uptime") {
        match api.live_stream(slug).await {
            Ok(stream) => match stream.started_at.map(|at| at.system_time()) {
                Some(started) => format!(" live for {}", since(started)),
                None => String::from(" live, since an unknown time"),
            },
            Err(error) if error.kind() == ErrorKind::NoLiveStream => String::from(" offline"),
            Err(error) => {
                eprintln!("bot: uptime: {error}");
                return None;
            }
        }
    } else {
        return None;
    };
    Some(
        Message::new()
            .part(mention(author, message.author_nick()))
            .text(text),
    )
}

/// "Thanks …" with a mention when the user's id is known, else the nick.
fn thanks(text: &str, id: Option<i64>, nick: &str) -> Message {
    let message = Message::new().text(text);
    match id {
        Some(id) => message.part(mention(id, nick)),
        None => message.text(nick),
    }
}

/// A mention; the nick is only for the printed line (VK takes the id).
fn mention(id: i64, nick: &str) -> Part {
    Part::Mention(MentionPart {
        id: Some(id),
        nick: nick.to_owned(),
    })
}

/// `1h 02m 03s`.
fn since(started: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(started)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    format!("{}h {:02}m {:02}s", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Sends, printing what went out; a repeat of the bot's previous text is
/// marked and sent once more.
async fn send(api: &VkApi, slug: &str, message: Message) {
    let mut result = api.send_message(slug, message.clone()).await;
    if result
        .as_ref()
        .is_err_and(|e| e.kind() == ErrorKind::SameMessage)
    {
        result = api.send_message(slug, message.clone().text(" ↻")).await;
    }
    match result {
        Ok(()) => println!("{}", message.plain_text()),
        Err(error) => eprintln!("bot: send failed: {error}"),
    }
}

const DEMO_BOT_TOKEN: &str = "demo-bot-token";

/// An embedded emulator: channel `demo` (id 1), its owner, the bot (user 2),
/// and scripted viewers typing commands and following, raiding, subscribing.
async fn start_demo() -> Result<Emulator, vklive_pubsub::Error> {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .map_err(|error| {
            vklive_pubsub::Error::new(ErrorKind::Transport, format!("emulator: {error}"))
        })?;
    emulator.add_user("demo-owner-token", 1, "Стример");
    emulator.add_user(DEMO_BOT_TOKEN, 2, "vkbot");
    let names = emulator.add_channel("demo", 1);
    eprintln!("bot: demo emulator at {}", emulator.api_url());
    let viewers: Vec<DemoUser> = demo_users().into_iter().skip(1).collect();
    let script = emulator.clone();
    tokio::spawn(async move {
        let mut id = 1;
        loop {
            for (step, viewer) in viewers.iter().enumerate() {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                id += 1;
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let say = |text: &str| chat_message_send(id, now, viewer, vec![text_part(text)]);
                match step % 6 {
                    0 => script.publish(&names.chat, say("!ping")),
                    1 => script.publish(&names.chat, say("привет всем 👋")),
                    2 => script.publish(&names.chat, say("!uptime")),
                    3 => script.publish(&names.info, follow_create(viewer)),
                    4 => script.publish(&names.info, raid_income(viewer, 12)),
                    _ => script.publish(&names.info, subscription_create(viewer, "Фанат", 99)),
                };
            }
        }
    });
    Ok(emulator)
}
