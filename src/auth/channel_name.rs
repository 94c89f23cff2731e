//! Which names may be pubsub channel names: the checks made before a name
//! goes into a request.

use crate::error::{Error, ErrorKind};

/// The longest pubsub channel name or VK slug accepted, in bytes (16 KiB):
/// far above any real one (VK's are a few tens of bytes; Centrifugo's
/// default `channel_max_length` is 255), and small enough that a request
/// naming it always fits in a URL, percent-encoded (HTTP's limit is 64 KiB).
pub const MAX_CHANNEL_NAME_BYTES: usize = 16 * 1024;

/// Checks that `name` can be a pubsub channel name: not empty, at most
/// [`MAX_CHANNEL_NAME_BYTES`], and free of commas (the token batch joins
/// names with them), whitespace and control characters. The error,
/// [`ErrorKind::InvalidChannel`], names the channel (its first 64
/// characters, and its length when longer).
///
/// ```
/// use vklive_pubsub::{auth::check_channel_name, ErrorKind};
/// assert!(check_channel_name("channel-chat:8845069").is_ok());
/// let error = check_channel_name("a,b").unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::InvalidChannel);
/// assert!(check_channel_name(&"x".repeat(100_000)).is_err());
/// ```
pub fn check_channel_name(name: &str) -> Result<(), Error> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_CHANNEL_NAME_BYTES {
        "is too long"
    } else if name.contains(',') {
        "holds a comma"
    } else if name.contains(|c: char| c.is_whitespace() || c.is_control()) {
        "holds whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(invalid_channel("channel name", name, problem))
}

/// An [`ErrorKind::InvalidChannel`] error naming `name` (shortened when long).
pub(crate) fn invalid_channel(what: &str, name: &str, problem: &str) -> Error {
    const SHOWN: usize = 64;
    let shown: String = name.chars().take(SHOWN).collect();
    let more = if shown.len() < name.len() {
        format!("… ({} bytes)", name.len())
    } else {
        String::new()
    };
    Error::new(
        ErrorKind::InvalidChannel,
        format!(
            "{what} {shown:?}{more} {problem} (at most {MAX_CHANNEL_NAME_BYTES} bytes, no comma, whitespace or control character)"
        ),
    )
}
