//! `vklive send`: one chat message, as the token's user.

use std::process::ExitCode;
use std::time::Duration;

use vklive_pubsub::auth::{ChatSettings, Message, VkApi};
use vklive_pubsub::{Error, ErrorKind};

use crate::credentials::{self, TokenArgs};
use crate::render::clean;

/// How many recent messages `--reply-to` looks through for its author.
const REPLY_LOOKUP: u32 = 200;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 sent; 1 any other failure; 2 bad arguments; \
3 send_too_fast; 4 same_message; 5 message_too_long; 6 forbidden; 7 offline (no live stream); \
8 unauthorized (the token was refused). On failure, one line on stderr names VK's reason."
)]
pub(crate) struct Args {
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    api_url: String,
    #[command(flatten)]
    token: TokenArgs,
    /// The VK channel whose live stream's chat gets the message (a slug or
    /// its page's URL).
    #[arg(long = "channel-url", value_name = "SLUG")]
    channel_url: String,
    /// Answer this chat message: its author is mentioned first (looked up
    /// among the channel's last 200 messages).
    #[arg(long, value_name = "MESSAGE_ID")]
    reply_to: Option<i64>,
    /// Mention this user (by id) before the text; may be repeated.
    #[arg(long, value_name = "USER_ID")]
    mention: Vec<i64>,
    /// The text, its words joined by spaces.
    #[arg(required = true, num_args = 1.., value_name = "TEXT")]
    text: Vec<String>,
}

/// Why a send failed: VK's reason in one word, and the exit status for it.
pub(crate) fn reason(error: &Error) -> (&'static str, u8) {
    match error.kind() {
        ErrorKind::SendTooFast => ("send_too_fast", 3),
        ErrorKind::RateLimited => ("rate_limited", 3),
        ErrorKind::SameMessage => ("same_message", 4),
        ErrorKind::MessageTooLong => ("message_too_long", 5),
        ErrorKind::Forbidden => ("forbidden", 6),
        ErrorKind::NoLiveStream => ("offline", 7),
        ErrorKind::Unauthorized => ("unauthorized", 8),
        _ => ("failed", 1),
    }
}

pub(crate) async fn run(args: Args) -> ExitCode {
    match send(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("send: {message}");
            ExitCode::FAILURE
        }
        Err(Failure::Vk(error)) => {
            let (reason, status) = reason(&error);
            eprintln!("send: {reason}: {}", clean(&error.to_string()));
            ExitCode::from(status)
        }
    }
}

enum Failure {
    Usage(String),
    Vk(Error),
}

async fn send(args: Args) -> Result<(), Failure> {
    let credentials = credentials::required(&args.token).map_err(Failure::Usage)?;
    // One try: a person or a script decides whether to send again.
    let settings = ChatSettings {
        retry_too_fast_for: Duration::ZERO,
        ..ChatSettings::default()
    };
    let api = VkApi::new(&args.api_url, credentials)
        .map_err(Failure::Vk)?
        .with_chat_settings(settings);
    let mut message = Message::new();
    let mut mentioned = false;
    if let Some(id) = args.reply_to {
        let author = author_of(&api, &args.channel_url, id).await?;
        message = message.mention(author);
        mentioned = true;
    }
    for user in &args.mention {
        message = message.mention(*user);
        mentioned = true;
    }
    let text = args.text.join(" ");
    message = message.text(if mentioned { format!(" {text}") } else { text });
    api.send_message(&args.channel_url, message)
        .await
        .map_err(Failure::Vk)
}

/// The author of message `id`, from the channel's recent chat.
async fn author_of(api: &VkApi, channel_url: &str, id: i64) -> Result<i64, Failure> {
    let slug = vklive_pubsub::auth::channel_slug(channel_url).map_err(Failure::Vk)?;
    let messages = api
        .chat_messages(&slug, REPLY_LOOKUP)
        .await
        .map_err(Failure::Vk)?;
    messages
        .iter()
        .find(|message| message.id == id)
        .and_then(|message| message.author_id())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--reply-to {id}: no such message among the last {REPLY_LOOKUP} of {slug}"
            ))
        })
}
