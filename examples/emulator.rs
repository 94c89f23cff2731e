//! `emulator`: run the VK DevAPI + pubsub emulator as a standalone server,
//! for manual testing and for tests written in other languages.
//!
//! ```text
//! cargo run --features emulator --example emulator -- --demo 5 --ping-interval 1
//! ```
//!
//! It prints ONE JSON line on stdout —
//! `{"api_url":…,"ws_url":…,"oauth_token_url":…,"control_url":…,"token":…,"channels":{…}}` —
//! then runs until Ctrl-C or until stdin is closed (`--ignore-stdin` to run
//! until Ctrl-C only). Control endpoints live under `control_url`
//! (`POST …/publish`, `POST …/abort`, `POST …/close`, `POST …/history`,
//! `GET …/stats`, …). `--no-history` runs it without history and recovery.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

#[derive(Debug, Parser)]
#[command(about = "VK Video Live DevAPI + Centrifugo pubsub emulator")]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Publish demo traffic at this many messages per second.
    #[arg(long)]
    demo: Option<f64>,
    /// Bearer access token of the demo user.
    #[arg(long, default_value = "demo-token")]
    token: String,
    /// Id of the demo user.
    #[arg(long, default_value_t = 1)]
    user_id: u64,
    /// Channel slug registered with id 1.
    #[arg(long, default_value = "demo")]
    slug: String,
    /// Server ping interval, seconds (fractions allowed).
    #[arg(long, default_value_t = 25.0)]
    ping_interval: f64,
    /// Pong timeout, seconds.
    #[arg(long, default_value_t = 8.0)]
    pong_timeout: f64,
    /// Lifetime of issued pubsub tokens, seconds (default: never expire).
    #[arg(long)]
    token_ttl: Option<f64>,
    /// Grace after token expiry before the server enforces it, seconds.
    #[arg(long, default_value_t = 25.0)]
    expiry_grace: f64,
    /// Subscriptions allowed per connection; 0 for no limit (Centrifugo's
    /// default is 128).
    #[arg(long, default_value_t = 128)]
    channel_limit: usize,
    /// Also register an app with these Basic credentials (`id:secret`).
    #[arg(long)]
    app: Option<String>,
    /// Run as Centrifugo without history, as VK probably does: publications
    /// carry no offset and recovery never succeeds (switch at run time with
    /// `POST …/history {"enabled":true}`). Chat stays readable over
    /// `GET /v1/chat/messages`.
    #[arg(long)]
    no_history: bool,
    /// Run until Ctrl-C only, ignoring stdin.
    #[arg(long)]
    ignore_stdin: bool,
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.clamp(0.0, 1e9))
}

#[tokio::main]
async fn main() -> Result<(), vklive_pubsub::Error> {
    // RUST_LOG, else warnings; lines that may carry a token never printed.
    vklive_pubsub::log::init("warn");
    let args = Args::parse();
    let config = EmulatorConfig {
        ping_interval: seconds(args.ping_interval),
        pong_timeout: seconds(args.pong_timeout),
        token_ttl: args.token_ttl.map(seconds),
        expiry_grace: seconds(args.expiry_grace),
        channel_limit: (args.channel_limit > 0).then_some(args.channel_limit),
        history: !args.no_history,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start_on(SocketAddr::new(args.host, args.port), config).await?;
    emulator.add_user(&args.token, args.user_id, "demo_user");
    if let Some((id, secret)) = args.app.as_deref().and_then(|a| a.split_once(':')) {
        emulator.add_app(id, secret);
    }
    let names = emulator.add_channel(&args.slug, 1);
    let _demo = args.demo.map(|rate| emulator.start_demo(&names, rate));

    let info = emulator.info_line(&args.token, &args.slug, &names);
    println!("{info}");

    let (stdin_closed_tx, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    if !args.ignore_stdin {
        std::thread::spawn(move || {
            let mut sink = [0u8; 1024];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = stdin_closed_tx.send(());
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Ok(()) = stdin_closed => {}
    }
    emulator.shutdown();
    Ok(())
}
