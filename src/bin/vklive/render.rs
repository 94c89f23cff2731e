//! How `tail` prints an event: one NDJSON object, or one readable line.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use vklive_pubsub::event::{StreamEventKind, User};
use vklive_pubsub::{Event, Publication, Recovery, VkEvent};

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// One JSON object per line, as `tail` always printed when piped.
    Json,
    /// Readable lines for a person at a terminal, in colour or not.
    Text { colour: bool },
}

impl Style {
    /// NDJSON when asked for or when stdout is not a terminal; otherwise
    /// text, coloured unless `NO_COLOR` is set (<https://no-color.org>) or the
    /// terminal is `dumb`.
    pub(crate) fn choose(json: bool, stdout_is_terminal: bool) -> Style {
        if json || !stdout_is_terminal {
            return Style::Json;
        }
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
            || std::env::var_os("TERM").is_some_and(|term| term == "dumb");
        Style::Text { colour: !no_colour }
    }

    /// The line for `event` (without the newline).
    pub(crate) fn line(self, event: &Event) -> String {
        match self {
            // The library's line, which the relay publishes as the body.
            Style::Json => vklive_pubsub::ndjson::event_line(event),
            Style::Text { colour } => Painter { colour }.line(event),
        }
    }

    /// The summary `-q` prints at exit.
    pub(crate) fn summary(self, publications: u64, seconds: f64) -> String {
        match self {
            Style::Json => {
                json!({"summary": {"publications": publications, "seconds": seconds}}).to_string()
            }
            Style::Text { .. } => format!("{publications} publications in {seconds:.1} s"),
        }
    }
}

const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

struct Painter {
    colour: bool,
}

impl Painter {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.colour {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    /// A nick in bold, in its palette colour when it has one.
    fn nick(&self, nick: &str, colour: Option<[u8; 3]>) -> String {
        let nick = clean(nick);
        match (self.colour, colour) {
            (true, Some([r, g, b])) => format!("{BOLD}\x1b[38;2;{r};{g};{b}m{nick}{RESET}"),
            (true, None) => format!("{BOLD}{nick}{RESET}"),
            (false, _) => nick,
        }
    }

    fn user(&self, user: Option<&User>) -> String {
        match user {
            Some(user) => self.nick(&user.nick, user.nick_color.and_then(|c| c.rgb())),
            None => String::from("someone"),
        }
    }

    fn line(&self, event: &Event) -> String {
        let mut line = self.paint(DIM, &clock());
        line.push(' ');
        match event {
            Event::Publication(publication) => {
                line.push_str(&self.paint(DIM, &clean(&publication.channel)));
                line.push(' ');
                line.push_str(&self.publication(publication));
                if publication.backfilled {
                    line.push_str(&self.paint(DIM, " (backfilled)"));
                }
            }
            other => {
                let (style, text) = lifecycle(other);
                line.push_str(&self.paint(style, &format!("-- {text}")));
            }
        }
        line
    }

    fn publication(&self, publication: &Publication) -> String {
        match &publication.event {
            VkEvent::ChatMessage(message) => {
                let (nick, colour) = message.author.as_ref().map_or(("?", None), |author| {
                    (
                        author.nick.as_str(),
                        author.nick_color.and_then(|c| c.rgb()),
                    )
                });
                format!(
                    "{}: {}",
                    self.nick(nick, colour),
                    clean(message.plain_text().trim_end())
                )
            }
            VkEvent::ChatMessageDelete(delete) => {
                self.paint(DIM, &format!("message {} deleted", delete.id))
            }
            VkEvent::Follow(follow) => self.paint(
                YELLOW,
                &format!("{} followed the channel", self.user(Some(&follow.follower))),
            ),
            VkEvent::Raid(raid) => {
                let who = match (&raid.source.owner, &raid.source.channel) {
                    (Some(owner), _) => self.user(Some(owner)),
                    (None, Some(channel)) => clean(&channel.url),
                    (None, None) => String::from("a channel"),
                };
                let viewers = raid
                    .raiders_count
                    .map_or(String::new(), |count| format!(" with {count} viewers"));
                self.paint(YELLOW, &format!("{who} raided the channel{viewers}"))
            }
            VkEvent::Subscription(subscription) => {
                let mut text =
                    format!("{} subscribed", self.user(subscription.subscriber.as_ref()));
                if let Some(name) = subscription.level.as_ref().and_then(|l| l.name.as_ref()) {
                    let _ = write!(text, " at level {}", clean(name));
                }
                if let Some(days) = subscription.days_duration {
                    let _ = write!(text, " for {days} days");
                }
                self.paint(MAGENTA, &text)
            }
            VkEvent::RewardDemand(demand) => {
                let reward = demand
                    .reward
                    .name
                    .as_deref()
                    .map_or(String::from("a reward"), |name| {
                        format!("«{}»", clean(name))
                    });
                let message = demand.message_text();
                let mut text = format!("{} redeemed {reward}", self.user(demand.user.as_ref()));
                if !message.trim().is_empty() {
                    let _ = write!(text, ": {}", clean(message.trim_end()));
                }
                self.paint(MAGENTA, &text)
            }
            VkEvent::Stream(stream) => self.paint(
                YELLOW,
                match stream.kind {
                    StreamEventKind::Start => "the stream started",
                    StreamEventKind::Stop => "the stream ended",
                    StreamEventKind::Pause => "the stream paused",
                    StreamEventKind::Resume => "the stream resumed",
                    StreamEventKind::SettingsChange => "the stream's settings changed",
                    StreamEventKind::RecordNew => "a recording of the stream is available",
                    _ => "the stream changed",
                },
            ),
            VkEvent::Unknown(unknown) => self.paint(
                DIM,
                &format!(
                    "{} (an event type this version does not know)",
                    clean(&unknown.kind)
                ),
            ),
            other => self.paint(DIM, other.kind()),
        }
    }
}

/// The words for a lifecycle event, and their colour.
fn lifecycle(event: &Event) -> (&'static str, String) {
    match event {
        Event::Connected { .. } => (DIM, String::from("connected")),
        Event::Disconnected { reason, .. } => (
            RED,
            format!("disconnected ({}); reconnecting", clean(reason)),
        ),
        Event::Subscribed {
            channel, recovery, ..
        } => (
            DIM,
            match recovery {
                Recovery::NotRequested => format!("following {}", clean(channel)),
                Recovery::Recovered => {
                    format!("following {} again, nothing missed", clean(channel))
                }
                Recovery::Failed => format!(
                    "following {} again; what was sent meanwhile could not be recovered",
                    clean(channel)
                ),
            },
        ),
        Event::Gap { channel, missed } => (
            RED,
            match missed {
                Some(missed) => format!("{}: {missed} events were missed", clean(channel)),
                None => format!("{}: events may have been missed", clean(channel)),
            },
        ),
        Event::SubscriptionFailed {
            channel,
            code,
            reason,
        } => (
            RED,
            format!(
                "cannot follow {}: {} ({code})",
                clean(channel),
                clean(reason)
            ),
        ),
        Event::Unsubscribed {
            channel, reason, ..
        } => (
            RED,
            format!("stopped following {}: {}", clean(channel), clean(reason)),
        ),
        Event::Lagged { dropped } => (
            RED,
            format!("{dropped} events dropped: they were read too slowly"),
        ),
        Event::Closed { .. } => (DIM, String::from("closed")),
        other => (DIM, format!("{other:?}")),
    }
}

/// Text from the network made safe for a terminal: control characters
/// (escape sequences, carriage returns, newlines) become spaces.
pub(crate) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The wall-clock time, `HH:MM:SS` UTC.
fn clock() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", day / 3600, day % 3600 / 60, day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vklive_pubsub::event::EventKind;

    fn publication(payload: serde_json::Value) -> Event {
        Event::Publication(Publication::new(
            Arc::from("api-channel-info:1"),
            3,
            VkEvent::decode_str(&payload.to_string()),
        ))
    }

    #[test]
    fn text_lines_say_what_happened_in_words() {
        let style = Style::Text { colour: false };
        let follow = publication(json!({"type": "channel_follow_create",
            "data": {"follow": {"follower": {"id": 1, "nick": "X", "nick_color": 2}}}}));
        assert!(
            style
                .line(&follow)
                .ends_with("api-channel-info:1 X followed the channel")
        );
        let chat = publication(json!({"type": "channel_chat_message_send",
            "data": {"chat_message": {"id": 1, "author": {"id": 2, "nick": "Вася"},
            "parts": [{"text": {"content": "привет\u{1b}[2J"}}]}}}));
        let line = style.line(&chat);
        assert!(line.ends_with("Вася: привет [2J"), "{line}");
        assert!(!line.contains('\u{1b}'), "no escape from the network");
    }

    /// Each kind of the crate's table (each of its wire types, from its
    /// fixture) has a text line of its own, not the fallback that only
    /// names the type.
    #[test]
    fn every_event_kind_has_a_line_of_its_own() {
        let painter = Painter { colour: false };
        for kind in EventKind::ALL {
            for wire in kind.wire_types() {
                let path = format!("{}/tests/fixtures/{wire}.json", env!("CARGO_MANIFEST_DIR"));
                let json = std::fs::read_to_string(&path).expect("every wire type has a fixture");
                let event = VkEvent::decode_str(&json);
                let line = painter.publication(&Publication::new(Arc::from("c"), 1, event));
                assert!(
                    line != *wire && line != "the stream changed",
                    "render.rs: Painter::publication has no line for {kind:?} ({wire})"
                );
            }
        }
    }

    #[test]
    fn json_lines_are_the_bodies_the_relay_publishes() {
        let Event::Publication(chat) = publication(json!({"type": "channel_chat_message_send",
            "data": {"chat_message": {"id": 1, "parts": [{"text": {"content": "hi"}}]}}}))
        else {
            unreachable!()
        };
        let body = vklive_pubsub::ndjson::publication_line(&chat);
        assert_eq!(Style::Json.line(&Event::Publication(chat)), body);
    }

    #[test]
    fn colour_only_when_asked() {
        let follow = publication(json!({"type": "channel_follow_create",
            "data": {"follow": {"follower": {"id": 1, "nick": "X"}}}}));
        assert!(Style::Text { colour: true }.line(&follow).contains("\x1b["));
        assert!(
            !Style::Text { colour: false }
                .line(&follow)
                .contains("\x1b[")
        );
    }
}
