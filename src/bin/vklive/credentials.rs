//! Where a command's access token comes from, first found wins: a file
//! (`--token-file`, named on this very command, so it beats the
//! environment), the `VKLIVE_TOKEN` environment variable, or the login
//! stored by `vklive token` (refreshed when it has expired). Never a
//! command-line value: that would show in `ps` and `/proc/*/cmdline`.

use std::path::PathBuf;
use std::sync::Arc;

use vklive_pubsub::{Authorization, Credentials, Secret};

use crate::login;

/// The environment variable holding an access token.
pub(crate) const TOKEN_VAR: &str = "VKLIVE_TOKEN";

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TokenArgs {
    /// Read the access token from this file (its first line) instead of
    /// VKLIVE_TOKEN or the login stored by `vklive token`.
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
}

/// The token, in the documented order; `Ok(None)` when there is none.
pub(crate) fn credentials(args: &TokenArgs) -> Result<Option<Arc<dyn Credentials>>, String> {
    // The flag first: it was given for this run, the environment may be
    // left over from another.
    if let Some(path) = &args.token_file {
        return from_file(path).map(|token| Some(Arc::new(Authorization::user(token)) as _));
    }
    if let Some(token) = from_environment() {
        return Ok(Some(Arc::new(Authorization::user(token))));
    }
    let path = login::path()?;
    Ok(login::load(&path)?.map(|login| Arc::new(login.refresher(path)) as _))
}

/// Like [`credentials`], with the error every command gives without one.
pub(crate) fn required(args: &TokenArgs) -> Result<Arc<dyn Credentials>, String> {
    credentials(args)?.ok_or_else(|| {
        String::from(
            "no access token: set VKLIVE_TOKEN, pass --token-file PATH, or sign in with `vklive token`",
        )
    })
}

fn from_environment() -> Option<Secret> {
    std::env::var(TOKEN_VAR)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
        .map(Secret::from)
}

fn from_file(path: &PathBuf) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --token-file {}: {error}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!("--token-file {} is empty", path.display()));
    }
    Ok(Secret::from(token))
}
