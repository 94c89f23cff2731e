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
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "vklive-nats-{}-{port}-{}",
            std::process::id(),
            test.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut server = NatsServer {
            binary,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            port,
            dir,
        };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
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

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}
