//! Retry pacing shared by every retry loop in dfscan (Redis calls and
//! reconnects, worker claims and completions, client stream resumes,
//! callback deliveries). Delays grow exponentially and are jittered: when
//! Redis restarts, every worker and coordinator sees the same failure at the
//! same moment, and without jitter they would all come back in lockstep,
//! wave after wave. This is "equal jitter" (half the step fixed, half
//! random): a process never retries sooner than half its step, and the
//! processes of one wave spread over the other half.

use std::time::Duration;

/// Exponential backoff with jitter: step `n` is `first · 2ⁿ`, capped at
/// `max`, and each delay is drawn uniformly from `[step/2, step]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Pacing that starts near `first` and never waits more than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            failures: 0,
        }
    }

    /// How long to wait before the next attempt; counts one failure.
    pub fn next_delay(&mut self) -> Duration {
        let step = self
            .first
            .saturating_mul(2u32.saturating_pow(self.failures.min(31)))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        let spread = u64::try_from((step - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::random_range(0..=spread))
    }

    /// Failures counted since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn each_delay_lies_within_half_its_step_and_the_step() {
        let mut b = Backoff::new(FIRST, MAX);
        let steps_ms = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for step in steps_ms {
            let delay = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        assert_eq!(b.failures(), steps_ms.len() as u32);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }

    #[test]
    fn processes_failing_together_do_not_retry_together() {
        // 200 "processes" that failed at the same instant.
        let delays: std::collections::BTreeSet<Duration> = (0..200)
            .map(|_| Backoff::new(FIRST, MAX).next_delay())
            .collect();
        // Drawn from 50 million nanoseconds, 200 draws collide rarely; a
        // lockstep backoff would give one value.
        assert!(delays.len() > 190, "{} distinct delays", delays.len());
        let spread = *delays.last().unwrap() - *delays.first().unwrap();
        assert!(spread > FIRST / 4, "delays spread over only {spread:?}");
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(3600));
        }
    }
}
