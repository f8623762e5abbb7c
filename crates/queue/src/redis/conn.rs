//! Connections to Redis and what to do when it goes away.
//!
//! One `ConnectionManager` (a multiplexed connection that reconnects by
//! itself) carries every short command. Blocking reads (`XREADGROUP
//! BLOCK`, `XREAD BLOCK`) would stall everything queued behind them on
//! that connection, so they run on connections of their own, kept in a
//! small pool of idle ones.
//!
//! Commands are retried for a couple of seconds when Redis is unreachable,
//! restarting or has forgotten the scripts, which lets a process ride out
//! a Redis restart. Every command and script sent through [`Conn::query`]
//! is therefore written to be safe to run twice.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError};
use redis::{ClientTlsConfig, RedisResult, ServerErrorKind, TlsCertificates};

use dfscan_core::Backoff;

use super::scripts::SCRIPTS;
use crate::{QueueError, QueueSettings, Result};

/// Retries of one call; with pauses from 50 ms doubling to at most 1 s
/// (jittered, see [`Backoff`]), about 1.3–2.6 s in all, which bounds how
/// long a call waits for Redis to come back.
const ATTEMPTS: u32 = 6;
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// Idle blocking connections kept for reuse.
const MAX_IDLE_BLOCKING: usize = 16;
/// Beyond the BLOCK time itself, how long a blocking read may take before
/// its connection is presumed dead.
const BLOCKING_GRACE: Duration = Duration::from_secs(5);

pub(super) struct Conn {
    client: Client,
    manager: ConnectionManager,
    idle_blocking: Mutex<Vec<MultiplexedConnection>>,
}

/// The client for `url`: for `rediss://` with a configured CA or client
/// certificate, with those (the system's roots otherwise).
fn client(url: &str, settings: &QueueSettings) -> Result<Client> {
    let custom = settings.tls_ca_file.is_some() || settings.tls_cert_file.is_some();
    if !url.starts_with("rediss://") || !custom {
        return Client::open(url).map_err(|e| unavailable("redis url", e));
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| QueueError::Unavailable(format!("redis TLS: {}: {e}", path.display())))
    };
    let client_tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        (None, None) => None,
        _ => {
            return Err(QueueError::Unavailable(
                "queue.tls_cert_file and queue.tls_key_file go together".into(),
            ))
        }
    };
    let root_cert = settings.tls_ca_file.as_deref().map(read).transpose()?;
    let certificates = TlsCertificates {
        client_tls,
        root_cert,
    };
    Client::build_with_tls(url, certificates).map_err(|e| unavailable("redis url", e))
}

impl Conn {
    pub async fn connect(url: &str, settings: &QueueSettings) -> Result<Self> {
        let client = client(url, settings)?;
        // Few reconnection attempts of its own: the retry loop below paces
        // them and gives up with an error the caller can act on.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let manager = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(|e| unavailable("connect", e))?;
        Ok(Self {
            client,
            manager,
            idle_blocking: Mutex::new(Vec::new()),
        })
    }

    /// Runs a command on the shared connection, with retries.
    pub async fn query<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T> {
        self.retry(what, |mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// Sends a pipeline on the shared connection (one round trip), with
    /// retries of the whole pipeline.
    pub async fn pipe<T: FromRedisValue>(&self, what: &str, pipe: &Pipeline) -> Result<T> {
        self.retry(what, |mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut backoff = Backoff::new(FIRST_PAUSE, MAX_PAUSE);
        loop {
            let error = match op(self.manager.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let no_script = error.kind() == ErrorKind::Server(ServerErrorKind::NoScript);
            if !no_script && !transient(&error) {
                return Err(map_error(what, error));
            }
            if backoff.failures() == ATTEMPTS {
                return Err(map_error(what, error));
            }
            let pause = backoff.next_delay();
            if no_script {
                // A restarted or flushed Redis: load them all, go again now.
                if let Err(e) = self.load_scripts().await {
                    tracing::debug!(error = %e, "loading the queue's scripts failed");
                }
                continue;
            }
            tracing::debug!(what, error = %error, "redis call failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    async fn load_scripts(&self) -> RedisResult<()> {
        let mut c = self.manager.clone();
        for script in SCRIPTS.all() {
            script.load_async(&mut c).await?;
        }
        Ok(())
    }

    /// Runs a blocking read (its BLOCK time `block`) on a connection of its
    /// own. A pooled connection may have died with a Redis restart, so a
    /// transient failure is retried once on a fresh connection.
    pub async fn blocking<T: FromRedisValue>(
        &self,
        what: &str,
        block: Duration,
        cmd: &Cmd,
    ) -> Result<T> {
        let mut fresh = false;
        loop {
            let pooled = if fresh { None } else { self.take_idle() };
            let reused = pooled.is_some();
            let mut c = match pooled {
                Some(c) => c,
                None => self.open_blocking().await.map_err(|e| map_error(what, e))?,
            };
            let outcome = tokio::time::timeout(block + BLOCKING_GRACE, cmd.query_async(&mut c));
            let error = match outcome.await {
                Ok(Ok(value)) => {
                    self.put_idle(c);
                    return Ok(value);
                }
                Ok(Err(e)) => e,
                Err(_) => return Err(QueueError::Unavailable(format!("{what}: timed out"))),
            };
            if reused && transient(&error) {
                fresh = true;
                continue;
            }
            return Err(map_error(what, error));
        }
    }

    async fn open_blocking(&self) -> RedisResult<MultiplexedConnection> {
        // No response timeout: the server answers a BLOCK read only when it
        // ends; `blocking` bounds the wait instead.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(None);
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn take_idle(&self) -> Option<MultiplexedConnection> {
        self.idle_blocking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    fn put_idle(&self, c: MultiplexedConnection) {
        let mut idle = self.idle_blocking.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_BLOCKING {
            idle.push(c);
        }
    }
}

/// Worth another attempt: the connection or the server is (re)starting.
fn transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
            )
        )
}

pub(super) fn map_error(what: &str, e: RedisError) -> QueueError {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => {
            QueueError::Corrupt(format!("{what}: {e}"))
        }
        _ => unavailable(what, e),
    }
}

fn unavailable(what: &str, e: RedisError) -> QueueError {
    QueueError::Unavailable(format!("{what}: {e}"))
}
