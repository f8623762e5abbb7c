//! The Redis key layout, in one place.
//!
//! Every key of one job carries the hash tag `{<job id>}` and every key of
//! one model's queue the tag `{m:<model>}`, so each Lua script touches a
//! single hash slot (a requirement of Redis Cluster, and what keeps the
//! scripts atomic wherever the keys live). Keys that are looked up by a
//! name of their own (idempotency keys, workers, the job index) have no tag.
//! The queue-wide counters ([`Keys::counters`]) have none either: the job
//! scripts update them in the same step as the job, so those scripts span
//! the job's slot and the counters' (one Redis server; see
//! docs/ARCHITECTURE.md).

use crate::types::Priority;

/// Consumer group of every task stream.
pub(super) const GROUP: &str = "workers";

pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    /// Hash: model, state, total, completed, failed, cursor, created_ms,
    /// finished_ms, metadata, idem.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{{{id}}}", self.prefix)
    }

    /// Stream of result chunks; entry `0-<n>` ends with the result of
    /// cursor n.
    pub fn results(&self, id: &str) -> String {
        format!("{}:results:{{{id}}}", self.prefix)
    }

    /// Hash: entry id of each task whose results are recorded → the token
    /// of the call that recorded them (a retry of that call is told
    /// `Recorded` again, any other completion `Duplicate`).
    pub fn done(&self, id: &str) -> String {
        format!("{}:done:{{{id}}}", self.prefix)
    }

    /// Stream of state changes (seal, cancel, abort) that wake readers
    /// blocked on the results stream.
    pub fn events(&self, id: &str) -> String {
        format!("{}:events:{{{id}}}", self.prefix)
    }

    /// The keys a finished job expires together, in the order the job
    /// scripts take them.
    pub fn job_keys(&self, id: &str) -> [String; 4] {
        [
            self.job(id),
            self.results(id),
            self.done(id),
            self.events(id),
        ]
    }

    /// Marks one `enqueue` call as applied to the job's total, so a retry
    /// after a lost reply does not count its items twice.
    pub fn job_token(&self, id: &str, token: &str) -> String {
        format!("{}:enq:{{{id}}}:{token}", self.prefix)
    }

    /// Stream of tasks of one priority with the consumer group [`GROUP`]:
    /// `tasks` for bulk jobs, `online` for online calls.
    pub fn tasks(&self, model: &str, priority: Priority) -> String {
        let stream = match priority {
            Priority::Bulk => "tasks",
            Priority::Online => "online",
        };
        format!("{}:{stream}:{{m:{model}}}", self.prefix)
    }

    /// Hash: items, bytes queued (the backpressure counters).
    pub fn usage(&self, model: &str) -> String {
        format!("{}:usage:{{m:{model}}}", self.prefix)
    }

    /// Stream of dead-lettered tasks.
    pub fn dead(&self, model: &str) -> String {
        format!("{}:dead:{{m:{model}}}", self.prefix)
    }

    /// The entry ids one `enqueue` call added, so a retry returns them
    /// instead of adding the tasks again.
    pub fn model_token(&self, model: &str, token: &str) -> String {
        format!("{}:enq:{{m:{model}}}:{token}", self.prefix)
    }

    /// Who delivers the job's callbacks (see `redis::callbacks`).
    pub fn callback_lease(&self, id: &str) -> String {
        format!("{}:cblease:{{{id}}}", self.prefix)
    }

    /// Sorted set of the ids of jobs that still owe a callback, by
    /// creation time.
    pub fn callbacks(&self) -> String {
        format!("{}:callbacks", self.prefix)
    }

    /// Sorted set of job ids by creation time.
    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Sorted set of the ids of uploading jobs by their last activity
    /// (`updated_ms`): where the sweep finds abandoned uploads.
    pub fn uploads(&self) -> String {
        format!("{}:uploads", self.prefix)
    }

    /// The queue-wide counters, in the order `counts.lua` takes them (the
    /// last keys of every script that creates, changes or deletes a job):
    /// jobs per state (hash), items queued per tenant (hash), [`uploads`],
    /// then per finished state the sorted set of such jobs by the end of
    /// their retention (they count until then).
    ///
    /// [`uploads`]: Keys::uploads
    pub fn counters(&self) -> [String; 5] {
        [
            format!("{}:job_states", self.prefix),
            format!("{}:tenant_queued", self.prefix),
            self.uploads(),
            format!("{}:retained:completed", self.prefix),
            format!("{}:retained:cancelled", self.prefix),
        ]
    }

    /// `keys` followed by the counters: the keys of a script that can
    /// change the counters.
    pub fn and_counters<const N: usize>(&self, keys: [String; N]) -> Vec<String> {
        keys.into_iter().chain(self.counters()).collect()
    }

    /// Idempotency key → job id.
    pub fn idem(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.prefix)
    }

    /// Sorted set of worker ids by last heartbeat.
    pub fn workers(&self) -> String {
        format!("{}:workers", self.prefix)
    }

    /// The worker's last `Worker` message (protobuf).
    pub fn worker(&self, id: &str) -> String {
        format!("{}:worker:{id}", self.prefix)
    }
}
