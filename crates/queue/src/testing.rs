//! For other crates' tests that drive a queue directly, without a
//! coordinator (feature `test-support`): a sealed job whose items are not
//! images (for a no-op scorer), and a job's results once it is finished.

use std::time::{Duration, Instant};

use dfscan_proto::v1::{item::Source, Item, ItemResult};

use crate::{Created, JobQueue, JobRecord, JobSpec, NewTask};

/// A sealed job of `model` with tasks of the given sizes; item `i` is named
/// `item-i` and holds bytes no decoder reads.
pub async fn sealed_job(queue: &dyn JobQueue, model: &str, task_sizes: &[u64]) -> JobRecord {
    let spec = JobSpec {
        model: model.into(),
        ..Default::default()
    };
    let Created::New(job) = queue.create_job(spec).await.expect("creating a job") else {
        panic!("a new job was expected");
    };
    let mut first = 0;
    let mut tasks = Vec::new();
    for &n in task_sizes {
        let items = (first..first + n)
            .map(|i| Item {
                id: format!("item-{i}"),
                source: Some(Source::Data(b"not decoded by noop".to_vec().into())),
                ..Default::default()
            })
            .collect();
        tasks.push(NewTask {
            first_index: first,
            items,
        });
        first += n;
    }
    queue.enqueue(&job, tasks).await.expect("enqueueing");
    queue.seal_job(&job.id).await.expect("sealing")
}

/// Every result of a job in cursor order, once it is finished; panics if
/// it is not finished `within`.
pub async fn finished_results(
    queue: &dyn JobQueue,
    job_id: &str,
    within: Duration,
) -> Vec<ItemResult> {
    let deadline = Instant::now() + within;
    let mut all = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "job {job_id} did not finish");
        let page = queue
            .read_results(job_id, all.len() as u64, 1000, Duration::from_millis(200))
            .await
            .expect("reading results");
        all.extend(page.results);
        if page.finished {
            return all;
        }
    }
}
