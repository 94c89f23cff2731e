//! `vklive`: VK Video Live from the command line.
//!
//! ```text
//! vklive tail [--demo] [--json] [-n N] [-q] [--kind K,...] [--channel-url SLUG]... [CHANNEL]...
//! vklive send [--api-url URL] --channel-url SLUG [--reply-to ID] [--mention USER_ID]... TEXT...
//! vklive token [--client-id ID] [--port P] | token check | token refresh
//! vklive overlay [--api-url URL] [--ws-url URL] --channel-url SLUG [--port P] [--kind K,...] [--allow-host NAME]
//! vklive emulator [--port P] [--demo RATE] [--channel-limit N] [--no-history] [--seed S]
//! vklive trigger EVENT --emulator URL [--channel C] [--nick X] [--text T] [--count N]
//! vklive completions bash|zsh|fish
//! vklive relay --nats URL [--api-url URL] [--ws-url URL] [--lease-ttl SECONDS] [--stream NAME] [--channel-url SLUG]... [CHANNEL]...
//! ```
//!
//! Install with `cargo install --locked --path . --features cli`; every
//! subcommand is in `docs/cli.md`. Logs go to stderr (`RUST_LOG`); tokens
//! are never printed, at any log level, nor taken on the command line.

mod credentials;
mod emulator;
mod kinds;
mod login;
mod nats_options;
mod numbers;
mod output;
mod overlay;
mod relay;
mod render;
mod send;
mod shutdown;
mod tail;
mod token;
mod trigger;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vklive",
    version,
    about = "VK Video Live from the command line: follow channels, send chat, sign in, \
serve an OBS overlay, run an emulator, fire events into it",
    after_help = "The access token comes from --token-file PATH, else VKLIVE_TOKEN, else the login \
stored by `vklive token` (refreshed when it has expired). Every subcommand: docs/cli.md."
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
    /// Send one chat message to a channel's live stream.
    Send(send::Args),
    /// Sign in through VK's OAuth page and store the token; `check` or
    /// `refresh` it later.
    Token(token::Args),
    /// Serve the alerts-and-chat overlay for an OBS browser source.
    Overlay(overlay::Args),
    /// Run the VK DevAPI + pubsub emulator until SIGINT or SIGTERM.
    Emulator(emulator::Args),
    /// Fire named events into a running emulator (like `twitch event trigger`).
    Trigger(trigger::Args),
    /// Print a shell completion script: `vklive completions bash > …`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Relay channels into NATS JetStream, sharing them with other relays
    /// (leases, hot standby): docs/relay.md.
    Relay(relay::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = match cli.command {
        Command::Overlay(_) => "warn,vklive::overlay=info",
        // async-nats logs each failed (re)connect as an error of its own; the
        // relay says once, in its words, what failed.
        _ => "warn,async_nats=off",
    };
    init_logging(default_log);
    let (name, outcome) = match cli.command {
        Command::Tail(args) => (
            "tail",
            runtime(true).and_then(|rt| rt.block_on(tail::run(args))),
        ),
        Command::Send(args) => {
            return match runtime(false) {
                Ok(rt) => rt.block_on(send::run(args)),
                Err(message) => {
                    eprintln!("send: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Token(args) => (
            "token",
            runtime(false).and_then(|rt| rt.block_on(token::run(args))),
        ),
        Command::Overlay(args) => (
            "overlay",
            runtime(true).and_then(|rt| rt.block_on(overlay::run(args))),
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
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "vklive", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
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

/// Logs on stderr, `default` unless `RUST_LOG` says otherwise, in colour
/// only on a terminal, never the dependency lines that may carry tokens.
fn init_logging(default: &str) {
    vklive_pubsub::log::init(default);
}
