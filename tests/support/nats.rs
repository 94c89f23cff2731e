//! A real `nats-server` for a test: JetStream on, a temporary store, a free
//! port on 127.0.0.1, killed by its pid when dropped.
//!
//! The binary comes from `NATS_SERVER_BIN`, else `nats-server` on `PATH`.
//! Without one a test prints one line and returns (skips), unless `CI` is
//! set: there a missing server fails the test (`.ci/run` installs it).
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `nats-server` binary, or `None` (after saying so) when the test must skip.
pub fn binary(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("nats-server"))
                    .find(|path| path.is_file())
            })
        });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{test}: no nats-server (set NATS_SERVER_BIN or put it on PATH); CI must run it"
            );
        }
        // Straight to stderr, past the test harness's capture: the one line shows.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped, no nats-server found (set NATS_SERVER_BIN or put it on PATH)"
        );
    }
    found
}

/// A running `nats-server`.
pub struct NatsServer {
    binary: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts one, or `None` when the test must skip (see [`binary`]).
    pub fn start(test: &str) -> Option<NatsServer> {
        NatsServer::start_with(test, &[])
    }

    /// Like [`NatsServer::start`], with more command-line options (auth, …).
    pub fn start_with(test: &str, extra: &[&str]) -> Option<NatsServer> {
        let binary = binary(test)?;
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vklive-nats-{}-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = NatsServer {
            binary,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            port: 0,
            dir,
        };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server: first on a port it picks itself (`-p -1`, read
    /// back from its ports file: a port picked here and passed on could be
    /// taken meanwhile by a parallel test), then again on that same port.
    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let port = if self.port == 0 {
            String::from("-1")
        } else {
            self.port.to_string()
        };
        let ports_dir = self.dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir).expect("ports dir");
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
            .arg(self.dir.join("store"))
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        if self.port == 0 {
            self.port = read_port(&ports_dir);
        }
        self.wait_listening();
    }

    /// Waits (bounded) until the port accepts connections.
    fn wait_listening(&self) {
        let address: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client port from the ports file nats-server writes once it listens
/// (`{"nats":["nats://127.0.0.1:PORT"],…}`), waiting for it (bounded).
fn read_port(ports_dir: &std::path::Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let port = std::fs::read_dir(ports_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "ports"))
            .find_map(|entry| {
                let text = std::fs::read_to_string(entry.path()).ok()?;
                let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
                let url = ports["nats"][0].as_str()?;
                url.rsplit(':').next()?.parse::<u16>().ok()
            });
        if let Some(port) = port {
            return port;
        }
        if Instant::now() >= deadline {
            let log = ports_dir.with_file_name("server.log");
            panic!(
                "nats-server wrote no ports file; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
