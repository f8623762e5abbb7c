//! Retry pacing for the worker's queue calls: a backend that is restarting
//! should not be hammered, and one that is back should be used again within
//! seconds. The jittered schedule itself is `dfscan_core::Backoff`, shared
//! by every retry loop.

use std::time::Duration;

use dfscan_core::Backoff;

/// About 100 ms, doubling per failure, at most 2 s.
pub(crate) fn queue_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(2))
}
