//! `vklive emulator`: the VK DevAPI + Centrifugo pubsub emulator as a
//! standalone server, for manual testing and for bots in any language.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use vklive_pubsub::emulator::{Emulator, EmulatorConfig};

use crate::numbers::non_negative;
use crate::shutdown::Shutdown;

#[derive(Debug, clap::Args)]
#[command(after_help = "Prints ONE JSON line on stdout \
({\"api_url\",\"ws_url\",\"oauth_token_url\",\"control_url\",\"token\",\"slug\",\"history\",\"channels\"}) \
and runs until SIGINT or SIGTERM, whether or not stdin is open. \
`GET <control_url>/` lists the control routes; `vklive trigger` fires events.")]
pub(crate) struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Publish demo traffic at this many messages per second.
    #[arg(long, value_name = "RATE", value_parser = non_negative)]
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
    #[arg(long, default_value_t = 25.0, value_parser = non_negative, allow_hyphen_values = true)]
    ping_interval: f64,
    /// Lifetime of issued pubsub tokens, seconds (default: never expire).
    #[arg(long, value_parser = non_negative, allow_hyphen_values = true)]
    token_ttl: Option<f64>,
    /// Subscriptions allowed per connection; 0 for no limit (Centrifugo's
    /// default is 128).
    #[arg(long, default_value_t = 128)]
    channel_limit: usize,
    /// Run as Centrifugo without history, as VK probably does: publications
    /// carry no offset and recovery never succeeds.
    #[arg(long)]
    no_history: bool,
    /// Seed the emulator's random choices (demo traffic, epochs, tokens), so
    /// that a run can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Also register an app with these Basic credentials (`id:secret`).
    #[arg(long)]
    app: Option<String>,
}

/// `value` seconds (checked finite by the flag's parser), at most 1e9.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.clamp(0.0, 1e9)).unwrap_or(Duration::ZERO)
}

pub(crate) async fn run(args: Args) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    if let Some(seed) = args.seed {
        // The runtime has one thread (see main.rs), whose generator this is.
        fastrand::seed(seed);
    }
    let config = EmulatorConfig {
        ping_interval: seconds(args.ping_interval),
        token_ttl: args.token_ttl.map(seconds),
        channel_limit: (args.channel_limit > 0).then_some(args.channel_limit),
        history: !args.no_history,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::start_on(SocketAddr::new(args.host, args.port), config)
        .await
        .map_err(|error| format!("cannot listen on {}:{}: {error}", args.host, args.port))?;
    if !emulator.is_loopback() {
        eprintln!(
            "emulator: WARNING: listening on {} (not loopback): anyone who reaches it can drive its control API",
            emulator.addr()
        );
    }
    emulator.add_user(&args.token, args.user_id, "demo_user");
    if let Some(app) = &args.app {
        let (id, secret) = app.split_once(':').ok_or("--app takes id:secret")?;
        emulator.add_app(id, secret);
    }
    let names = emulator.add_channel(&args.slug, 1);
    let _demo = args.demo.map(|rate| emulator.start_demo(&names, rate));

    let info = emulator.info_line(&args.token, &args.slug, &names);
    println!("{info}");
    eprintln!("emulator: listening; stop it with Ctrl-C or SIGTERM");
    eprintln!(
        "emulator: try  VKLIVE_TOKEN={} vklive tail --api-url {} --ws-url '{}' --channel-url {}",
        args.token,
        emulator.api_url(),
        emulator.ws_url(),
        args.slug
    );
    eprintln!(
        "emulator: then vklive trigger follow --emulator {} --nick X",
        emulator.api_url()
    );
    eprintln!("emulator: control routes: curl {}/", emulator.control_url());
    shutdown.requested().await;
    emulator.shutdown();
    Ok(())
}
