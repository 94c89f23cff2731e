//! `vklive token`: sign in once through VK's OAuth code flow (a loopback
//! redirect listener on 127.0.0.1), store the token pair owner-only, and
//! `check` or `refresh` it later. Every other command then uses the stored
//! login when `VKLIVE_TOKEN` is unset.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use tokio::sync::mpsc;
use vklive_pubsub::auth::{OAuthApp, VkApi, scope};
use vklive_pubsub::{Authorization, Credentials, Secret};

use crate::credentials::{self, TokenArgs};
use crate::login::{self, Login};
use crate::numbers::non_negative;
use crate::render::clean;
use crate::shutdown::Shutdown;

/// The loopback port of the redirect URI by default (VK wants the redirect
/// URI registered exactly: register `http://127.0.0.1:8764/callback`).
const DEFAULT_PORT: u16 = 8764;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Signs in: prints the authorization URL (and opens it in a browser when one \
exists), waits for VK to redirect to http://127.0.0.1:PORT/callback, trades the code for a \
token pair and stores it owner-only (0600) in $VKLIVE_CONFIG_DIR, else $XDG_CONFIG_HOME/vklive, \
else ~/.config/vklive (login.json). The app's client secret is stored with it, for refreshing."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    login: LoginArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Ask VK about the token in use (`GET /v1/token`): its type and expiry.
    Check(CheckArgs),
    /// Refresh the stored login now, and store the new pair.
    Refresh,
}

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// The app's client id.
    #[arg(long, env = "VKLIVE_CLIENT_ID")]
    client_id: Option<String>,
    /// The app's client secret (prefer the environment variable: a flag
    /// shows in `ps`).
    #[arg(long, env = "VKLIVE_CLIENT_SECRET", hide_env_values = true, value_parser = secret)]
    client_secret: Option<Secret>,
    /// Loopback port of the redirect URI `http://127.0.0.1:PORT/callback`
    /// (0: any free port, for tests; VK wants the registered URI exactly).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Scopes to ask for, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = scope::BOT.map(String::from))]
    scope: Vec<String>,
    /// VK's authorization page.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_AUTHORIZE_URL)]
    authorize_url: String,
    /// VK's OAuth token endpoint.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_TOKEN_URL)]
    token_url: String,
    /// Only print the authorization URL; never start a browser.
    #[arg(long)]
    no_browser: bool,
    /// Give up when no redirect came within this many seconds.
    #[arg(long, default_value_t = 300.0, value_parser = non_negative, value_name = "SECONDS", allow_hyphen_values = true)]
    timeout: f64,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// DevAPI base URL.
    #[arg(long, default_value = vklive_pubsub::auth::DEFAULT_API_URL)]
    api_url: String,
    #[command(flatten)]
    token: TokenArgs,
}

fn secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::from(text))
}

pub(crate) async fn run(args: Args) -> Result<(), String> {
    match args.action {
        None => sign_in(args.login).await,
        Some(Action::Check(check_args)) => check(check_args).await,
        Some(Action::Refresh) => refresh().await,
    }
}

async fn sign_in(args: LoginArgs) -> Result<(), String> {
    let mut shutdown = Shutdown::listen();
    let client_id = args
        .client_id
        .ok_or("no client id: pass --client-id or set VKLIVE_CLIENT_ID")?;
    let client_secret = args
        .client_secret
        .ok_or("no client secret: set VKLIVE_CLIENT_SECRET (or pass --client-secret)")?;
    let path = login::path()?;

    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port))
        .await
        .map_err(|error| format!("cannot listen on 127.0.0.1:{}: {error}", args.port))?;
    let addr = listener
        .local_addr()
        .map_err(|error| format!("cannot read the bound address: {error}"))?;
    let redirect_uri = format!("http://{addr}/callback");
    let (redirects, mut redirected) = mpsc::channel::<String>(4);
    let app = axum::Router::new()
        .route("/callback", get(callback))
        .with_state(Callback { addr, redirects });
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let app = OAuthApp::new(client_id.clone(), client_secret.clone(), redirect_uri)
        .authorize_url(&args.authorize_url)
        .token_url(&args.token_url);
    let state = OAuthApp::random_state().map_err(|error| error.to_string())?;
    let scopes: Vec<&str> = args.scope.iter().map(String::as_str).collect();
    let url = app.authorization_url(&scopes, &state);
    eprintln!("token: open this URL in a browser and allow access:");
    println!("{url}");
    if !args.no_browser {
        open_browser(&url);
    }
    eprintln!("token: waiting for VK's redirect on http://{addr}/callback ...");

    let patience = Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::MAX);
    let outcome = async {
        let redirected_to = tokio::select! {
            redirected_to = tokio::time::timeout(patience, redirected.recv()) => match redirected_to {
                Ok(Some(redirected_to)) => redirected_to,
                _ => return Err(format!("no redirect within {} s", args.timeout)),
            },
            () = shutdown.requested() => return Err("interrupted".into()),
        };
        let code = app
            .code_from_redirect(&redirected_to, &state)
            .map_err(|error| clean(&error.to_string()))?;
        let grant = app
            .exchange_code(&code)
            .await
            .map_err(|error| clean(&error.to_string()))?;
        let stored = Login {
            access_token: grant.pair.access_token.clone(),
            refresh_token: grant.pair.refresh_token.clone(),
            expires_at: grant.pair.expires_at.map(login::unix_seconds),
            client_id,
            client_secret,
            token_url: args.token_url.clone(),
        };
        login::save(&path, &stored)?;
        eprintln!(
            "token: signed in; stored in {} ({}; scopes: {})",
            path.display(),
            expiry(grant.pair.expires_at),
            if grant.scopes.is_empty() {
                String::from("not named")
            } else {
                clean(&grant.scopes.join(","))
            }
        );
        Ok(())
    }
    .await;
    server.abort();
    outcome
}

#[derive(Clone)]
struct Callback {
    addr: SocketAddr,
    redirects: mpsc::Sender<String>,
}

/// `GET /callback?code=…&state=…`: hands the whole URL to the flow.
async fn callback(State(callback): State<Callback>, uri: Uri) -> &'static str {
    let _ = callback
        .redirects
        .try_send(format!("http://{}{uri}", callback.addr));
    "vklive: the redirect arrived; you can close this page and go back to the terminal."
}

/// Starts the desktop's browser on `url` when there is a desktop
/// (`DISPLAY` or `WAYLAND_DISPLAY`) and `xdg-open`; says nothing otherwise.
fn open_browser(url: &str) {
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if !desktop {
        return;
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_ok() {
        eprintln!("token: opened it in your browser");
    }
}

async fn check(args: CheckArgs) -> Result<(), String> {
    let credentials = credentials::required(&args.token)?;
    let api = VkApi::new(&args.api_url, credentials).map_err(|error| error.to_string())?;
    let info = api
        .token_info()
        .await
        .map_err(|error| clean(&error.to_string()))?;
    println!("type: {}", clean(info.kind.as_deref().unwrap_or("unknown")));
    println!(
        "expires: {}",
        expiry(info.expired_at.map(|at| at.system_time()))
    );
    if info.is_expired(SystemTime::now()) {
        return Err("the token has expired".into());
    }
    Ok(())
}

async fn refresh() -> Result<(), String> {
    let path = login::path()?;
    let stored = login::load(&path)?.ok_or("no stored login: sign in with `vklive token` first")?;
    let refresher = stored.refresher(path.clone());
    // The refresher refreshes when told that its current token was refused,
    // and hands the new pair to the store (the login file).
    refresher
        .rejected(&Authorization::Bearer(stored.access_token.clone()))
        .await
        .map_err(|error| clean(&error.to_string()))?;
    let pair = refresher.current().await;
    eprintln!(
        "token: refreshed; stored in {} ({})",
        path.display(),
        expiry(pair.expires_at)
    );
    Ok(())
}

/// `2026-12-06T08:00:00Z (in 3599 s)`, `… (expired 12 s ago)`, or `never
/// (no expiry named)`.
fn expiry(at: Option<SystemTime>) -> String {
    let Some(at) = at else {
        return String::from("never (no expiry named)");
    };
    let when = iso_utc(login::unix_seconds(at));
    match at.duration_since(SystemTime::now()) {
        Ok(left) => format!("{when} (in {} s)", left.as_secs()),
        Err(past) => format!("{when} (expired {} s ago)", past.duration().as_secs()),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the civil calendar, UTC).
fn iso_utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let day_seconds = seconds % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        day_seconds / 3600,
        day_seconds % 3600 / 60,
        day_seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_read_as_utc_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
