//! Test support shared by dfscan's test suites: real `redis-server`
//! processes on free loopback ports, the binaries of other workspace
//! packages ([`workspace_binary`]), the `ffmpeg` CLI that makes the video
//! tests' inputs ([`ffmpeg`]), and the byte-level mutator of the stable
//! fuzzers ([`mutate`]).
//!
//! The queue's guarantees (Lua scripts, consumer groups, delivery counts,
//! AOF surviving `kill -9`) are Redis behaviour that no mock reproduces, so
//! the tests run the real server. Each [`RedisServer`] is a child process
//! with its own port and data directory, so suites run in parallel and
//! never touch a Redis that belongs to someone else (in particular, never
//! the system one on 6379). Only std, `tempfile`, `serde_json` (for
//! cargo's messages) and `rand` (the mutator's seeded choices), so that
//! depending on this crate costs the test builds next to nothing.

pub mod mutate;
mod workspace;

pub use workspace::workspace_binary;

/// Runs the `ffmpeg` CLI with `args` (output file included), quietly and
/// overwriting; panics with its stderr when it fails.
pub fn ffmpeg(args: &[&str]) {
    let output = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer PING after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up when another process grabs ours between
/// [`free_port`] and the server's bind.
const PORT_ATTEMPTS: usize = 5;

/// A loopback port that was free a moment ago (bind 127.0.0.1:0, read the
/// port, drop the listener).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("cannot bind a loopback port")
}

/// A `redis-server` child process on `127.0.0.1:<port>`, its data in a
/// temporary directory; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    aof: bool,
    /// More `redis-server` arguments (TLS, ACL users), kept for restarts.
    extra: Vec<String>,
    dir: TempDir,
}

impl RedisServer {
    /// A server without persistence (`--save "" --appendonly no`).
    pub fn start() -> Self {
        Self::start_inner(false, &[])
    }

    /// A server without persistence and with more arguments, e.g. a
    /// `--tls-port` beside the plain port (which readiness checks use).
    pub fn start_with_args(extra: &[&str]) -> Self {
        Self::start_inner(false, extra)
    }

    /// A server that writes every command to its append-only file before
    /// replying (`--appendonly yes --appendfsync always`), so its data
    /// survives [`kill`](Self::kill) + [`restart`](Self::restart).
    pub fn start_with_aof() -> Self {
        Self::start_inner(true, &[])
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server (panics after `kill`).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the redis-server was killed")
            .id()
    }

    /// SIGKILL (no shutdown, no final save), then reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory (after
    /// [`kill`](Self::kill)) and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = spawn(self.port, self.dir.path(), self.aof, &self.extra);
        self.child = Some(child);
        if let Err(why) = self.wait_ready() {
            self.kill();
            panic!(
                "redis-server did not come back on port {}: {why}\n{}",
                self.port,
                diagnostics(self.dir.path())
            );
        }
    }

    fn start_inner(aof: bool, extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("dfscan-redis-")
                .tempdir()
                .expect("cannot create a temporary directory for redis-server");
            let port = free_port();
            let child = spawn(port, dir.path(), aof, &extra);
            let mut server = Self {
                child: Some(child),
                port,
                aof,
                extra: extra.clone(),
                dir,
            };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(why) => {
                    let taken = why.contains("another process") || port_taken(server.dir.path());
                    last_error = format!("port {port}: {why}\n{}", diagnostics(server.dir.path()));
                    server.kill();
                    if !taken {
                        break;
                    }
                }
            }
        }
        panic!("cannot start redis-server: {last_error}");
    }

    /// Polls until the server answers `+PONG` and turns out to be our
    /// child (another process could hold the port and answer instead).
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            let child = self.child.as_mut().expect("no child to wait for");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("redis-server exited early ({status})"));
            }
            if let Some(reply) = ask(&addr, b"PING\r\n") {
                if reply.starts_with("+PONG") {
                    let pid = child.id();
                    let info = ask(&addr, b"INFO server\r\n").unwrap_or_default();
                    if info.contains(&format!("process_id:{pid}\r\n")) {
                        return Ok(());
                    }
                    return Err(format!(
                        "another process answers on port {} (not pid {pid})",
                        self.port
                    ));
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no +PONG within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DFSCAN_REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let default = Path::new("/usr/bin/redis-server");
    if default.exists() {
        default.to_path_buf()
    } else {
        PathBuf::from("redis-server")
    }
}

fn spawn(port: u16, dir: &Path, aof: bool, extra: &[String]) -> Child {
    let mut command = Command::new(redis_server_binary());
    command
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(["--maxmemory-policy", "noeviction", "--save", ""]);
    if aof {
        command.args(["--appendonly", "yes", "--appendfsync", "always"]);
    } else {
        command.args(["--appendonly", "no"]);
    }
    command.args(extra);
    let stderr = std::fs::File::create(dir.join("stderr.log"))
        .expect("cannot create redis-server's stderr file");
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (install redis-server or set DFSCAN_REDIS_SERVER): {e}",
                redis_server_binary().display()
            )
        })
}

/// Sends one inline command on a fresh connection and returns what came
/// back (None when nothing listens or nothing is answered yet).
fn ask(addr: &SocketAddr, request: &[u8]) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply_complete(&reply) {
            break;
        }
    }
    (!reply.is_empty()).then(|| String::from_utf8_lossy(&reply).into_owned())
}

/// Whether `reply` holds a whole simple reply (`+`/`-` line) or bulk string.
fn reply_complete(reply: &[u8]) -> bool {
    let Some(eol) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if reply[0] != b'$' {
        return true;
    }
    let len: i64 = std::str::from_utf8(&reply[1..eol])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    len < 0 || reply.len() >= eol + 2 + len as usize + 2
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn port_taken(dir: &Path) -> bool {
    let log = read_lossy(&dir.join("redis.log")) + &read_lossy(&dir.join("stderr.log"));
    log.contains("Address already in use")
}

fn diagnostics(dir: &Path) -> String {
    format!(
        "--- redis-server stderr ---\n{}--- {} ---\n{}",
        read_lossy(&dir.join("stderr.log")),
        dir.join("redis.log").display(),
        read_lossy(&dir.join("redis.log")),
    )
}
