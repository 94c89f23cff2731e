//! Connecting to NATS and making sure the stream and the lease bucket exist.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::RelayError;
use crate::secret::Secret;

/// How to reach NATS: a URL (`nats://`, `tls://`, with `user:password@`
/// when the server wants them) and optionally a token, a `.creds` file and
/// a CA file for TLS.
///
/// ```
/// use vklive_pubsub::relay::NatsOptions;
/// let options = NatsOptions::new("nats://user:secret@127.0.0.1:4222");
/// assert!(!format!("{options:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct NatsOptions {
    /// The server URL; several may be given separated by commas.
    pub url: Secret,
    /// A token (`authorization { token: … }` on the server).
    pub token: Option<Secret>,
    /// A `.creds` file (JWT and NKey seed).
    pub credentials_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for TLS; TLS is required when set.
    pub root_certificate: Option<PathBuf>,
    /// How long connecting may take before giving up (default 5 s).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("url", &redacted_url(self.url.expose_secret()))
            .field("token", &self.token)
            .field("credentials_file", &self.credentials_file)
            .field("root_certificate", &self.root_certificate)
            .finish()
    }
}

impl NatsOptions {
    /// Options for `url`, nothing else set.
    pub fn new(url: impl Into<String>) -> NatsOptions {
        NatsOptions {
            url: Secret::new(url.into()),
            token: None,
            credentials_file: None,
            root_certificate: None,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Connects once, failing fast (no retry of the first connect); once
    /// connected, the client reconnects by itself without end.
    pub async fn connect(&self) -> Result<async_nats::Client, RelayError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("vklive")
            .connection_timeout(self.connect_timeout)
            .max_reconnects(None);
        // async-nats reads no credentials from the URL: pass them on.
        match url_credentials(self.url.expose_secret()) {
            Some((user, Some(password))) => options = options.user_and_password(user, password),
            Some((token, None)) => options = options.token(token),
            None => {}
        }
        if let Some(token) = &self.token {
            options = options.token(token.expose_secret().to_owned());
        }
        if let Some(path) = &self.credentials_file {
            options = options.credentials_file(path).await.map_err(|error| {
                RelayError::Nats(format!(
                    "cannot read the credentials file {}: {error}",
                    path.display()
                ))
            })?;
        }
        if let Some(path) = &self.root_certificate {
            options = options
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        // Credentials go through the options above, not in the URL, which
        // async-nats logs.
        let shown = redacted_url(self.url.expose_secret());
        let url = without_credentials(self.url.expose_secret());
        match tokio::time::timeout(self.connect_timeout * 2, options.connect(url.as_str())).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(RelayError::Nats(format!(
                "cannot connect to NATS at {shown}: {error}"
            ))),
            Err(_) => Err(RelayError::Nats(format!(
                "cannot connect to NATS at {shown}: no answer within {:?}",
                self.connect_timeout * 2
            ))),
        }
    }
}

/// The user and password (or the token, a user alone) in the first URL of
/// `urls`, percent-decoded.
fn url_credentials(urls: &str) -> Option<(String, Option<String>)> {
    let first = urls.split(',').next()?.trim();
    let with_scheme = if first.contains("://") {
        first.to_owned()
    } else {
        format!("nats://{first}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    if url.username().is_empty() {
        return None;
    }
    Some((
        percent_decode(url.username()),
        url.password().map(percent_decode),
    ))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `urls` with the credentials left out.
fn without_credentials(urls: &str) -> String {
    urls.split(',')
        .map(|one| {
            let one = one.trim();
            match (one.find("://"), one.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}{}", &one[..scheme + 3], &one[at + 1..])
                }
                (None, Some(at)) => one[at + 1..].to_owned(),
                _ => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `url` with any password or token in it replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}***{}", &one[..scheme + 3], &one[at..])
            }
            (None, Some(at)) => format!("***{}", &one[at..]),
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The stream's settings.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Its name (default [`DEFAULT_STREAM`](super::DEFAULT_STREAM)).
    pub name: String,
    /// How long JetStream remembers a `Nats-Msg-Id` (default 2 minutes).
    pub duplicate_window: Duration,
    /// How long messages are kept (default 24 hours).
    pub max_age: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: super::DEFAULT_STREAM.to_owned(),
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// The stream, created (file storage, subjects `vklive.>`) when missing.
pub async fn ensure_stream(
    context: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, RelayError> {
    let config = stream::Config {
        name: settings.name.clone(),
        subjects: vec![super::subject::all_filter()],
        storage: stream::StorageType::File,
        duplicate_window: settings.duplicate_window,
        max_age: settings.max_age,
        allow_direct: true,
        ..Default::default()
    };
    context
        .get_or_create_stream(config)
        .await
        .map_err(|error| RelayError::Nats(format!("stream {}: {error}", settings.name)))
}

/// The lease bucket, created when missing, its keys living `ttl`.
pub async fn ensure_bucket(
    context: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
) -> Result<kv::Store, RelayError> {
    if let Ok(store) = context.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: bucket.to_owned(),
        history: 1,
        max_age: ttl,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    match context.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another relay created it meanwhile.
        Err(error) => context
            .get_key_value(bucket)
            .await
            .map_err(|_| RelayError::Nats(format!("lease bucket {bucket}: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_first_url() {
        assert_eq!(
            url_credentials("nats://u:p%40ss@h:4222,nats://x:y@h2"),
            Some(("u".into(), Some("p@ss".into())))
        );
        assert_eq!(url_credentials("tok@h:4222"), Some(("tok".into(), None)));
        assert_eq!(url_credentials("nats://h:4222"), None);
    }

    #[test]
    fn urls_are_shown_without_their_secrets() {
        assert_eq!(redacted_url("nats://u:p@host:4222"), "nats://***@host:4222");
        assert_eq!(redacted_url("tok@host"), "***@host");
        assert_eq!(
            redacted_url("nats://host:1,nats://t@h2"),
            "nats://host:1,nats://***@h2"
        );
        assert_eq!(redacted_url("nats://host"), "nats://host");
        assert_eq!(without_credentials("nats://u:p@h:1,t@h2"), "nats://h:1,h2");
        let options = NatsOptions {
            token: Some(Secret::new("tok-123")),
            ..NatsOptions::new("nats://a:pw-456@h")
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("pw-456"),
            "{shown}"
        );
    }
}
