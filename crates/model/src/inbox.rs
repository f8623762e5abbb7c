//! The model thread's inbox: classifier batches and face detections wait
//! here for the one thread that owns the accelerator. Two bounded queues
//! under one lock, so that the thread can wait for either: classifier
//! batches (at most [`MAX_BATCHES`] waiting, each a full batch of pixels)
//! and detections (at most [`MAX_DETECTIONS`], one image each). The
//! detections waiting when the thread turns to them run as one batch,
//! which batches the detector across callers (decode threads, tasks, jobs)
//! without any of them waiting for the others; when both kinds wait, the
//! thread alternates, so that neither starves the other.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// Classifier batches waiting: one queued behind the one running, so that
/// at most two batches of pixels exist at once.
pub const MAX_BATCHES: usize = 2;

/// Detections waiting, and the most that run as one detector batch.
pub const MAX_DETECTIONS: usize = 16;

/// What the thread takes next.
pub enum Work<B, D> {
    Batch(B),
    Detections(Vec<D>),
}

pub struct Inbox<B, D> {
    state: Mutex<State<B, D>>,
    /// Signalled when work arrives or the inbox closes.
    work: Condvar,
    /// Signalled when a place frees up or the inbox closes.
    room: Condvar,
}

struct State<B, D> {
    batches: VecDeque<B>,
    detections: VecDeque<D>,
    closed: bool,
    /// Which kind the thread took last, for alternating.
    last_was_batch: bool,
}

/// The inbox is closed: the thread has stopped or is stopping.
#[derive(Debug)]
pub struct Closed;

impl<B, D> Default for Inbox<B, D> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                batches: VecDeque::new(),
                detections: VecDeque::new(),
                closed: false,
                last_was_batch: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        }
    }
}

impl<B, D> Inbox<B, D> {
    fn lock(&self) -> MutexGuard<'_, State<B, D>> {
        // A panic while holding the lock leaves the queues consistent (every
        // change is one push or pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a classifier batch, blocking while [`MAX_BATCHES`] wait.
    pub fn send_batch(&self, batch: B) -> Result<(), Closed> {
        let mut state = self.lock();
        while !state.closed && state.batches.len() >= MAX_BATCHES {
            state = self.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            return Err(Closed);
        }
        state.batches.push_back(batch);
        self.work.notify_one();
        Ok(())
    }

    /// Queues a detection, blocking while [`MAX_DETECTIONS`] wait.
    pub fn send_detection(&self, detection: D) -> Result<(), Closed> {
        let mut state = self.lock();
        while !state.closed && state.detections.len() >= MAX_DETECTIONS {
            state = self.room.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.closed {
            return Err(Closed);
        }
        state.detections.push_back(detection);
        self.work.notify_one();
        Ok(())
    }

    /// The next work, waiting for some; `None` once the inbox is closed and
    /// empty.
    pub fn next(&self) -> Option<Work<B, D>> {
        let mut state = self.lock();
        loop {
            let batch_first = !state.last_was_batch || state.detections.is_empty();
            let work = if batch_first && !state.batches.is_empty() {
                state.batches.pop_front().map(Work::Batch)
            } else if !state.detections.is_empty() {
                Some(Work::Detections(state.detections.drain(..).collect()))
            } else {
                None
            };
            if let Some(work) = work {
                state.last_was_batch = matches!(work, Work::Batch(_));
                self.room.notify_all();
                return Some(work);
            }
            if state.closed {
                return None;
            }
            state = self.work.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Refuses new work; what waits is still handed out.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_all();
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn waiting_detections_run_together_and_kinds_alternate() {
        let inbox: Inbox<u32, u32> = Inbox::default();
        inbox.send_batch(1).unwrap();
        inbox.send_batch(2).unwrap();
        for d in 0..3 {
            inbox.send_detection(d).unwrap();
        }
        let order: Vec<String> = std::iter::from_fn(|| {
            inbox.close();
            inbox.next()
        })
        .map(|w| match w {
            Work::Batch(b) => format!("b{b}"),
            Work::Detections(d) => format!("d{d:?}"),
        })
        .collect();
        assert_eq!(order, ["b1", "d[0, 1, 2]", "b2"]);
    }

    #[test]
    fn a_full_inbox_blocks_senders_until_the_thread_takes_work() {
        let inbox: Arc<Inbox<u32, u32>> = Arc::default();
        for b in 0..MAX_BATCHES as u32 {
            inbox.send_batch(b).unwrap();
        }
        let sender = {
            let inbox = Arc::clone(&inbox);
            std::thread::spawn(move || inbox.send_batch(99))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!sender.is_finished(), "a third batch must wait for room");
        assert!(matches!(inbox.next(), Some(Work::Batch(0))));
        sender.join().unwrap().unwrap();
        inbox.close();
        assert!(inbox.send_detection(1).is_err());
        let rest: Vec<_> = std::iter::from_fn(|| inbox.next()).collect();
        assert_eq!(rest.len(), MAX_BATCHES);
    }
}
