//! `bot`: a chat bot for VK Video Live.
//!
//! ```text
//! VKLIVE_TOKEN=... cargo run --features emulator --example bot -- \
//!     --api-url URL --ws-url URL --channel-url SLUG [--queue N] [--cooldown SECONDS]
//! cargo run --features emulator --example bot -- --demo   # embedded emulator, scripted viewers
//! VKLIVE_TOKEN=... cargo run --features emulator,relay --example bot -- \
//!     --api-url URL --ws-url URL --channel-url SLUG --nats nats://127.0.0.1:4222   # one of a fleet
//! ```
//!
//! It answers `!ping` with `pong` (mentioning the asker) and `!uptime` with
//! the time since the stream started, thanks new followers, raiders and
//! subscribers in chat, and never answers its own messages. The token (in
//! `VKLIVE_TOKEN`) needs the `chat:message:send` scope. Every message it
//! sends is printed on stdout as one line; what it drops or fails to send,
//! on stderr.
//!
//! Viewers cannot flood it (`vklive_pubsub::bot::ChatBot`): answers wait in
//! a bounded queue per channel (`--queue`, default 8) that drops the oldest
//! (and says how many on stderr), go out at the library's pace (one message
//! per 1.5 s per channel, a global limit across channels), each user may use
//! a command once per `--cooldown` seconds (default 5), and `!uptime`'s REST
//! call runs in the channel's sender task, never in the event loop.

use std::time::{Duration, SystemTime};

use clap::Parser;
use futures::StreamExt;
use vklive_pubsub::auth::{DEFAULT_API_URL, Message, VkApi};
use vklive_pubsub::bot::{BotSettings, ChatBot, Outcome, Outcomes};
use vklive_pubsub::emulator::{
    DemoUser, Emulator, EmulatorConfig, chat_message_send, demo_users, follow_create, raid_income,
    subscription_create, text_part,
};
use vklive_pubsub::event::{ChatMessage, MentionPart, Part};
use vklive_pubsub::{Client, DEFAULT_WS_URL, ErrorKind, Event, VkEvent};

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
    /// Answers waiting per channel; past it the oldest is dropped.
    #[arg(long, default_value_t = 8)]
    queue: usize,
    /// Seconds before one user may use the same command again.
    #[arg(long, default_value_t = 5)]
    cooldown: u64,
    /// Run against an embedded emulator with scripted viewers (no account needed).
    #[arg(long)]
    demo: bool,
    /// Read the channel's events from `vklive relay`'s stream in this NATS
    /// server, as one bot of a fleet sharing the durable consumer
    /// `vklive-bot`: each event reaches one bot, so each command is answered
    /// once (docs/relay.md). Needs the `relay` feature.
    /// NATS is reached as `vklive relay` reaches it: a token from NATS_TOKEN,
    /// a `.creds` file from NATS_CREDS, a CA certificate from NATS_CA.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// With --nats: the relay's JetStream stream.
    #[arg(long, value_name = "NAME", requires = "nats", default_value = "VKLIVE")]
    stream: String,
}

#[tokio::main]
async fn main() {
    // RUST_LOG, else warnings; lines that may carry a token never printed.
    vklive_pubsub::log::init("warn");
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

    // The builder looks the channel up by slug and subscribes its public
    // channels (and the private ones this token may read); one bot of a
    // fleet subscribes nothing and reads the relay's stream instead.
    let builder = Client::with_user_token(token)
        .api_url(&args.api_url)
        .ws_url(&args.ws_url);
    let (client, mut events) = match &args.nats {
        None => {
            let (client, events) = builder.channel_url(&slug).connect().await?;
            (client, events.boxed())
        }
        Some(url) => {
            let (client, _unused) = builder.connect().await?;
            // A slug or a page URL, read as `channel_url` reads it.
            let only_slug = vklive_pubsub::auth::channel_slug(&slug)?;
            let channels = client.api().channel(&only_slug).await?.web_socket_channels;
            let events = fleet_events(url, &args.stream, &channels.public()).await?;
            (client, events)
        }
    };
    let me = who_am_i(client.api()).await;
    let settings = BotSettings {
        queue_per_channel: args.queue,
        command_cooldown: Duration::from_secs(args.cooldown),
        ..BotSettings::default()
    };
    let (bot, outcomes) = ChatBot::new(client.api().clone(), settings);
    tokio::spawn(print_outcomes(bot.clone(), outcomes));

    while let Some(event) = events.next().await {
        let publication = match event {
            Event::Publication(publication) => publication,
            Event::SubscriptionFailed {
                channel, reason, ..
            } => {
                eprintln!("bot: cannot follow {channel}: {reason}");
                continue;
            }
            Event::Closed { reason } => {
                eprintln!("bot: closed: {reason:?}");
                break;
            }
            _ => continue,
        };
        let queued = match publication.event {
            VkEvent::ChatMessage(message) if !is_mine(&bot, me, &slug, &message) => {
                command(&bot, client.api(), &slug, &args.prefix, &message)
            }
            VkEvent::Follow(follow) => bot.say(
                &slug,
                thanks(
                    "Thanks for following, ",
                    follow.follower.id,
                    &follow.follower.nick,
                ),
            ),
            VkEvent::Raid(raid) => {
                let owner = raid.source.owner.unwrap_or_default();
                let count = raid.raiders_count.unwrap_or(0);
                bot.say(
                    &slug,
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
                bot.say(
                    &slug,
                    thanks("Thank you for subscribing, ", fan.id, &fan.nick),
                )
            }
            _ => Ok(()),
        };
        if let Err(error) = queued {
            eprintln!("bot: {error}");
        }
    }
    Ok(())
}

/// The bot's own user id, from `GET /v1/current_user` (which VK does not
/// document). Without it the bot goes on, and tells its own messages by
/// their text (`ChatBot::is_own_echo`: the last texts it sent).
async fn who_am_i(api: &VkApi) -> Option<i64> {
    match api.current_user().await {
        Ok(me) => {
            eprintln!("bot: signed in as {} ({})", me.user.nick, me.user.id);
            Some(me.user.id)
        }
        Err(error) => {
            eprintln!(
                "bot: going on without my user id ({error}): my own messages are told by their text"
            );
            None
        }
    }
}

/// The channels' events from the relay's stream, through the fleet's shared consumer.
#[cfg(feature = "relay")]
async fn fleet_events(
    url: &str,
    stream: &str,
    channels: &[String],
) -> Result<futures::stream::BoxStream<'static, Event>, vklive_pubsub::Error> {
    use vklive_pubsub::relay::{NatsOptions, Start, Subscriber};
    let set = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let mut options = NatsOptions::new(url);
    options.token = set("NATS_TOKEN").map(|token| token.to_string_lossy().into_owned().into());
    options.credentials_file = set("NATS_CREDS").map(Into::into);
    options.root_certificate = set("NATS_CA").map(Into::into);
    let nats = options.connect().await?;
    let shared = Subscriber::shared(nats, stream, "vklive-bot", Start::New, channels);
    Ok(shared.await?.boxed())
}

#[cfg(not(feature = "relay"))]
async fn fleet_events(
    _: &str,
    _: &str,
    _: &[String],
) -> Result<futures::stream::BoxStream<'static, Event>, vklive_pubsub::Error> {
    let message = "--nats needs the relay feature: --features emulator,relay";
    Err(vklive_pubsub::Error::new(
        ErrorKind::InvalidArgument,
        message,
    ))
}

/// Whether `message` is the bot's own: by its author id when known, else by
/// its text.
fn is_mine(bot: &ChatBot, me: Option<i64>, slug: &str, message: &ChatMessage) -> bool {
    match me {
        Some(id) => message.is_from(id),
        None => bot.is_own_echo(slug, message),
    }
}

/// Queues the answer to a chat command the bot knows, once per user per
/// cooldown; anything else is ignored.
fn command(
    bot: &ChatBot,
    api: &VkApi,
    slug: &str,
    prefix: &str,
    message: &ChatMessage,
) -> Result<(), vklive_pubsub::Error> {
    let (Some(command), Some(author)) = (message.command(prefix), message.author_id()) else {
        return Ok(());
    };
    let known = command.is("ping") || command.is("uptime");
    if !known || !bot.command_allowed(author, &command.name) {
        return Ok(());
    }
    if command.is("ping") {
        return bot.reply(slug, message, "pong");
    }
    // The REST call runs when the answer's turn comes, off this loop.
    let (api, channel) = (api.clone(), slug.to_owned());
    let mention = mention(author, message.author_nick());
    bot.say_later(slug, async move {
        let text = uptime(&api, &channel).await?;
        Some(Message::new().part(mention).text(text))
    })
}

/// ` live for 1h 02m 03s`, ` offline`, or nothing when the lookup failed.
async fn uptime(api: &VkApi, slug: &str) -> Option<String> {
    match api.live_stream(slug).await {
        Ok(stream) => Some(match stream.started_at.map(|at| at.system_time()) {
            Some(started) => format!(" live for {}", since(started)),
            None => String::from(" live, since an unknown time"),
        }),
        Err(error) if error.kind() == ErrorKind::NoLiveStream => Some(String::from(" offline")),
        Err(error) => {
            eprintln!("bot: uptime: {error}");
            None
        }
    }
}

/// Prints what went out on stdout, drops and failures on stderr; a repeat
/// of the bot's previous text is marked and queued once more.
async fn print_outcomes(bot: ChatBot, mut outcomes: Outcomes) {
    while let Some(outcome) = outcomes.recv().await {
        match outcome {
            Outcome::Sent { message, .. } => println!("{}", message.plain_text()),
            Outcome::Dropped { channel, count } => {
                eprintln!("bot: dropped {count} waiting answers in {channel} (queue full)")
            }
            Outcome::Failed {
                channel,
                message,
                error,
            } if error.kind() == ErrorKind::SameMessage && !message.plain_text().ends_with('↻') => {
                if let Err(error) = bot.say(&channel, message.text(" ↻")) {
                    eprintln!("bot: {error}");
                }
            }
            Outcome::Failed { error, .. } => eprintln!("bot: send failed: {error}"),
            _ => {}
        }
    }
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
