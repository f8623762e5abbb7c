//! Job and task builders shared by the queue's test suites.

#![allow(dead_code)] // each suite uses its own subset

use dfscan_proto::v1::{item::Source, Item};
use dfscan_queue::{JobSpec, NewTask};

pub const MODEL: &str = "tiny";

pub fn spec(key: Option<&str>) -> JobSpec {
    JobSpec {
        model: MODEL.into(),
        metadata: [("team".to_string(), "trust-and-safety".to_string())].into(),
        idempotency_key: key.map(str::to_string),
        ..Default::default()
    }
}

/// Tasks of `sizes` items with consecutive indexes; item `k` has id `item-k`
/// and `k + 1` bytes of data.
pub fn tasks(sizes: &[usize]) -> Vec<NewTask> {
    let mut first = 0;
    sizes
        .iter()
        .map(|&n| {
            let items = (first..first + n as u64)
                .map(|k| Item {
                    id: format!("item-{k}"),
                    source: Some(Source::Data(vec![7u8; k as usize + 1].into())),
                    metadata: Default::default(),
                })
                .collect();
            let task = NewTask {
                first_index: first,
                items,
            };
            first += n as u64;
            task
        })
        .collect()
}
