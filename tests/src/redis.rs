//! A real redis-server for the team-tier tests: its own process on a random loopback port (or a
//! Unix socket), with a password, no persistence, killed when dropped.
//!
//! `RedisServer::start()` returns `None` (after printing why) only when `redis-server` is not
//! installed and `CI` is unset; under `CI=true` a missing `redis-server` fails the test, because
//! `scripts/deps` installs it there.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password every test server requires.
pub const PASSWORD: &str = "team-test-pw-5c1e9b";

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    /// `Some(port)` on TCP, `None` on a Unix socket.
    port: Option<u16>,
    socket: Option<PathBuf>,
    dir: tempfile::TempDir,
}

/// The `redis-server` binary, or why the test cannot run.
fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "redis-server is not installed, and under CI the team-tier tests must run: \
             scripts/deps installs it (apt-get install redis-server)"
        );
        // Straight to the process's stderr: the test harness captures `println!`/`eprintln!`
        // of passing tests, and this reason must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {}: redis-server is not installed (apt-get install redis-server, or run \
             scripts/deps); the team-tier tests need a real Redis",
            std::thread::current().name().unwrap_or("a team-tier test")
        );
    }
    found
}

impl RedisServer {
    /// A server on a random loopback port with [`PASSWORD`]; `None` when it cannot run here
    /// (see the module docs).
    pub fn start() -> Option<RedisServer> {
        let bin = binary()?;
        let port = free_port();
        Some(RedisServer::launch(&bin, Some(port), None))
    }

    /// A server on a Unix socket (no TCP port) with [`PASSWORD`].
    pub fn start_unix() -> Option<RedisServer> {
        let bin = binary()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("redis.sock");
        let mut server = RedisServer::launch(&bin, None, Some(socket));
        server.dir = dir;
        Some(server)
    }

    fn launch(bin: &Path, port: Option<u16>, socket: Option<PathBuf>) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = RedisServer {
            child: None,
            port,
            socket,
            dir,
        };
        server.spawn(bin);
        server
    }

    fn spawn(&mut self, bin: &Path) {
        let mut cmd = Command::new(bin);
        cmd.arg("--requirepass")
            .arg(PASSWORD)
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--enable-debug-command", "yes", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--port")
            .arg(self.port.unwrap_or(0).to_string());
        if let Some(socket) = &self.socket {
            cmd.arg("--unixsocket")
                .arg(socket)
                .args(["--unixsocketperm", "700"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.cli(&["PING"]).is_some_and(|out| out.trim() == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not answer PING within 20 s");
    }

    /// The URL codetier is given (password inside).
    pub fn url(&self) -> String {
        match (&self.socket, self.port) {
            (Some(socket), _) => format!("unix://{}?pass={PASSWORD}", socket.display()),
            (None, Some(port)) => format!("redis://:{PASSWORD}@127.0.0.1:{port}/0"),
            (None, None) => unreachable!("a server has a port or a socket"),
        }
    }

    /// Runs `redis-cli` with `args` against this server; its stdout, or `None` if it failed.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new("redis-cli");
        match (&self.socket, self.port) {
            (Some(socket), _) => cmd.arg("-s").arg(socket),
            (_, Some(port)) => cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]),
            _ => return None,
        };
        let out = cmd
            .env("REDISCLI_AUTH", PASSWORD)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Keys matching `pattern`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// SIGKILL: the server is gone at once, mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port or socket, empty (nothing was persisted).
    pub fn restart(&mut self) {
        self.kill();
        let bin = binary().expect("redis-server was there a moment ago");
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
        self.spawn(&bin);
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}
