//! `vklive trigger`: fire named events into a running emulator through its
//! control API (`POST /_emulator/trigger`).

use std::time::Duration;

use clap::builder::PossibleValuesParser;
use vklive_pubsub::emulator::{Trigger, TriggerEvent};

/// How long the emulator may take to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints one JSON line per publication: {\"channel\",\"offset\",\"type\"}. \
chat and delete go to the channel's public chat, reward to its private channel points, \
the others to its info channel."
)]
pub(crate) struct Args {
    /// The event to fire.
    #[arg(value_parser = PossibleValuesParser::new(TriggerEvent::ALL.map(TriggerEvent::name)))]
    event: String,
    /// The emulator: its api_url or control_url (as `vklive emulator` printed).
    #[arg(long, value_name = "URL")]
    emulator: String,
    /// A registered channel's slug or id, or a pubsub channel name to publish
    /// into exactly (default: the channel registered first).
    #[arg(long)]
    channel: Option<String>,
    /// Nick of the author, follower, raider, subscriber or demanding user.
    #[arg(long)]
    nick: Option<String>,
    /// Chat text, or the text of a reward demand.
    #[arg(long)]
    text: Option<String>,
    /// Message or demand id; for delete, the message to delete (default:
    /// the newest in the channel's chat).
    #[arg(long)]
    id: Option<i64>,
    /// How many to fire.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// A JSON merge patch for the {"type","data"} envelope, to set any
    /// field: '{"data":{"raid":{"raiders_count":500}}}'.
    #[arg(long, value_name = "JSON")]
    set: Option<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), String> {
    let event = TriggerEvent::from_name(&args.event)
        .ok_or_else(|| format!("unknown event {:?}", args.event))?;
    let overrides = args
        .set
        .as_deref()
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|error| format!("--set is not JSON: {error}"))?;
    let trigger = Trigger {
        event,
        channel: args.channel,
        nick: args.nick,
        text: args.text,
        id: args.id,
        count: Some(args.count),
        overrides,
    };
    let base = args.emulator.trim_end_matches('/');
    let base = base.strip_suffix("/_emulator").unwrap_or(base);
    let url = format!("{base}/_emulator/trigger");
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?;
    let response = client
        .post(&url)
        .json(&trigger)
        .send()
        .await
        .map_err(|error| format!("no emulator at {base}: {error}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|error| format!("{url} answered {status} without JSON: {error}"))?;
    if !status.is_success() {
        let why = body["error_description"]
            .as_str()
            .unwrap_or("no reason given");
        return Err(format!("the emulator refused ({status}): {why}"));
    }
    let published = body["published"].as_array().cloned().unwrap_or_default();
    for line in published {
        println!("{line}");
    }
    Ok(())
}
