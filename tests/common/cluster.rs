//! Running a real cluster in a test: redis-server, `dfscan-coordinator`
//! and `dfscan worker` processes, each killed when its guard drops, plus
//! direct Redis access for checking what the queue holds afterwards.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dfscan_testkit::{free_port, RedisServer};

use super::{dfscan, dfscan_coordinator, model_dir};

/// Cluster tests run one at a time: each starts several processes, and two
/// cores shared by two clusters make timeouts meaningless.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Queue settings every test cluster shares: short timeouts so that faults
/// resolve in seconds.
pub const FAST_QUEUE: &[(&str, &str)] = &[
    ("DFSCAN_QUEUE__VISIBILITY_TIMEOUT_MS", "2000"),
    ("DFSCAN_QUEUE__MAX_DELIVERIES", "3"),
    ("DFSCAN_QUEUE__WORKER_TTL_MS", "3000"),
    ("DFSCAN_WORKER__HEARTBEAT_MS", "500"),
    ("DFSCAN_WORKER__CLAIM_WAIT_MS", "200"),
];

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Self {
            name: name.to_string(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

    /// SIGSTOP, returning once every thread of the process is stopped.
    /// `kill -STOP` returns once the signal is queued; the group stop takes
    /// effect only when a thread of the process takes the signal, and until
    /// then (long, on busy cores) its other threads run on and may answer
    /// a probe or complete a task.
    pub fn stop(&self) {
        self.signal("STOP");
        let pid = self.pid();
        let stopped = || {
            let threads = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            threads.flatten().all(|thread| {
                let stat = std::fs::read_to_string(thread.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                let state = stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next());
                matches!(state, Some('T' | 't'))
            })
        };
        wait_until(
            &format!("{} to stop", self.name),
            Duration::from_secs(30),
            stopped,
        );
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Fields drop in order: the processes go before the Redis they use.
pub struct Cluster {
    pub workers: Vec<Proc>,
    pub coordinator: Option<Proc>,
    pub redis: RedisServer,
    pub port: u16,
    pub model: PathBuf,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// Redis (with AOF when `aof`) and a coordinator; no workers yet.
    pub fn start(aof: bool, env: &[(&str, &str)]) -> Self {
        let redis = if aof {
            RedisServer::start_with_aof()
        } else {
            RedisServer::start()
        };
        let env = FAST_QUEUE
            .iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut cluster = Self {
            redis,
            port: free_port(),
            coordinator: None,
            workers: Vec::new(),
            model: model_dir("tiny-a"),
            env,
        };
        cluster.start_coordinator(false);
        cluster
    }

    fn command(&self, args: &[&str]) -> Command {
        self.with_env(dfscan(), args)
    }

    fn with_env(&self, mut cmd: Command, args: &[&str]) -> Command {
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn model_name(&self) -> String {
        self.model
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// Starts the coordinator: the deployed `dfscan-coordinator` binary, or
    /// with `all_in_one` the same process as `dfscan coordinator`.
    pub fn start_coordinator(&mut self, all_in_one: bool) {
        let (listen, redis, model) = (
            format!("127.0.0.1:{}", self.port),
            self.redis.url(),
            self.model_name(),
        );
        let (base, subcommand): (_, &[&str]) = if all_in_one {
            (dfscan(), &["coordinator"])
        } else {
            (dfscan_coordinator(), &[])
        };
        let mut args = subcommand.to_vec();
        args.extend(["--listen", &listen, "--redis", &redis, "--models", &model]);
        let cmd = self.with_env(base, &args);
        self.coordinator = Some(Proc::spawn("coordinator", cmd));
        wait_for_port(self.port);
    }

    /// Starts a worker with `extra` flags and returns its index.
    pub fn start_worker(&mut self, extra: &[&str]) -> usize {
        let index = self.workers.len();
        let id = format!("w{index}");
        let redis = self.redis.url();
        let mut args = vec![
            "worker",
            "--redis",
            &redis,
            "--model",
            self.model.to_str().unwrap(),
            "--worker-id",
            &id,
            "--threads",
            "1",
            "--decode-threads",
            "1",
        ];
        if !extra.contains(&"--max-batch") {
            args.extend(["--max-batch", "8"]);
        }
        args.extend_from_slice(extra);
        let cmd = self.command(&args);
        self.workers.push(Proc::spawn(&id, cmd));
        index
    }

    /// `dfscan submit` of `dir` to this cluster, run to completion.
    pub fn submit(&self, dir: &Path, output: &Path, extra: &[&str]) -> Output {
        self.submit_command(dir, output, extra).output().unwrap()
    }

    pub fn submit_command(&self, dir: &Path, output: &Path, extra: &[&str]) -> Command {
        let url = self.url();
        let mut args = vec![
            "submit",
            "--coordinator",
            &url,
            "--output",
            output.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        self.command(&args)
    }

    /// `dfscan jobs ARGS...` against this cluster.
    pub fn jobs(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all = vec!["jobs", "--coordinator", &url];
        all.extend_from_slice(args);
        self.command(&all).output().unwrap()
    }

    /// Runs `dfscan ARGS...` with the cluster's environment; its stdout.
    pub fn command_output(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "dfscan {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn command_status(&self, args: &[&str]) -> std::process::ExitStatus {
        self.command(args).status().unwrap()
    }

    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The model's task stream key (bulk jobs).
    pub fn task_stream(&self) -> String {
        format!("dfscan:tasks:{{m:{}}}", self.model_name())
    }

    /// How many of the model's bulk tasks `worker` has claimed and not
    /// completed (its pending entries in the consumer group).
    pub fn tasks_held(&self, worker: &str) -> usize {
        let pending: Vec<redis::Value> = redis::cmd("XPENDING")
            .arg(self.task_stream())
            .arg("workers")
            .arg("-")
            .arg("+")
            .arg(1000)
            .arg(worker)
            .query(&mut self.redis())
            .unwrap();
        pending.len()
    }

    /// Asserts the queue holds nothing for the model any more: no task
    /// entries or pending deliveries in either task stream, usage back to
    /// zero.
    pub fn assert_drained(&self) {
        let online = format!("dfscan:online:{{m:{}}}", self.model_name());
        for stream in [self.task_stream(), online] {
            self.assert_stream_drained(&stream);
        }
        let usage: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(format!("dfscan:usage:{{m:{}}}", self.model_name()))
            .query(&mut self.redis())
            .unwrap();
        assert!(
            usage.values().all(|v| *v == 0),
            "queue usage not back to zero: {usage:?}"
        );
    }

    fn assert_stream_drained(&self, stream: &str) {
        let mut r = self.redis();
        let exists: bool = redis::cmd("EXISTS").arg(stream).query(&mut r).unwrap();
        if !exists {
            return; // never created: nothing was ever queued
        }
        let len: u64 = redis::cmd("XLEN").arg(stream).query(&mut r).unwrap();
        assert_eq!(len, 0, "task entries left in {stream}");
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(stream)
            .arg("workers")
            .query(&mut r)
            .unwrap();
        let count = match pending {
            redis::Value::Array(v) => match v.first() {
                Some(redis::Value::Int(n)) => *n,
                other => panic!("XPENDING summary: {other:?}"),
            },
            other => panic!("XPENDING summary: {other:?}"),
        };
        assert_eq!(count, 0, "pending entries left in {stream}");
    }
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until process `pid` itself listens on loopback `port`. A port
/// from [`free_port`] may be taken by another process before ours binds
/// it (other test processes run on the machine too); then ours fails to
/// start while the port answers, and probing it would test the wrong
/// process. The listening socket is found in /proc/net/tcp and must be
/// one of `pid`'s open files.
pub fn wait_for_listener(pid: u32, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(inode) = listening_inode(port) {
            let socket = format!("socket:[{inode}]");
            let ours = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())
                });
            assert!(ours, "port {port} is held by another process than {pid}");
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The inode of the socket listening on loopback (or any address) `port`.
fn listening_inode(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(3) == Some(&"0A");
        let address = fields.get(1)?;
        let on_port = address.ends_with(&local)
            && (address.starts_with("0100007F") || address.starts_with("00000000"));
        (listening && on_port).then(|| fields.get(9).map(|s| s.to_string()))?
    })
}

/// `GET path` on a loopback port, as a probe does: the status code and the
/// body, or the error (nothing listening, or no answer within `timeout`).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    Ok((status, body.to_string()))
}

/// Polls `GET path` until it answers `status`; its body. Panics after
/// `timeout` with the last answer.
pub fn wait_for_status(port: u16, path: &str, status: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = http_get(port, path, Duration::from_secs(10));
        match &answer {
            Ok((got, body)) if *got == status => return body.clone(),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{path} on port {port} did not answer {status}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` small distinct PNG images in a new directory under `root`, named
/// `img-00000.png`...
pub fn write_images(root: &Path, n: usize) -> PathBuf {
    let dir = root.join(format!("images-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let (w, h) = (24 + (i % 7) as u32 * 3, 20 + (i % 5) as u32 * 4);
        let image = image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * 13 + i as u32 * 31) as u8;
            image::Rgb([v, v.wrapping_mul(3), (i % 251) as u8])
        });
        image.save(dir.join(format!("img-{i:05}.png"))).unwrap();
    }
    dir
}

/// The JSON lines of a results file.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Results keyed by id, asserting each id appears once.
pub fn by_id(lines: &[serde_json::Value]) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    for line in lines {
        let id = line["id"].as_str().unwrap().to_string();
        assert!(
            out.insert(id.clone(), line.clone()).is_none(),
            "{id} appears twice"
        );
    }
    out
}
