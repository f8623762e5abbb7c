//! The Lua scripts, compiled in from `scripts/*.lua` and run with EVALSHA
//! (loaded on demand: after a `NOSCRIPT` reply, e.g. from a restarted
//! Redis, the connection layer loads them all and retries).

use std::sync::LazyLock;

use redis::{Cmd, Script, ToRedisArgs};

pub(super) struct Scripts {
    pub create: Script,
    pub add_total: Script,
    pub enqueue: Script,
    pub complete: Script,
    pub release: Script,
    pub transition: Script,
    pub abort: Script,
    pub reclaim: Script,
    pub idem: Script,
    pub callback: Script,
    pub job_counts: Script,
}

/// Scripts that create, change or delete a job get the counters' shared
/// `account` first.
macro_rules! with_counts {
    ($file:literal) => {
        concat!(include_str!("scripts/counts.lua"), include_str!($file))
    };
}

/// Scripts that can finish a job also get the shared `finish_if_done`.
macro_rules! with_finish {
    ($file:literal) => {
        concat!(
            include_str!("scripts/counts.lua"),
            include_str!("scripts/finish.lua"),
            include_str!($file)
        )
    };
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    create: Script::new(with_counts!("scripts/create.lua")),
    add_total: Script::new(with_counts!("scripts/add_total.lua")),
    enqueue: Script::new(include_str!("scripts/enqueue.lua")),
    complete: Script::new(with_finish!("scripts/complete.lua")),
    release: Script::new(include_str!("scripts/release.lua")),
    transition: Script::new(with_finish!("scripts/transition.lua")),
    abort: Script::new(with_counts!("scripts/abort.lua")),
    reclaim: Script::new(include_str!("scripts/reclaim.lua")),
    idem: Script::new(include_str!("scripts/idem.lua")),
    callback: Script::new(include_str!("scripts/callback.lua")),
    job_counts: Script::new(with_counts!("scripts/job_counts.lua")),
});

impl Scripts {
    pub fn all(&self) -> [&Script; 11] {
        [
            &self.create,
            &self.add_total,
            &self.enqueue,
            &self.complete,
            &self.release,
            &self.transition,
            &self.abort,
            &self.reclaim,
            &self.idem,
            &self.callback,
            &self.job_counts,
        ]
    }
}

/// `EVALSHA <script> <keys>`, ready for its arguments: a plain command, so
/// that scripts can go into pipelines (redis-rs' `ScriptInvocation`
/// cannot).
pub(super) fn evalsha<K: ToRedisArgs>(script: &Script, keys: &[K]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len());
    for key in keys {
        cmd.arg(key);
    }
    cmd
}
