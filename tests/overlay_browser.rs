//! The overlay (`vklive overlay`, the built binary) in a real browser:
//! headless Chromium driven through chromedriver (WebDriver, the
//! `fantoccini` crate).
//!
//! The emulator fires a follow, a raid, a subscription, a redemption and chat
//! messages; the test sees each on the page within 2 s, checks that hostile
//! nicks and messages show as text and run nothing, reloads the page in the
//! middle of an alert queue and checks that every alert is shown exactly
//! once, and takes the screenshot of `docs/overlay.png`
//! (`UPDATE_SCREENSHOT=1` writes it there; otherwise it goes to the target
//! directory).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Without them the browser test prints one line and passes, unless
//! `CI` is set: then it fails and says what to install. `CHROMEDRIVER` and
//! `CHROME_BIN` override where they are looked for.

use std::collections::HashMap;
use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client as Browser, ClientBuilder};
use serde_json::{Value, json};
use vklive_pubsub::emulator::{
    ChannelNames, DemoUser, Emulator, EmulatorConfig, chat_message_delete, chat_message_send,
    follow_create, mention_part, raid_income, reward_demand_create, subscription_create, text_part,
};
use vklive_pubsub::event::PALETTE;

/// Bound for any one step: a WebDriver command, a start-up, a request.
const STEP: Duration = Duration::from_secs(15);
/// The issue's bound: an event fired by the emulator is on the page within this.
const RENDER: Duration = Duration::from_secs(2);
/// How long each alert stays on screen in this test (the page's `alert_ms`).
const ALERT_MS: u64 = 1500;
const TOKEN: &str = "overlay-test-token";
const VKLIVE: &str = env!("CARGO_BIN_EXE_vklive");
/// What the overlay sends with every response (docs/overlay.md).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' http: https:; connect-src 'self'; \
     base-uri 'none'; form-action 'none'";
/// The overlay's replay buffer by default, in events.
const DEFAULT_REPLAY: u64 = 1000;

/// Runs `future` with a bound; a step that takes longer fails the test.
async fn bounded<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no answer within {limit:?}"),
    }
}

// ---------------------------------------------------------------------------
// chromedriver and Chromium
// ---------------------------------------------------------------------------

fn find_program(env: &str, names: &[&str], also: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        // Set but not a file: not found (the test then skips, or fails in CI).
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .chain(also.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}

const CHROMEDRIVER_PATHS: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// Whether chromedriver and Chromium are both here. When not: outside CI,
/// one line says why the browser test is skipped; in CI (`CI` set), the
/// test fails, since CI must run it.
fn browser_available(test: &str) -> bool {
    let driver = find_program("CHROMEDRIVER", &["chromedriver"], &CHROMEDRIVER_PATHS);
    let chrome = find_program(
        "CHROME_BIN",
        &["chromium", "chromium-browser"],
        &["/usr/bin/chromium"],
    );
    if driver.is_some() && chrome.is_some() {
        return true;
    }
    let missing = if driver.is_none() {
        "chromedriver"
    } else {
        "chromium"
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing} not found and CI is set: install Debian's chromium and chromium-driver \
         (`apt-get update && apt-get install -y chromium chromium-driver`; .ci/run does), \
         or set CHROMEDRIVER and CHROME_BIN"
    );
    // Straight to stderr, past the test harness's capture: the one line shows.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped, no {missing} found (apt-get install chromium chromium-driver; with CI set it fails)"
    );
    false
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// chromedriver in its own process group; dropping it kills the group, so
/// no browser outlives a failed test.
struct Chromedriver {
    child: std::process::Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the process group this test created.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn start_chromedriver() -> Chromedriver {
    use std::os::unix::process::CommandExt;
    let program = find_program("CHROMEDRIVER", &["chromedriver"], &CHROMEDRIVER_PATHS)
        .unwrap_or_else(|| {
            panic!(
                "chromedriver not found: this test needs Debian's chromium and chromium-driver \
             (`apt-get update && apt-get install -y chromium chromium-driver`; .ci/run installs \
             them), or CHROMEDRIVER=/path/to/chromedriver"
            )
        });
    let port = free_port();
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("overlay-chromedriver.log");
    let child = std::process::Command::new(&program)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", program.display()));
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + STEP;
    loop {
        let ready = bounded("chromedriver /status", STEP, http.get(&status).send()).await;
        if let Ok(response) = ready {
            let body: Value = response.json().await.unwrap_or_default();
            if body["value"]["ready"] == true {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver ({}) did not become ready on port {port} within {STEP:?}; see {}",
            program.display(),
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn open_browser(driver: &Chromedriver) -> Browser {
    let chrome = find_program(
        "CHROME_BIN",
        &["chromium", "chromium-browser"],
        &["/usr/bin/chromium"],
    )
    .unwrap_or_else(|| {
        panic!(
            "chromium not found: `apt-get install -y chromium chromium-driver` \
             (.ci/run installs it), or CHROME_BIN=/path/to/chromium"
        )
    });
    let options = json!({
        "binary": chrome,
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,720",
            "--lang=en-US",
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = bounded(
        "a WebDriver session",
        STEP * 2,
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url),
    )
    .await
    .unwrap_or_else(|error| panic!("cannot open a Chromium session through chromedriver: {error}"));
    // A 1280×720 viewport (the window's size includes what headless keeps
    // for its frame).
    let (outer_width, outer_height) = bounded("the window size", STEP, browser.get_window_size())
        .await
        .expect("window size");
    let inner = js(
        &browser,
        "return [window.innerWidth, window.innerHeight];",
        vec![],
    )
    .await;
    let frame = |outer: u64, inner: &Value| outer.saturating_sub(inner.as_u64().unwrap_or(outer));
    let width = 1280 + frame(outer_width, &inner[0]);
    let height = 720 + frame(outer_height, &inner[1]);
    bounded(
        "resizing the window",
        STEP,
        browser.set_window_size(width as u32, height as u32),
    )
    .await
    .expect("resize the window");
    browser
}

async fn js(browser: &Browser, script: &str, args: Vec<Value>) -> Value {
    bounded("a script in the page", STEP, browser.execute(script, args))
        .await
        .unwrap_or_else(|error| panic!("script failed: {error}\n{script}"))
}

/// Runs `script` every 25 ms until `check` accepts its result, for at most
/// `within`; fails with `what` and the last result otherwise.
async fn poll<T>(
    browser: &Browser,
    what: &str,
    within: Duration,
    script: &str,
    args: Vec<Value>,
    check: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let value = js(browser, script, args.clone()).await;
        if let Some(found) = check(&value) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {within:?}; the page shows {value}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------
// Scripts run in the page
// ---------------------------------------------------------------------------

/// The alert on screen: `null`, or its class, event id, nick, whole text and phase.
const CURRENT_ALERT: &str = r#"
    const cards = document.querySelectorAll('#alerts .alert');
    if (cards.length === 0) return null;
    const card = cards[0];
    return { count: cards.length, class: card.className, id: card.dataset.eventId,
             nick: card.querySelector('.nick').textContent, text: card.textContent,
             phase: card.dataset.phase };
"#;

/// Records each alert element the first time it is seen: returns
/// `{count, fresh}` where `fresh` is `"<event id>|<nick>"` for an element not
/// seen before (a property on the element marks it).
const NEW_ALERT: &str = r#"
    const cards = document.querySelectorAll('#alerts .alert');
    if (cards.length === 0) return { count: 0, fresh: null };
    const card = cards[0];
    if (card.__seenByTest) return { count: cards.length, fresh: null };
    card.__seenByTest = true;
    return { count: cards.length,
             fresh: card.dataset.eventId + '|' + card.querySelector('.nick').textContent };
"#;

/// The chat line of message `arguments[0]`: `null`, or what it shows.
const CHAT_LINE: &str = r#"
    const line = [...document.querySelectorAll('#chat li.msg')]
        .find((li) => li.dataset.id === String(arguments[0]));
    if (!line) return null;
    const nick = line.querySelector('.nick');
    return { nick: nick.textContent, color: getComputedStyle(nick).color,
             text: line.querySelector('.text').textContent,
             mentions: [...line.querySelectorAll('.mention')].map((m) => m.textContent),
             smiles: [...line.querySelectorAll('img.smile')].map((img) => img.getAttribute('src')),
             smilesLoaded: [...line.querySelectorAll('img.smile')].every((img) => img.complete && img.naturalWidth > 0),
             smileTexts: [...line.querySelectorAll('.smile-text')].map((s) => s.textContent),
             images: [...line.querySelectorAll('img')].map((img) => img.getAttribute('src')),
             elements: [...line.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()) };
"#;

fn rgb(hex: &str) -> String {
    let channel = |at: usize| u8::from_str_radix(&hex[at..at + 2], 16).unwrap();
    format!("rgb({}, {}, {})", channel(1), channel(3), channel(5))
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

fn user(id: u64, nick: &str, color: u8) -> DemoUser {
    let mut user = DemoUser::new(id, nick);
    user.nick_color = color;
    user
}

fn redemption(id: i64, user: &DemoUser, reward: &str, cost: i64, message: &str) -> Value {
    let mut payload =
        reward_demand_create(id, user, "bc211809-1e52-4180-8dbc-e106649ef78a", message);
    payload["data"]["demand"]["reward"] =
        json!({"id": "bc211809-1e52-4180-8dbc-e106649ef78a", "name": reward, "price": cost});
    payload
}

fn smile(name: &str, url: &str) -> Value {
    json!({"smile": {"id": format!("smile-{name}"), "name": name, "animated": false,
        "small_url": url, "medium_url": url, "large_url": url}})
}

fn chat(id: i64, author: &DemoUser, avatar: Option<&str>, parts: Vec<Value>) -> Value {
    let mut payload = chat_message_send(id, 1_764_600_000, author, parts);
    if let Some(avatar) = avatar {
        payload["data"]["chat_message"]["author"]["avatar_url"] = json!(avatar);
    }
    payload
}

/// A small HTTP server for the pictures VK would host: a smile and avatars.
async fn start_image_server() -> String {
    use axum::http::header;
    const SMILE: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><circle cx="16" cy="16" r="15" fill="#f8b301" stroke="#a36c00" stroke-width="2"/><circle cx="11" cy="12" r="2.5" fill="#402800"/><circle cx="21" cy="12" r="2.5" fill="#402800"/><path d="M8 18q8 9 16 0" fill="none" stroke="#402800" stroke-width="2.5" stroke-linecap="round"/></svg>"##;
    async fn avatar(
        axum::extract::Path(hue): axum::extract::Path<u16>,
    ) -> impl axum::response::IntoResponse {
        let svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" fill="hsl({hue},70%,55%)"/><circle cx="16" cy="12" r="6" fill="#fff"/><path d="M5 30q11-14 22 0" fill="#fff"/></svg>"##
        );
        ([(header::CONTENT_TYPE, "image/svg+xml")], svg)
    }
    let app = axum::Router::new()
        .route(
            "/smile.svg",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], SMILE) }),
        )
        .route("/avatar/{hue}", axum::routing::get(avatar));
    let listener = bounded(
        "binding the image server",
        STEP,
        tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .expect("bind the image server");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------
// A raw SSE reader, to check the wire shape and Last-Event-ID
// ---------------------------------------------------------------------------

struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn open(url: &str, last_event_id: Option<&str>) -> SseReader {
        let mut request = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = bounded("GET /events", STEP, request.send())
            .await
            .expect("GET /events");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's fields (`event`, `id`, `data`); comments skipped.
    async fn next(&mut self) -> HashMap<String, String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let fields: HashMap<String, String> = block
                    .lines()
                    .filter(|line| !line.starts_with(':') && !line.is_empty())
                    .filter_map(|line| line.split_once(':'))
                    .map(|(key, value)| (key.to_owned(), value.trim_start().to_owned()))
                    .collect();
                if !fields.is_empty() {
                    return fields;
                }
                continue;
            }
            let chunk = bounded("the next SSE bytes", STEP, self.response.chunk())
                .await
                .expect("reading /events")
                .expect("/events ended");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

struct Setup {
    emulator: Emulator,
    names: ChannelNames,
    page: String,
    images: String,
    _server: OverlayProcess,
}

async fn setup() -> Setup {
    let emulator = bounded(
        "the emulator",
        STEP,
        Emulator::start(EmulatorConfig::default()),
    )
    .await
    .expect("start the emulator");
    emulator.add_user(TOKEN, 42, "streamer");
    let names = emulator.add_channel("streamer", 7);
    let images = start_image_server().await;
    // As a user runs it: `vklive overlay --api-url URL --ws-url URL --channel-url SLUG --port 0`.
    let server = start_overlay(&emulator, &[]).await;
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "{}",
        server.url
    );
    let subscribed = emulator
        .wait_for(
            |e| {
                [&names.chat, &names.info, &names.private_channel_points]
                    .iter()
                    .all(|channel| e.subscriber_count(channel) == 1)
            },
            STEP,
        )
        .await;
    assert!(
        subscribed,
        "the overlay did not subscribe the channel's chat, info and points"
    );
    // The overlay follows its channel without the private chats
    // (`ClientBuilder::channel_url_without`): never subscribed at all.
    let asked_for_private_chat = emulator.received_commands().iter().any(|received| {
        received
            .command
            .subscribe
            .as_ref()
            .is_some_and(|subscribe| subscribe.channel == names.private_chat)
    });
    assert!(
        !asked_for_private_chat,
        "the overlay must not follow the private chat"
    );
    Setup {
        page: server.url.clone(),
        emulator,
        names,
        images,
        _server: server,
    }
}

/// A running `vklive overlay` (killed when dropped) and the URL it printed.
struct OverlayProcess {
    _child: tokio::process::Child,
    url: String,
}

/// Starts `vklive overlay` against `emulator`'s channel `streamer`, with the
/// token in VKLIVE_TOKEN and `extra` arguments; waits for its URL line.
async fn start_overlay(emulator: &Emulator, extra: &[&str]) -> OverlayProcess {
    use tokio::io::AsyncBufReadExt;
    let config = Path::new(env!("CARGO_TARGET_TMPDIR")).join("overlay-no-login");
    let mut child = tokio::process::Command::new(VKLIVE)
        .args([
            "overlay",
            "--api-url",
            &emulator.api_url(),
            "--ws-url",
            &emulator.ws_url(),
        ])
        .args(["--channel-url", "streamer", "--port", "0"])
        .args(extra)
        .env("VKLIVE_TOKEN", TOKEN)
        .env("VKLIVE_CONFIG_DIR", config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start vklive overlay");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let url = bounded("the overlay's URL line", STEP, lines.next_line())
        .await
        .expect("read the overlay's stdout")
        .expect("vklive overlay printed no URL");
    OverlayProcess { _child: child, url }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: headless Chromium, about 20 s; .ci/run installs chromium and chromedriver and runs it with --ignored"]
async fn overlay_in_headless_chromium() {
    if !browser_available("overlay_in_headless_chromium") {
        return;
    }
    let started = Instant::now();
    let Setup {
        emulator,
        names,
        page,
        images,
        _server,
    } = setup().await;

    headers_forbid_inline_scripts(&page).await;
    sse_wire_shape_and_last_event_id(&emulator, &names, &page).await;

    let driver = start_chromedriver().await;
    let browser = open_browser(&driver).await;
    let url = format!("{page}?alert_ms={ALERT_MS}&chat_max=12");
    bounded("opening the page", STEP, browser.goto(&url))
        .await
        .expect("open the overlay");
    poll(
        &browser,
        "the page's event stream",
        STEP,
        "return document.body.dataset.state;",
        vec![],
        |state| (state == "live").then_some(()),
    )
    .await;

    each_event_renders(&browser, &emulator, &names, &images).await;
    hostile_input_shows_as_text(&browser, &emulator, &names).await;
    reload_resumes_without_loss_or_repeat(&browser, &emulator, &names).await;
    a_follow_flood_is_one_alert(&browser, &emulator, &names).await;
    screenshot(&browser, &emulator, &names, &images, &page).await;

    bounded("closing the browser", STEP, browser.close())
        .await
        .expect("close the browser");
    drop(driver);
    emulator.shutdown();
    eprintln!("overlay browser test: {:?} in all", started.elapsed());
}

async fn headers_forbid_inline_scripts(page: &str) {
    let http = reqwest::Client::new();
    for path in ["", "overlay.js", "overlay.css"] {
        let response = bounded(
            "GET the page",
            STEP,
            http.get(format!("{page}{path}")).send(),
        )
        .await
        .expect("GET the page");
        assert_eq!(response.status(), 200, "/{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(csp, CONTENT_SECURITY_POLICY, "/{path}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    let csp = CONTENT_SECURITY_POLICY;
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "img-src 'self' http: https:",
    ] {
        assert!(csp.contains(rule), "{csp} lacks {rule}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
}

/// The documented SSE shape, and resuming with `Last-Event-ID`.
async fn sse_wire_shape_and_last_event_id(emulator: &Emulator, names: &ChannelNames, page: &str) {
    let events = format!("{page}events");
    let mut reader = SseReader::open(&events, None).await;
    let hello = reader.next().await;
    assert_eq!(hello["event"], "hello", "{hello:?}");
    assert_eq!(hello["retry"], "1000");
    let hello_data: Value = serde_json::from_str(&hello["data"]).unwrap();
    assert_eq!(hello_data, json!({"replay": DEFAULT_REPLAY}));

    let author = user(501, "Алёна", 2);
    emulator.publish(
        &names.chat,
        chat(
            9001,
            &author,
            Some("https://images.example.invalid/a/501.png"),
            vec![
                text_part("привет "),
                mention_part(42, "streamer"),
                text_part("\n"),
            ],
        ),
    );
    let message = reader.next().await;
    assert!(
        !message.contains_key("event"),
        "a plain message: {message:?}"
    );
    let data: Value = serde_json::from_str(&message["data"]).unwrap();
    assert_eq!(
        data,
        json!({"kind": "chat", "id": 9001,
               "user": {"nick": "Алёна", "color": PALETTE[2],
                        "avatar": "https://images.example.invalid/a/501.png"},
               "parts": [{"text": "привет "}, {"mention": "streamer"}]}),
    );
    let chat_id = message["id"].clone();
    let (boot, seq) = chat_id.rsplit_once('-').expect("<boot>-<seq>");
    assert_eq!(
        format!("{boot}-{}", seq.parse::<u64>().unwrap() - 1),
        hello["id"]
    );
    drop(reader);

    // Missed while away: a follow and a delete. Resumed from the chat message.
    emulator.publish(&names.info, follow_create(&user(502, "Mr_Pickles", 4)));
    emulator.publish(&names.chat, chat_message_delete(9001));
    let mut reader = SseReader::open(&events, Some(&chat_id)).await;
    let hello = reader.next().await;
    assert_eq!(hello["event"], "hello");
    assert_eq!(
        hello["id"], chat_id,
        "the stream resumes after the given id"
    );
    let follow = reader.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&follow["data"]).unwrap(),
        json!({"kind": "follow", "user": {"nick": "Mr_Pickles", "color": PALETTE[4]}})
    );
    let delete = reader.next().await;
    assert_eq!(
        serde_json::from_str::<Value>(&delete["data"]).unwrap(),
        json!({"kind": "delete", "id": 9001})
    );
    assert_eq!(
        delete["id"],
        format!("{boot}-{}", seq.parse::<u64>().unwrap() + 2)
    );
}

/// Waits until no alert is on screen, so the next one shows at once.
async fn wait_no_alert(browser: &Browser) {
    poll(
        browser,
        "the alert box to empty",
        Duration::from_millis(ALERT_MS) + STEP,
        CURRENT_ALERT,
        vec![],
        |alert| alert.is_null().then_some(()),
    )
    .await;
}

/// Publishes `payload` and waits (≤ 2 s) for an alert of `class` by `nick`
/// whose text contains every one of `texts`.
async fn expect_alert(
    browser: &Browser,
    emulator: &Emulator,
    channel: &str,
    payload: Value,
    class: &str,
    nick: &str,
    texts: &[&str],
) {
    wait_no_alert(browser).await;
    let fired = Instant::now();
    emulator.publish(channel, payload);
    let what = format!("the {class} alert for {nick}");
    let alert = poll(browser, &what, RENDER, CURRENT_ALERT, vec![], |alert| {
        (alert["nick"] == nick).then(|| alert.clone())
    })
    .await;
    eprintln!("{what}: on the page after {:?}", fired.elapsed());
    assert_eq!(alert["count"], 1, "one alert at a time: {alert}");
    assert!(alert["class"].as_str().unwrap().contains(class), "{alert}");
    for text in texts {
        assert!(
            alert["text"].as_str().unwrap().contains(text),
            "{text:?} in {alert}"
        );
    }
}

async fn each_event_renders(
    browser: &Browser,
    emulator: &Emulator,
    names: &ChannelNames,
    images: &str,
) {
    let follower = user(601, "Ёжик_в_тумане", 5);
    expect_alert(
        browser,
        emulator,
        &names.info,
        follow_create(&follower),
        "alert-follow",
        "Ёжик_в_тумане",
        &["New follower"],
    )
    .await;
    let raider = user(602, "NightOwl", 9);
    expect_alert(
        browser,
        emulator,
        &names.info,
        raid_income(&raider, 42),
        "alert-raid",
        "NightOwl",
        &["Raid with 42 viewers"],
    )
    .await;
    let subscriber = user(603, "Лиса_Алиса", 11);
    expect_alert(
        browser,
        emulator,
        &names.info,
        subscription_create(&subscriber, "Фанат", 99),
        "alert-subscription",
        "Лиса_Алиса",
        &["New subscriber", "Фанат"],
    )
    .await;
    let viewer = user(604, "tea_enjoyer", 7);
    expect_alert(
        browser,
        emulator,
        &names.private_channel_points,
        redemption(7001, &viewer, "Hydrate!", 500, "drink some water 💧"),
        "alert-redemption",
        "tea_enjoyer",
        &["Hydrate!", "500 pts", "drink some water 💧"],
    )
    .await;

    // A chat message: nick colour from the palette, a mention, a smile as a picture.
    let smile_url = format!("{images}/smile.svg");
    let author = user(605, "Вася_Пупкин", 3);
    let fired = Instant::now();
    emulator.publish(
        &names.chat,
        chat(
            9100,
            &author,
            Some(&format!("{images}/avatar/200")),
            vec![
                mention_part(42, "streamer"),
                text_part(" спасибо за стрим "),
                smile("Kappa", &smile_url),
            ],
        ),
    );
    let line = poll(
        browser,
        "chat message 9100",
        RENDER,
        CHAT_LINE,
        vec![json!(9100)],
        |line| (!line.is_null()).then(|| line.clone()),
    )
    .await;
    eprintln!("chat message: on the page after {:?}", fired.elapsed());
    assert_eq!(line["nick"], "Вася_Пупкин");
    assert_eq!(
        line["color"],
        rgb(PALETTE[3]),
        "nick colour from the VK palette"
    );
    assert_eq!(line["mentions"], json!(["@streamer"]));
    assert_eq!(line["smiles"], json!([smile_url]));
    assert_eq!(line["text"], "@streamer спасибо за стрим ");
    poll(
        browser,
        "the smile picture",
        STEP,
        CHAT_LINE,
        vec![json!(9100)],
        |line| (line["smilesLoaded"] == true).then_some(()),
    )
    .await;

    // Deleted messages go away.
    let fired = Instant::now();
    emulator.publish(&names.chat, chat_message_delete(9100));
    poll(
        browser,
        "message 9100 removed",
        RENDER,
        CHAT_LINE,
        vec![json!(9100)],
        |line| line.is_null().then_some(()),
    )
    .await;
    eprintln!("chat delete: off the page after {:?}", fired.elapsed());
}

async fn hostile_input_shows_as_text(browser: &Browser, emulator: &Emulator, names: &ChannelNames) {
    let nick = r#"<img src=x onerror="window.__pwned=1">"#;
    let text =
        r#"<script>window.__pwned=2</script><b>bold</b> <img src=x onerror=window.__pwned=3>"#;
    let attacker = user(666, nick, 3);
    emulator.publish(
        &names.chat,
        chat(
            9200,
            &attacker,
            Some("data:image/svg+xml,<svg onload='window.__pwned=4'/>"),
            vec![
                text_part(text),
                smile("evil", "javascript:window.__pwned=5"),
                smile("local", "/overlay.js"),
                json!({"link": {"content": "<i>x</i>", "url": "javascript:window.__pwned=6"}}),
            ],
        ),
    );
    let line = poll(
        browser,
        "the hostile message",
        RENDER,
        CHAT_LINE,
        vec![json!(9200)],
        |line| (!line.is_null()).then(|| line.clone()),
    )
    .await;
    assert_eq!(line["nick"], nick, "the nick shows literally");
    assert_eq!(line["text"], format!("{text}:evil::local:<i>x</i>"));
    assert_eq!(
        line["images"],
        json!([]),
        "no picture from a non-http(s) URL: {line}"
    );
    assert_eq!(line["smileTexts"], json!([":evil:", ":local:"]));
    for tag in line["elements"].as_array().unwrap() {
        assert!(
            ["span"].contains(&tag.as_str().unwrap()),
            "only the overlay's own elements: {line}"
        );
    }

    expect_alert(
        browser,
        emulator,
        &names.info,
        follow_create(&attacker),
        "alert-follow",
        nick,
        &[],
    )
    .await;
    let redeemer = user(667, "</p><script>window.__pwned=7</script>", 1);
    let reward = "<img src=x onerror=window.__pwned=8>";
    let message = "<svg onload=window.__pwned=9>";
    wait_no_alert(browser).await;
    emulator.publish(
        &names.private_channel_points,
        redemption(7002, &redeemer, reward, 1, message),
    );
    let alert = poll(
        browser,
        "the hostile redemption",
        RENDER,
        CURRENT_ALERT,
        vec![],
        |alert| (alert["nick"] == redeemer.nick.as_str()).then(|| alert.clone()),
    )
    .await;
    assert!(alert["text"].as_str().unwrap().contains(reward), "{alert}");
    assert!(alert["text"].as_str().unwrap().contains(message), "{alert}");

    let page = js(
        browser,
        r#"return { pwned: window.__pwned === undefined ? null : window.__pwned,
                   scripts: document.scripts.length,
                   strayImages: document.querySelectorAll('img[src="x"], img:not([src^="http"]), svg, b, i, script:not([src])').length };"#,
        vec![],
    )
    .await;
    assert_eq!(
        page,
        json!({"pwned": null, "scripts": 1, "strayImages": 0}),
        "hostile input ran or made elements"
    );
}

async fn reload_resumes_without_loss_or_repeat(
    browser: &Browser,
    emulator: &Emulator,
    names: &ChannelNames,
) {
    wait_no_alert(browser).await;
    let nicks = ["reload_A", "reload_B", "reload_C", "reload_D", "reload_E"];
    let users: Vec<DemoUser> = nicks
        .iter()
        .enumerate()
        .map(|(index, nick)| user(700 + index as u64, nick, index as u8))
        .collect();
    let mut seen: Vec<String> = Vec::new();
    fn record(value: &Value, seen: &mut Vec<String>) {
        assert!(
            value["count"].as_u64().unwrap() <= 1,
            "two alerts at once: {value}"
        );
        if let Some(fresh) = value["fresh"].as_str() {
            seen.push(fresh.to_owned());
        }
    }

    // A, B and C at once: A shows, B and C wait in the page's queue.
    emulator.publish(&names.info, follow_create(&users[0]));
    emulator.publish(&names.info, raid_income(&users[1], 7));
    emulator.publish(&names.info, subscription_create(&users[2], "Фанат", 99));
    let deadline = Instant::now() + RENDER;
    while seen.is_empty() {
        let value = js(browser, NEW_ALERT, vec![]).await;
        record(&value, &mut seen);
        assert!(
            Instant::now() < deadline,
            "alert A not shown within {RENDER:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // D arrives while A is on screen; the page reloads; E arrives after.
    emulator.publish(
        &names.private_channel_points,
        redemption(7100, &users[3], "Dance", 50, ""),
    );
    bounded("reloading the page", STEP, browser.refresh())
        .await
        .expect("reload");
    emulator.publish(&names.info, follow_create(&users[4]));

    // Watch until all five were shown, then one more alert's time for repeats.
    let all_by = Instant::now() + Duration::from_millis(ALERT_MS * 5) + STEP;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let value = js(browser, NEW_ALERT, vec![]).await;
        record(&value, &mut seen);
        if seen.len() >= nicks.len() && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_millis(ALERT_MS + 500));
        }
        if quiet_until.is_some_and(|until| Instant::now() >= until) {
            break;
        }
        assert!(
            Instant::now() < all_by,
            "not every alert was shown after the reload: saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown: Vec<&str> = seen
        .iter()
        .map(|entry| entry.split_once('|').unwrap().1)
        .collect();
    assert_eq!(
        shown, nicks,
        "each alert once, in order, across the reload: {seen:?}"
    );
    let state = js(browser, "return document.body.dataset.state;", vec![]).await;
    assert_eq!(state, "live");
}

/// Issue 24.12: a follow-bot flood does not queue an alert per follow: the
/// follows waiting become one "N new followers" alert, and the page's
/// queue stays short.
async fn a_follow_flood_is_one_alert(browser: &Browser, emulator: &Emulator, names: &ChannelNames) {
    wait_no_alert(browser).await;
    let first = user(800, "flood_0", 1);
    emulator.publish(&names.info, follow_create(&first));
    poll(
        browser,
        "the first follow",
        RENDER,
        CURRENT_ALERT,
        vec![],
        |alert| (alert["nick"] == "flood_0").then_some(()),
    )
    .await;
    for id in 1..=200u64 {
        emulator.publish(
            &names.info,
            follow_create(&user(800 + id, &format!("flood_{id}"), 1)),
        );
    }
    let alert = poll(
        browser,
        "one alert for the 200 follows that waited",
        Duration::from_millis(ALERT_MS) + STEP,
        CURRENT_ALERT,
        vec![],
        |alert| {
            alert["text"]
                .as_str()
                .is_some_and(|text| text.contains("200 new followers"))
                .then(|| alert.clone())
        },
    )
    .await;
    assert_eq!(alert["count"], 1, "{alert}");
    assert!(
        alert["text"].as_str().unwrap().contains("flood_1"),
        "{alert}"
    );
    assert!(
        alert["text"].as_str().unwrap().contains("and 197 more"),
        "{alert}"
    );
    let queued = js(browser, "return document.body.dataset.queued;", vec![]).await;
    assert_eq!(queued, "0", "nothing else waits");
}

async fn screenshot(
    browser: &Browser,
    emulator: &Emulator,
    names: &ChannelNames,
    images: &str,
    page: &str,
) {
    // A fresh page on a backdrop, so the picture reads without OBS's video;
    // the alert stays long enough to wait for every picture.
    js(browser, "sessionStorage.clear(); return null;", vec![]).await;
    let url = format!("{page}?alert_ms=20000&chat_max=12");
    bounded("opening the page", STEP, browser.goto(&url))
        .await
        .expect("open the overlay");
    poll(
        browser,
        "the page's event stream",
        STEP,
        "return document.body.dataset.state;",
        vec![],
        |state| (state == "live").then_some(()),
    )
    .await;
    js(
        browser,
        "document.documentElement.style.background = \
         'linear-gradient(135deg, #1b2838 0%, #2a475e 55%, #4b2e5e 100%)'; return null;",
        vec![],
    )
    .await;
    let smile_url = format!("{images}/smile.svg");
    let lines: [(u64, &str, u8, Vec<Value>); 6] = [
        (801, "Алёна", 6, vec![text_part("привет всем 👋")]),
        (
            802,
            "gamer2007",
            2,
            vec![
                text_part("GG "),
                smile("Kappa", &smile_url),
                smile("Kappa", &smile_url),
            ],
        ),
        (
            803,
            "Дед_Максим",
            8,
            vec![
                mention_part(42, "streamer"),
                text_part(", когда следующий стрим?"),
            ],
        ),
        (
            804,
            r#"<img src=x onerror="alert(1)">"#,
            5,
            vec![text_part("<b>not bold</b> — shown as text")],
        ),
        (
            805,
            "NightOwl",
            9,
            vec![text_part("музыка огонь 🎶 "), smile("Kappa", &smile_url)],
        ),
        (
            806,
            "tea_enjoyer",
            7,
            vec![
                text_part("!sr "),
                json!({"link": {"content": "https://youtu.be/dQw4w9WgXcQ", "url": "https://youtu.be/dQw4w9WgXcQ"}}),
            ],
        ),
    ];
    for (index, (id, nick, color, parts)) in lines.into_iter().enumerate() {
        let avatar = format!("{images}/avatar/{}", index * 57);
        emulator.publish(
            &names.chat,
            chat(
                9300 + index as i64,
                &user(id, nick, color),
                Some(&avatar),
                parts,
            ),
        );
    }
    let viewer = user(810, "Вася_Пупкин", 3);
    emulator.publish(
        &names.private_channel_points,
        redemption(7200, &viewer, "Hydrate!", 500, "drink some water 💧"),
    );
    poll(
        browser,
        "the chat and the alert, pictures loaded",
        STEP,
        r#"const lines = document.querySelectorAll('#chat li.msg');
           const images = [...document.images];
           const alert = document.querySelector('#alerts .alert');
           return lines.length === 6 && images.every((img) => img.complete && img.naturalWidth > 0)
               && alert !== null && alert.dataset.phase === 'shown'
               && document.getAnimations().every((a) => a.playState === 'finished');"#,
        vec![],
        |ready| (ready == true).then_some(()),
    )
    .await;
    let png = bounded("the screenshot", STEP, browser.screenshot())
        .await
        .expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("overlay.png");
    std::fs::write(&target, &png).expect("write the screenshot");
    eprintln!("screenshot: {}", target.display());
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/overlay.png");
        std::fs::write(&docs, &png).expect("write docs/overlay.png");
        eprintln!("screenshot: {}", docs.display());
    }
}

/// The replay buffer keeps the last `--replay` events: a page that comes
/// back after more than that gets a `gap` with the count it missed, then
/// what is left; an id from another run of the server gets the whole buffer.
#[tokio::test]
async fn replay_is_bounded_and_reports_the_gap() {
    let emulator = bounded(
        "the emulator",
        STEP,
        Emulator::start(EmulatorConfig::default()),
    )
    .await
    .expect("start the emulator");
    emulator.add_user(TOKEN, 42, "streamer");
    let names = emulator.add_channel("streamer", 7);
    let server = start_overlay(&emulator, &["--replay", "3"]).await;
    assert!(
        emulator
            .wait_for(|e| e.subscriber_count(&names.chat) == 1, STEP)
            .await
    );
    let events = format!("{}events", server.url);
    let mut live = SseReader::open(&events, None).await;
    let hello = live.next().await;
    assert_eq!(hello["data"], r#"{"replay":3}"#);
    let start = hello["id"].clone();
    let author = user(900, "viewer", 1);
    for id in 1..=5 {
        emulator.publish(&names.chat, chat(id, &author, None, vec![text_part("hi")]));
    }
    // Wait until the server has all five: the live reader sees the fifth
    // (after a gap of its own if it fell more than 3 behind).
    let (boot, _) = start.rsplit_once('-').unwrap();
    let fifth = format!("{boot}-5");
    while live.next().await.get("id") != Some(&fifth) {}

    let mut back = SseReader::open(&events, Some(&start)).await;
    assert_eq!(back.next().await["id"], start);
    let gap = back.next().await;
    assert_eq!(
        (gap["event"].as_str(), gap["data"].as_str()),
        ("gap", r#"{"missed":2}"#)
    );
    for id in 3..=5 {
        let data: Value = serde_json::from_str(&back.next().await["data"]).unwrap();
        assert_eq!(data["id"], id);
    }

    let mut stranger = SseReader::open(&events, Some("0-1")).await;
    assert_eq!(stranger.next().await["event"], "hello");
    let gap = stranger.next().await;
    assert_eq!(gap["data"], r#"{"missed":2}"#);
    let first: Value = serde_json::from_str(&stranger.next().await["data"]).unwrap();
    assert_eq!(first["id"], 3);
    emulator.shutdown();
}
