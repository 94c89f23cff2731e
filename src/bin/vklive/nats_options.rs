//! How a command reaches NATS (`relay`, `tail --nats`): the URL, a token
//! from `NATS_TOKEN`, a `.creds` file and a CA certificate, read the same
//! way by every command.

use std::path::PathBuf;

use vklive_pubsub::relay::NatsOptions;

/// The environment variable holding a NATS token (never a flag: a flag's
/// value shows in `ps`).
pub(crate) const NATS_TOKEN_VAR: &str = "NATS_TOKEN";

/// The NATS credentials a command takes besides the URL.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct NatsArgs {
    /// A NATS `.creds` file.
    #[arg(long, env = "NATS_CREDS", value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// A CA certificate (PEM) for NATS over TLS; TLS is then required.
    #[arg(long, env = "NATS_CA", value_name = "FILE")]
    nats_ca: Option<PathBuf>,
}

/// Options for `url` with the token of `NATS_TOKEN` (when set and not
/// empty), and `args`' `.creds` file and CA certificate.
pub(crate) fn nats_options(url: &str, args: &NatsArgs) -> NatsOptions {
    let mut options = NatsOptions::new(url);
    options.token = std::env::var(NATS_TOKEN_VAR)
        .ok()
        .filter(|token| !token.is_empty())
        .map(Into::into);
    options.credentials_file = args.nats_creds.clone();
    options.root_certificate = args.nats_ca.clone();
    options
}
