//! The protocol fuzzer, bounded: the named cases and a few thousand seeded
//! random requests against a real `dfscan-coordinator` process (with Redis
//! and a worker of the tiny test model). Every call must get a status of
//! the server's own other than INTERNAL or UNKNOWN, the coordinator must
//! stay up, and a good request must still score afterwards. The long run
//! is `cargo bench --bench protocol_fuzz -- --requests N --seed S`.

mod common;
mod fuzz;

use std::time::{Duration, Instant};

use common::cluster::{exclusive, Cluster};
use fuzz::gen::Context;
use fuzz::run;

/// Random requests after the named cases; the seed makes them the same
/// every run.
const REQUESTS: u64 = 5000;
const SEED: u64 = 13;
const CONCURRENCY: usize = 8;

#[test]
fn hostile_requests_get_statuses_and_the_coordinator_keeps_scoring() {
    let _one_cluster = exclusive();
    let mut cluster = Cluster::start(false, &[]);
    cluster.start_worker(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let channel = run::connect(&cluster.url()).await.unwrap();
        let mut ctx = Context {
            model: cluster.model_name(),
            job_id: String::new(),
            job_total: 2,
            image: fuzz::image(),
        };
        // The worker registers within a heartbeat or two.
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = loop {
            match run::good_infer(&channel, &ctx).await {
                Ok(scores) => break scores,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for the worker: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("a good request does not score: {e}"),
            }
        };
        ctx.job_id = run::good_job(&channel, &ctx, ctx.job_total).await.unwrap();

        let started = Instant::now();
        let tally = run::fuzz(&channel, &ctx, SEED, REQUESTS, CONCURRENCY).await;
        println!("{}", tally.report(SEED));
        println!("took {:.1} s", started.elapsed().as_secs_f64());
        assert_eq!(tally.failed, 0, "{}", tally.failures.join("\n"));
        assert!(tally.requests >= REQUESTS);

        let after = run::good_infer(&channel, &ctx)
            .await
            .expect("a good request scores after the fuzzing");
        assert_eq!(after.len(), before.len());
        for (a, b) in after.iter().zip(&before) {
            assert!((a - b).abs() < 1e-5, "{after:?} vs {before:?}");
        }
    });
    let coordinator = cluster.coordinator.as_mut().unwrap();
    assert!(coordinator.is_running(), "the coordinator exited");
    assert!(cluster.workers[0].is_running(), "the worker exited");
}
