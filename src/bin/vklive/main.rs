//! `vklive`: VK Video Live from the command line.
//!
//! ```text
//! vklive tail [--demo] [--json] [-n N] [-q] [--channel-url SLUG]... [CHANNEL]...
//! vklive emulator [--port P] [--demo RATE] [--channel-limit N] [--no-history] [--seed S]
//! vklive trigger EVENT --emulator URL [--channel C] [--nick X] [--text T] [--count N]
//! vklive relay --nats URL [--api-url URL] [--ws-url URL] [--lease-ttl SECONDS] [--stream NAME] [--channel-url SLUG]... [CHANNEL]...
//! ```
//!
//! Install with `cargo install --path . --features cli`. Logs go to stderr
//! (`RUST_LOG`); tokens are never printed, at any log level.

mod emulator;
mod relay;
mod render;
mod shutdown;
mod tail;
mod trigger;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vklive",
    version,
    about = "VK Video Live from the command line: follow channels, run an emulator, fire events into it",
    after_help = "Not in this version: `vklive send` (send a chat message) and `vklive token` \
(get a user token through OAuth); they come with chat-bot support."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Follow channels and print every event: readable lines on a terminal,
    /// NDJSON otherwise (or with --json).
    Tail(tail::Args),
    /// Run the VK DevAPI + pubsub emulator until SIGINT or SIGTERM.
    Emulator(emulator::Args),
    /// Fire named events into a running emulator (like `twitch event trigger`).
    Trigger(trigger::Args),
    /// Relay channels into NATS JetStream, sharing them with other relays
    /// (leases, hot standby): docs/relay.md.
    Relay(relay::Args),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let (name, outcome) = match cli.command {
        Command::Tail(args) => (
            "tail",
            runtime(true).and_then(|rt| rt.block_on(tail::run(args))),
        ),
        // One thread: with --seed, every random choice of the emulator comes
        // from the one seeded generator of that thread.
        Command::Emulator(args) => (
            "emulator",
            runtime(false).and_then(|rt| rt.block_on(emulator::run(args))),
        ),
        Command::Trigger(args) => (
            "trigger",
            runtime(false).and_then(|rt| rt.block_on(trigger::run(args))),
        ),
        Command::Relay(args) => (
            "relay",
            runtime(true).and_then(|rt| rt.block_on(relay::run(args))),
        ),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))
}

/// Logs on stderr, `warn` unless `RUST_LOG` says otherwise, never the
/// dependency lines that may carry tokens.
fn init_logging() {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let wanted = tracing_subscriber::EnvFilter::try_from_default_env()
        // async-nats logs each failed (re)connect as an error of its own; the
        // relay says once, in its words, what failed.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,async_nats=off"));
    // tungstenite dumps whole frames at `trace`, tokens included: drop those lines.
    let safe = filter_fn(|metadata| !vklive_pubsub::may_contain_tokens(metadata));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(wanted.and(safe)),
        )
        .init();
}
