//! `vklive tail`: follow channels and print every event.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Authorization, Client, CloseReason, Credentials, Event};

use crate::credentials::{self, TokenArgs};
use crate::kinds::{Kind, KindFilter};
use crate::nats_options::{NatsArgs, nats_options};
use crate::output::Output;
use crate::render::{Style, clean};
use crate::shutdown::Shutdown;

/// The embedded emulator's user token in `--demo` (a made-up one).
const DEMO_TOKEN: &str = "demo-access-token";
/// Demo chat messages a second.
const DEMO_RATE: f64 = 5.0;
/// After a stop request: how long closing the connection, then writing what
/// is queued, may take (together under a second, whatever stdout's reader does).
const STOP_PATIENCE: Duration = Duration::from_millis(400);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The access token comes from --token-file, else VKLIVE_TOKEN, else the login \
stored by `vklive token`. Without one, try --demo: it tails the embedded emulator's invented chat. \
The first connect gives up after 3 failed attempts or 15 s, whichever comes first. \
With --nats no VK token is needed; a NATS token comes from NATS_TOKEN, as for `vklive relay`."
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
    /// Follow this VK channel (a slug or its page's URL): its chat, info and
    /// channel points channels, and the private ones the token is granted.
    #[arg(long = "channel-url", value_name = "SLUG")]
    channel_urls: Vec<String>,
    /// Show only these kinds of event (comma-separated); lifecycle lines
    /// (connected, subscribed, gaps) are always shown.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND,...")]
    kind: Vec<Kind>,
    /// Exit with status 0 after this many publications (of the kinds shown).
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
    /// With --nats: the JetStream stream the relay publishes into.
    #[arg(long, value_name = "NAME", requires = "nats", default_value = vklive_pubsub::relay::DEFAULT_STREAM)]
    stream: String,
    #[command(flatten)]
    nats_auth: NatsArgs,
    /// Pubsub channel names to follow, verbatim.
    channels: Vec<String>,
}

pub(crate) async fn run(mut args: Args) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    if let Some(url) = &args.nats {
        return run_nats(url, &args, &mut shutdown).await;
    }
    // Kept alive for the whole run when tailing the demo.
    let (_emulator, credentials) = if args.demo {
        let (emulator, credentials) = start_demo(&mut args).await?;
        (Some(emulator), credentials)
    } else {
        (
            None,
            credentials::required(&args.token).map_err(|error| {
                format!("{error}, or run `vklive tail --demo` to tail the built-in emulator")
            })?,
        )
    };
    if args.channels.is_empty() && args.channel_urls.is_empty() {
        return Err("no channels: name some, or use --channel-url SLUG".into());
    }
    // What was asked for: each channel name, and each VK channel (whose
    // lookup, when it fails, is reported under the slug as given).
    let mut unanswered: HashSet<String> = args.channels.iter().cloned().collect();
    let mut builder = Client::builder_with(credentials)
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channels(args.channels.clone());
    for input in &args.channel_urls {
        builder = builder.channel_url(input);
        unanswered
            .insert(vklive_pubsub::auth::channel_slug(input).unwrap_or_else(|_| input.clone()));
    }
    let asked = unanswered.len();

    let started = Instant::now();
    let (client, mut events) = tokio::select! {
        connected = builder.connect() => connected.map_err(|error| clean(&error.to_string()))?,
        () = shutdown.requested() => return Ok(()),
    };

    let style = Style::choose(args.json, std::io::stdout().is_terminal());
    let filter = KindFilter::new(&args.kind);
    let output = Output::stdout()?;
    let mut publications = 0u64;
    let mut subscribed_any = false;
    let mut refused: Vec<String> = Vec::new();
    // Closing: past -n N, after a failure, or on a stop request (`stopping`),
    // when nothing may wait on stdout's reader any more.
    let mut closing = false;
    let mut stopping = false;
    let mut failure: Option<String> = None;
    let outcome = loop {
        let event = match events.next().now_or_never() {
            Some(event) => event,
            None => tokio::select! {
                event = events.next() => event,
                () = shutdown.requested(), if !stopping => {
                    stopping = true;
                    closing = true;
                    close(&client).await;
                    continue;
                }
            },
        };
        let Some(event) = event else {
            break Ok(());
        };
        if let Event::Closed { reason } = event {
            break match (reason, failure.take()) {
                (CloseReason::Failed(error), _) => Err(clean(&error.to_string())),
                (_, Some(failure)) => Err(failure),
                _ => Ok(()),
            };
        }
        match &event {
            Event::Publication(publication) => {
                if closing || !filter.shows(&publication.event) {
                    continue; // past -n N or stopping, or a kind not asked for
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
                unanswered.remove(channel);
                if !subscribed_any && !closing && asked > 0 && unanswered.is_empty() {
                    failure = Some(clean(&format!(
                        "none of the channels could be subscribed: {}",
                        refused.join(", ")
                    )));
                    closing = true;
                    close(&client).await;
                }
            }
            _ => {}
        }
        if !args.quiet {
            let line = style.line(&event);
            if stopping {
                output.try_line(line);
            } else {
                tokio::select! {
                    sent = output.line(line) => if sent.is_err() {
                        break Ok(()); // stdout closed (e.g. piped into `head`)
                    },
                    () = shutdown.requested() => {
                        stopping = true;
                        closing = true;
                        close(&client).await;
                    }
                }
            }
        }
        if !closing && args.count.is_some_and(|count| publications >= count) {
            closing = true;
            let _ = client.close().await;
        }
    };
    let summary = args
        .quiet
        .then(|| style.summary(publications, seconds_since(started)));
    finish(output, summary, stopping, &mut shutdown).await;
    outcome
}

/// `--nats`: the relay's stream instead of VK, through the same kind filter,
/// output thread, stop handling and cleaned errors as the VK path.
async fn run_nats(url: &str, args: &Args, shutdown: &mut Shutdown) -> Result<(), String> {
    use vklive_pubsub::relay::{Start, Subscriber};

    let started = Instant::now();
    let subscribing = async {
        let nats = nats_options(url, &args.nats_auth)
            .connect()
            .await
            .map_err(|error| clean(&error.to_string()))?;
        let start = args.since.map_or(Start::New, Start::since);
        Subscriber::ordered(nats, &args.stream, start, &args.channels)
            .await
            .map_err(|error| clean(&error.to_string()))
    };
    let mut events = tokio::select! {
        events = subscribing => events?,
        () = shutdown.requested() => return Ok(()),
    };
    let style = Style::choose(args.json, std::io::stdout().is_terminal());
    let filter = KindFilter::new(&args.kind);
    let output = Output::stdout()?;
    let mut publications = 0u64;
    let mut stopping = false;
    while args.count.is_none_or(|count| publications < count) {
        let event = tokio::select! {
            event = events.next() => event,
            () = shutdown.requested() => {
                stopping = true;
                break;
            }
        };
        let Some(event) = event else { break };
        if let Event::Publication(publication) = &event {
            if !filter.shows(&publication.event) {
                continue; // a kind not asked for
            }
            publications += 1;
        }
        if args.quiet {
            continue;
        }
        tokio::select! {
            sent = output.line(style.line(&event)) => if sent.is_err() {
                break; // stdout closed (e.g. piped into `head`)
            },
            () = shutdown.requested() => {
                stopping = true;
                break;
            }
        }
    }
    let summary = args
        .quiet
        .then(|| style.summary(publications, seconds_since(started)));
    finish(output, summary, stopping, shutdown).await;
    Ok(())
}

/// Seconds since `started`, to the millisecond, for `-q`'s summary.
fn seconds_since(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

/// Ends the output, `summary` last: after a stop request within
/// [`STOP_PATIENCE`] whatever its reader does; otherwise everything is
/// written, however slowly it is read, unless a stop request comes meanwhile.
async fn finish(output: Output, summary: Option<String>, stopping: bool, shutdown: &mut Shutdown) {
    if let Some(summary) = summary {
        output.try_line(summary);
    }
    if stopping {
        output.finish(Some(STOP_PATIENCE)).await;
    } else {
        tokio::select! {
            () = output.finish(None) => {}
            () = shutdown.requested() => {}
        }
    }
}

/// Closes the connection, giving up after [`STOP_PATIENCE`].
async fn close(client: &Client) {
    let _ = tokio::time::timeout(STOP_PATIENCE, client.close()).await;
}

/// Starts the embedded emulator with demo traffic and points `args` at it.
async fn start_demo(args: &mut Args) -> Result<(Emulator, Arc<dyn Credentials>), String> {
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
    if args.channels.is_empty() && args.channel_urls.is_empty() {
        args.channel_urls.push("demo".into());
    }
    Ok((emulator, Arc::new(Authorization::user(DEMO_TOKEN))))
}
