//! `tail`: follow VK Video Live channels and print every event as one JSON
//! object per line (NDJSON) on stdout. Logs go to stderr (`RUST_LOG`).
//!
//! ```text
//! tail [--api-url URL] [--ws-url URL] [--channel-url SLUG]... [-n N] [-q] [CHANNEL]...
//! ```
//!
//! The access token comes from `VKLIVE_TOKEN` (or `--token`). With no token and
//! no URLs, `tail` starts the embedded emulator with demo traffic and follows
//! its demo channel, so it runs anywhere with nothing else set up.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};
use vklive_pubsub::{Authorization, Client, CloseReason, Event, Recovery};

#[derive(Parser, Debug)]
#[command(name = "tail", about = "Print VK Video Live pubsub events as NDJSON")]
struct Args {
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
    /// Pubsub channel names to follow, verbatim.
    channels: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let wanted = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // tungstenite dumps whole frames at `trace`, tokens included: drop those lines.
    let safe = filter_fn(|metadata| !vklive_pubsub::may_contain_tokens(metadata));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(wanted.and(safe)),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tail: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut args: Args) -> Result<(), String> {
    let demo = args.token.is_none()
        && args.api_url == vklive_pubsub::auth::DEFAULT_API_URL
        && args.ws_url == vklive_pubsub::DEFAULT_WS_URL;
    // Kept alive for the whole run when tailing the demo.
    let _emulator = if demo {
        Some(start_demo(&mut args).await?)
    } else {
        None
    };
    let token = args
        .token
        .clone()
        .ok_or("no access token: set VKLIVE_TOKEN or pass --token")?;
    let credentials = Authorization::user(token);

    let mut builder = Client::builder(credentials.clone())
        .api_url(&args.api_url)
        .ws_url(&args.ws_url)
        .channels(args.channels.clone());
    let mut count = args.channels.len();
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
                builder.chat_channel(name, slug)
            } else {
                builder.channel(name)
            };
            count += 1;
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
            builder = builder.channel(name);
            count += 1;
        }
    }
    if count == 0 {
        return Err("no channels: name some, or use --channel-url SLUG".into());
    }

    let (client, mut events) = builder.spawn().map_err(|error| error.to_string())?;

    let started = Instant::now();
    let mut publications = 0u64;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut closing = false;
    let outcome = loop {
        // Flush only when no event is ready, so bursts cost one write.
        let event = match events.next().now_or_never() {
            Some(event) => event,
            None => {
                let _ = out.flush();
                tokio::select! {
                    event = events.next() => event,
                    _ = &mut ctrl_c, if !closing => {
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
            break match reason {
                CloseReason::Failed(error) => Err(error.to_string()),
                _ => Ok(()),
            };
        }
        if matches!(event, Event::Publication(_)) {
            if closing {
                continue; // past -n N, or interrupted: print nothing more
            }
            publications += 1;
        }
        if !args.quiet {
            let line = event_json(&event);
            if writeln!(out, "{line}").is_err() {
                break Ok(()); // stdout closed (e.g. piped into `head`)
            }
        }
        if !closing && args.count.is_some_and(|count| publications >= count) {
            closing = true;
            let _ = client.close().await;
        }
    };
    if args.quiet {
        let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        let _ = writeln!(
            out,
            "{}",
            json!({"summary": {"publications": publications, "seconds": seconds}})
        );
    }
    let _ = out.flush();
    outcome
}

/// Starts the embedded emulator with demo traffic and points `args` at it.
async fn start_demo(args: &mut Args) -> Result<Emulator, String> {
    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .map_err(|error| format!("cannot start the emulator: {error}"))?;
    let token = "demo-access-token";
    emulator.add_user(token, 1, "demo-viewer");
    let names = emulator.add_channel("demo", 1);
    emulator.start_demo(&names, 5.0);
    tracing::info!(api_url = %emulator.api_url(), "no token and no URLs: tailing the embedded emulator's demo channel");
    args.api_url = emulator.api_url();
    args.ws_url = emulator.ws_url();
    args.token = Some(token.to_owned());
    if args.channels.is_empty() && args.channel_urls.is_empty() {
        args.channel_urls.push("demo".into());
    }
    Ok(emulator)
}

/// One NDJSON line for an event.
fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Publication(publication) => {
            let mut line = json!({
                "event": "publication",
                "channel": &*publication.channel,
                "offset": publication.offset,
                "type": publication.event.kind(),
                "data": &publication.event,
            });
            if publication.backfilled {
                line["backfilled"] = json!(true);
            }
            line
        }
        Event::Gap { channel, missed } => {
            json!({"event": "gap", "channel": channel, "missed": missed})
        }
        Event::Connected { client } => json!({"event": "connected", "client": client}),
        Event::Disconnected { code, reason } => {
            json!({"event": "disconnected", "code": code, "reason": reason})
        }
        Event::Subscribed { channel, recovery } => json!({
            "event": "subscribed",
            "channel": channel,
            "recovery": match recovery {
                Recovery::NotRequested => "not_requested",
                Recovery::Recovered => "recovered",
                Recovery::Failed => "failed",
            },
        }),
        Event::SubscriptionFailed {
            channel,
            code,
            reason,
        } => {
            json!({"event": "subscription_failed", "channel": channel, "code": code, "reason": reason})
        }
        Event::Unsubscribed {
            channel,
            code,
            reason,
        } => {
            json!({"event": "unsubscribed", "channel": channel, "code": code, "reason": reason})
        }
        Event::Lagged { dropped } => json!({"event": "lagged", "dropped": dropped}),
        Event::Closed { .. } => json!({"event": "closed"}),
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    }
}
