//! Names in NATS: the subject of a publication, the subject filter of a
//! channel, and the KV key of a channel's lease. Pure functions.
//!
//! A subject is `vklive.<channel>.<kind>`: `<channel>` is the pubsub channel
//! name and `<kind>` the event's `type` (`gap` for a loss), each made a
//! valid subject token by [`token`]. Channel names such as
//! `channel-chat:8845069` pass unchanged.

/// The first token of every subject the relay publishes on.
pub const PREFIX: &str = "vklive";

/// The kind token of a loss message (`{"event":"gap",…}`).
pub const GAP_KIND: &str = "gap";

/// `text` as one NATS subject token: bytes outside `A-Z a-z 0-9 - _ : # = @ + , ! ~`
/// (so `.`, `*`, `>`, whitespace, `%` and anything non-ASCII) become `%XX`,
/// and the empty text becomes `%`. The mapping is one-to-one, so two
/// channels never share a subject; [`untoken`] reverses it.
///
/// ```
/// use vklive_pubsub::relay::subject::token;
/// assert_eq!(token("channel-chat:8845069"), "channel-chat:8845069");
/// assert_eq!(token("a.b *>"), "a%2Eb%20%2A%3E");
/// ```
pub fn token(text: &str) -> String {
    if text.is_empty() {
        return String::from("%");
    }
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_:#=@+,!~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text a [`token`] was made from; `None` for a string no token looks like.
pub fn untoken(token: &str) -> Option<String> {
    if token == "%" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject of a message of `channel` whose event type is `kind`.
///
/// ```
/// use vklive_pubsub::relay::subject::subject;
/// assert_eq!(
///     subject("channel-chat:1", "channel_chat_message_send"),
///     "vklive.channel-chat:1.channel_chat_message_send"
/// );
/// ```
pub fn subject(channel: &str, kind: &str) -> String {
    format!("{PREFIX}.{}.{}", token(channel), token(kind))
}

/// The filter matching every message of `channel`.
pub fn channel_filter(channel: &str) -> String {
    format!("{PREFIX}.{}.>", token(channel))
}

/// The filter matching every message the relay publishes.
pub fn all_filter() -> String {
    format!("{PREFIX}.>")
}

/// The channel a subject belongs to, if the relay could have published on it.
pub fn channel_of(subject: &str) -> Option<String> {
    let mut parts = subject.split('.');
    if parts.next()? != PREFIX {
        return None;
    }
    let channel = untoken(parts.next()?)?;
    parts.next()?;
    parts.next().is_none().then_some(channel)
}

/// The KV key of `channel`'s lease: `channel.<name>` with bytes outside
/// `A-Z a-z 0-9 - _` written `=XX` (KV keys allow few characters).
///
/// ```
/// use vklive_pubsub::relay::subject::lease_key;
/// assert_eq!(lease_key("channel-chat:1"), "channel.channel-chat=3A1");
/// ```
pub fn lease_key(channel: &str) -> String {
    let mut key = String::from(LEASE_KEY_PREFIX);
    for byte in channel.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            key.push(byte as char);
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key
}

/// The start of every lease key.
pub const LEASE_KEY_PREFIX: &str = "channel.";

/// The start of every relay's presence key.
pub const PRESENCE_KEY_PREFIX: &str = "relay.";

/// The KV key saying that relay `id` is alive (ids are made of `0-9 a-f -`).
pub fn presence_key(id: &str) -> String {
    format!("{PRESENCE_KEY_PREFIX}{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_hold_what_subjects_forbid_and_map_back() {
        for text in [
            "channel-chat:8845069",
            "a.b",
            "*",
            ">",
            "with space\ttab",
            "100%",
            "%41",
            "канал",
            "",
            "x=y#z",
        ] {
            let token = token(text);
            assert!(!token.is_empty());
            assert!(
                !token
                    .chars()
                    .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace()),
                "{token}"
            );
            assert!(token.is_ascii());
            assert_eq!(untoken(&token).as_deref(), Some(text));
        }
        assert_ne!(token("%41"), token("A"), "one-to-one");
        assert_eq!(untoken("%4"), None);
        assert_eq!(untoken("%ZZ"), None);
    }

    #[test]
    fn subjects_name_the_channel_and_the_kind() {
        let subject = subject("api-channel-chat:1", "channel_chat_message_send");
        assert_eq!(
            subject,
            "vklive.api-channel-chat:1.channel_chat_message_send"
        );
        assert_eq!(channel_of(&subject).as_deref(), Some("api-channel-chat:1"));
        assert_eq!(channel_of("vklive.a%2Eb.gap").as_deref(), Some("a.b"));
        assert_eq!(channel_of("other.a.gap"), None);
        assert_eq!(channel_of("vklive.a"), None);
        assert_eq!(channel_filter("a.b"), "vklive.a%2Eb.>");
    }

    #[test]
    fn lease_keys_use_only_what_kv_allows_and_differ_per_channel() {
        let keys = ["c:1", "c=3A1", "c.1", "канал"].map(lease_key);
        for key in &keys {
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=./".contains(&b)),
                "{key}"
            );
        }
        let unique: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(presence_key("abc"), "relay.abc");
    }
}
