//! `vklive relay`: follow channels and publish every event into NATS
//! JetStream, sharing the channels with the other relays (docs/relay.md).

use std::sync::Arc;
use std::time::Duration;

use vklive_pubsub::auth::VkApi;
use vklive_pubsub::relay::{Relay, RelayChannel, RelayConfig, StreamSettings};
use vklive_pubsub::{Client, Credentials};

use crate::credentials::{self, TokenArgs};
use crate::nats_options::{NatsArgs, nats_options};
use crate::numbers::non_negative;
use crate::shutdown::Shutdown;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The access token comes from --token-file, else VKLIVE_TOKEN, else the login \
stored by `vklive token`; a NATS token from NATS_TOKEN. \
Run the same command on several machines: each channel is owned by one relay at a time \
(a lease in the KV bucket), and a standby takes a dead relay's channels over within the \
lease TTL + 2 s, resuming from the stream. Exit status: 0 after SIGINT or SIGTERM (leases \
given back), 1 when NATS or VK fails for good (one line on stderr)."
)]
pub(crate) struct Args {
    /// NATS server URL (`nats://[user:password@]host:port`, `tls://…`).
    #[arg(long, value_name = "URL")]
    nats: String,
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    api_url: String,
    /// Pubsub WebSocket URL.
    #[arg(long, default_value = vklive_pubsub::DEFAULT_WS_URL)]
    ws_url: String,
    #[command(flatten)]
    token: TokenArgs,
    /// How long a channel's lease lives without renewal (renewed every third of it).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = non_negative)]
    lease_ttl: f64,
    /// The JetStream stream (created when missing, on subjects `vklive.>`).
    #[arg(long, value_name = "NAME", default_value = vklive_pubsub::relay::DEFAULT_STREAM)]
    stream: String,
    /// The KV bucket of the leases (created when missing).
    #[arg(long, value_name = "NAME", default_value = vklive_pubsub::relay::DEFAULT_BUCKET)]
    bucket: String,
    /// The stream's duplicate window, when the relay creates it.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    duplicate_window: u64,
    /// How long the stream keeps messages, when the relay creates it.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    max_age: u64,
    #[command(flatten)]
    nats_auth: NatsArgs,
    /// Relay this VK channel (a slug or its page's URL): its chat, info and
    /// channel points channels, and the private ones the token is granted.
    #[arg(long = "channel-url", value_name = "SLUG")]
    channel_urls: Vec<String>,
    /// Pubsub channel names to relay, verbatim.
    channels: Vec<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    let credentials = credentials::required(&args.token)?;
    if !(args.lease_ttl.is_finite() && args.lease_ttl >= 1.0) {
        return Err("--lease-ttl must be at least 1 second".into());
    }
    let nats = nats_options(&args.nats, &args.nats_auth);
    let channels = channels(&args, &credentials).await?;
    if channels.is_empty() {
        return Err("no channels: name some, or use --channel-url SLUG".into());
    }
    let mut config = RelayConfig::new(nats, channels);
    config.stream = StreamSettings {
        name: args.stream.clone(),
        duplicate_window: Duration::from_secs(args.duplicate_window),
        max_age: Duration::from_secs(args.max_age),
    };
    config.bucket = args.bucket.clone();
    config.lease_ttl = Duration::from_secs_f64(args.lease_ttl);
    let (api_url, ws_url) = (args.api_url.clone(), args.ws_url.clone());
    let relay = Relay::new(config, move || {
        Client::builder_with(credentials.clone())
            .api_url(&api_url)
            .ws_url(&ws_url)
    });
    relay
        .run(async move { shutdown.requested().await })
        .await
        .map_err(|error| error.to_string())
}

/// The channels named, and those of each `--channel-url` (a slug or a
/// page URL, read by the library's one slug reader, as `tail` reads it).
async fn channels(
    args: &Args,
    credentials: &Arc<dyn Credentials>,
) -> Result<Vec<RelayChannel>, String> {
    let mut out: Vec<RelayChannel> = args.channels.iter().map(RelayChannel::new).collect();
    if args.channel_urls.is_empty() {
        return Ok(out);
    }
    let api =
        VkApi::new(&args.api_url, Arc::clone(credentials)).map_err(|error| error.to_string())?;
    for input in &args.channel_urls {
        let slug = &vklive_pubsub::auth::channel_slug(input).map_err(|error| error.to_string())?;
        let info = api.channel(slug).await.map_err(|error| error.to_string())?;
        let names = &info.web_socket_channels;
        for name in names.public() {
            out.push(if names.chat.as_ref() == Some(&name) {
                RelayChannel::chat(name, slug)
            } else {
                RelayChannel::new(name)
            });
        }
        let private = names.private();
        let granted = api
            .subscription_tokens(&private)
            .await
            .map_err(|error| error.to_string())?;
        out.extend(
            private
                .into_iter()
                .filter(|name| granted.contains_key(name))
                .map(RelayChannel::new),
        );
    }
    Ok(out)
}

/// `90s`, `15m`, `1h`, `2d`, or plain seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 90s, 15m, 1h, 2d)"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "sec" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return Err(format!("unknown unit in {text:?} (try 90s, 15m, 1h, 2d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("not a duration: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("1y").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
