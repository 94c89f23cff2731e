//! The stored login of `vklive token`: one JSON file, owner-only, in the
//! user's config directory (`$VKLIVE_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/vklive`, else `~/.config/vklive`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vklive_pubsub::Secret;
use vklive_pubsub::auth::{OAuthRefresher, TokenPair, TokenStore};

/// The file's name inside the config directory.
const FILE_NAME: &str = "login.json";

/// What `vklive token` stores: the token pair, and what refreshing it needs
/// (the app's credentials and token endpoint). `Debug` shows no secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Login {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Secret,
    /// Unix seconds; `None` when the server named no lifetime.
    pub(crate) expires_at: Option<u64>,
    pub(crate) client_id: String,
    pub(crate) client_secret: Secret,
    pub(crate) token_url: String,
}

impl Login {
    pub(crate) fn pair(&self) -> TokenPair {
        TokenPair {
            access_token: self.access_token.clone(),
            refresh_token: self.refresh_token.clone(),
            expires_at: self
                .expires_at
                .and_then(|at| UNIX_EPOCH.checked_add(Duration::from_secs(at))),
        }
    }

    pub(crate) fn with_pair(&self, pair: &TokenPair) -> Login {
        Login {
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token.clone(),
            expires_at: pair.expires_at.map(unix_seconds),
            ..self.clone()
        }
    }

    /// Credentials that refresh this login when it has expired (or is about
    /// to) and when the API refuses it, saving every new pair to `path`.
    pub(crate) fn refresher(&self, path: PathBuf) -> OAuthRefresher {
        let store = FileStore {
            path,
            login: self.clone(),
        };
        OAuthRefresher::new(
            self.client_id.clone(),
            self.client_secret.clone(),
            self.pair(),
        )
        .token_url(self.token_url.clone())
        .store(std::sync::Arc::new(store))
    }
}

pub(crate) fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Where the login lives.
pub(crate) fn path() -> Result<PathBuf, String> {
    let dir = if let Some(dir) = non_empty_var("VKLIVE_CONFIG_DIR") {
        PathBuf::from(dir)
    } else if let Some(dir) = non_empty_var("XDG_CONFIG_HOME") {
        PathBuf::from(dir).join("vklive")
    } else if let Some(home) = non_empty_var("HOME") {
        PathBuf::from(home).join(".config").join("vklive")
    } else {
        return Err("no config directory: set VKLIVE_CONFIG_DIR or HOME".into());
    };
    Ok(dir.join(FILE_NAME))
}

fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// The stored login, `None` when there is none.
pub(crate) fn load(path: &Path) -> Result<Option<Login>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    serde_json::from_str(&text).map(Some).map_err(|error| {
        format!(
            "{} is not a login `vklive token` wrote: {error}",
            path.display()
        )
    })
}

/// Writes the login readable by its owner only (0600, in a 0700 directory),
/// through a temporary file and a rename so that a crash leaves the old one.
pub(crate) fn save(path: &Path, login: &Login) -> Result<(), String> {
    let fail =
        |what: &str, error: std::io::Error| format!("cannot {what} {}: {error}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|error| fail("create the directory of", error))?;
    let json = serde_json::to_vec_pretty(login).map_err(|error| error.to_string())?;
    let temporary = path.with_extension("json.tmp");
    let mut file = private_file(&temporary).map_err(|error| fail("write", error))?;
    file.write_all(&json)
        .and_then(|()| file.sync_all())
        .map_err(|error| fail("write", error))?;
    std::fs::rename(&temporary, path).map_err(|error| fail("write", error))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file keeps its mode through `open`: set it anyway.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::create(path)
}

/// Saves every pair the refresher gets, so that the rotated refresh token
/// survives the process.
struct FileStore {
    path: PathBuf,
    login: Login,
}

impl TokenStore for FileStore {
    fn save(&self, pair: &TokenPair) {
        if let Err(error) = save(&self.path, &self.login.with_pair(pair)) {
            tracing::warn!("the refreshed token was not stored: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            access_token: Secret::new("access-1"),
            refresh_token: Secret::new("refresh-1"),
            expires_at: Some(1_900_000_000),
            client_id: "app".into(),
            client_secret: Secret::new("s3cret"),
            token_url: "http://127.0.0.1:1/oauth/server/token".into(),
        }
    }

    #[test]
    fn a_login_round_trips_owner_only_and_debug_shows_no_secret() {
        let dir = std::env::temp_dir().join(format!("vklive-login-{}", std::process::id()));
        let path = dir.join("sub").join(FILE_NAME);
        save(&path, &login()).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(back.access_token.expose_secret(), "access-1");
        assert_eq!(back.expires_at, Some(1_900_000_000));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let debug = format!("{back:?}");
        assert!(
            !debug.contains("access-1") && !debug.contains("s3cret"),
            "{debug}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_file_is_no_login() {
        assert!(
            load(Path::new("/nonexistent/vklive/login.json"))
                .unwrap()
                .is_none()
        );
    }
}
