//! `vklive tail`: follow channels and print every event.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Instant;

use futures::{FutureExt, StreamExt};
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Authorization, Client, CloseReason, Event};

use crate::render::Style;
use crate::shutdown::Shutdown;

/// The embedded emulator's user token in `--demo` (a made-up one).
const DEMO_TOKEN: &str = "demo-access-token";
/// Demo chat messages a second.
const DEMO_RATE: f64 = 5.0;

#[derive(Debug, clap::Args)]
#[command(after_help = "The access token comes from VKLIVE_TOKEN (or --token). \
Without one, try --demo: it tails the embedded emulator's invented chat. \
The first connect gives up after 3 failed attempts or 15 s, whichever comes first.")]
pub(crate) struct Args {
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    api_url: String,
    /// Pubsub WebSocket URL.
    #[arg(long, default_value = vklive_pubsub::DEFAULT_WS_URL)]
    ws_url: String,
    /// A user access token (default: the VKLIVE_TOKEN environment variable).
    #[arg(long, env = "VKLIVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Resolve this channel slug and follow its chat, info and channel points
    /// channels (and the private ones when a token is granted).
    #[arg(long = "channel-url", value_name = "SLUG")]
    channel_urls: Vec<String>,
    /// Exit with status 0 after this many publications.
    #[arg(short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Print no per-event lines; print a summary line at exit.
    #[arg(short = 'q')]
    quiet: bool,
    /// Print NDJSON even on a terminal (it is the default when stdout is not one).
    #[arg(long)]
    json: bool,
    /// Tail the embedded emulator's demo channel: invented chat, follows,
    /// raids, no account needed. Says so on stderr.
    #[arg(long, conflicts_with_all = ["api_url", "ws_url"])]
    demo: bool,
    /// Tail the relay's stream in NATS JetStream instead of VK (no token
    /// needed): what `vklive relay` published, new events only unless --since.
    #[arg(long, value_name = "URL", conflicts_with = "demo")]
    nats: Option<String>,
    /// With --nats: start this long ago (`90s`, `15m`, `1h`, `2d`).
    #[arg(long, value_name = "DURATION", requires = "nats", value_parser = crate::relay::parse_duration)]
    since: Option<std::time::Duration>,
    /// Pubsub channel names to follow, verbatim.
    channels: Vec<String>,
}

pub(crate) async fn run(mut args: Args) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    if let Some(url) = &args.nats {
        let style = Style::choose(args.json, std::io::stdout().is_terminal());
        let stop = async move { shutdown.requested().await };
        let tail = crate::relay::Tail {
            url,
            since: args.since,
            channels: &args.channels,
            count: args.count,
            quiet: args.quiet,
        };
        return tail.run(style, stop).await;
    }
    // Kept alive for the whole run when tailing the demo.
    let _emulator = if args.demo {
        Some(start_demo(&mut args).await?)
    } else {
        None
    };
    let token = args.token.clone().ok_or(
        "no access token: set VKLIVE_TOKEN (or pass --token), \
         or run `vklive tail --demo` to tail the built-in emulator",
    )?;
    let credentials = Authorization::user(token);

    let mut builder = Client::builder(credentials.clone())
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channels(args.channels.clone());
    let mut wanted: HashSet<String> = args.channels.iter().cloned().collect();
    let api =
        vklive_pubsub::auth::VkApi::new(&args.api_url, std::sync::Arc::new(credentials.clone()))
            .map_err(|error| error.to_string())?;
    for slug in &args.channel_urls {
        let info = api.channel(slug).await.map_err(|error| error.to_string())?;
        let names = &info.web_socket_channels;
        // The public chat, filled in from REST after a loss; the other
        // public channels as they are.
        for name in names.public() {
            builder = if names.chat.as_ref() == Some(&name) {
                builder.chat_channel(name.clone(), slug)
            } else {
                builder.channel(name.clone())
            };
            wanted.insert(name);
        }
        // Private channels only when this user is granted a token for them
        // (VK's rule: no token in the answer means no access).
        let private = names.private();
        let granted = api
            .subscription_tokens(&private)
            .await
            .map_err(|error| error.to_string())?;
        for name in private
            .into_iter()
            .filter(|name| granted.contains_key(name))
        {
            builder = builder.channel(name.clone());
            wanted.insert(name);
        }
    }
    if wanted.is_empty() {
        return Err("no channels: name some, or use --channel-url SLUG".into());
    }

    let started = Instant::now();
    let (client, mut events) = tokio::select! {
        connected = builder.connect() => connected.map_err(|error| error.to_string())?,
        () = shutdown.requested() => return Ok(()),
    };

    let style = Style::choose(args.json, std::io::stdout().is_terminal());
    let mut publications = 0u64;
    let mut subscribed_any = false;
    let mut refused: Vec<String> = Vec::new();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut closing = false;
    let mut failure: Option<String> = None;
    let outcome = loop {
        // Flush only when no event is ready, so bursts cost one write.
        let event = match events.next().now_or_never() {
            Some(event) => event,
            None => {
                let _ = out.flush();
                tokio::select! {
                    event = events.next() => event,
                    () = shutdown.requested(), if !closing => {
                        closing = true;
                        let _ = client.close().await;
                        continue;
                    }
                }
            }
        };
        let Some(event) = event else {
            break Ok(());
        };
        if let Event::Closed { reason } = event {
            break match (reason, failure.take()) {
                (CloseReason::Failed(error), _) => Err(error.to_string()),
                (_, Some(failure)) => Err(failure),
                _ => Ok(()),
            };
        }
        match &event {
            Event::Publication(_) => {
                if closing {
                    continue; // past -n N, or interrupted: print nothing more
                }
                publications += 1;
            }
            Event::Subscribed { .. } => subscribed_any = true,
            Event::SubscriptionFailed {
                channel,
                code,
                reason,
            } => {
                refused.push(format!("{channel} ({code} {reason})"));
                if !subscribed_any && !closing && refused.len() >= wanted.len() {
                    failure = Some(format!(
                        "none of the channels could be subscribed: {}",
                        refused.join(", ")
                    ));
                    closing = true;
                    let _ = client.close().await;
                }
            }
            _ => {}
        }
        if !args.quiet && writeln!(out, "{}", style.line(&event)).is_err() {
            break Ok(()); // stdout closed (e.g. piped into `head`)
        }
        if !closing && args.count.is_some_and(|count| publications >= count) {
            closing = true;
            let _ = client.close().await;
        }
    };
    if args.quiet {
        let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        let _ = writeln!(out, "{}", style.summary(publications, seconds));
    }
    let _ = out.flush();
    outcome
}

/// Starts the embedded emulator with demo traffic and points `args` at it.
async fn start_demo(args: &mut Args) -> Result<Emulator, String> {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .map_err(|error| format!("cannot start the emulator: {error}"))?;
    emulator.add_user(DEMO_TOKEN, 1, "demo-viewer");
    let names = emulator.add_channel("demo", 1);
    emulator.start_demo(&names, DEMO_RATE);
    eprintln!(
        "--demo: following the embedded emulator at {} (invented chat, not VK Video Live)",
        emulator.api_url()
    );
    args.api_url = emulator.api_url();
    args.ws_url = emulator.ws_url();
    args.token = Some(DEMO_TOKEN.to_owned());
    if args.channels.is_empty() && args.channel_urls.is_empty() {
        args.channel_urls.push("demo".into());
    }
    Ok(emulator)
}
