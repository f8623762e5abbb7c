//! The results the queue writes for items nobody scored: the error result
//! each item of a cancelled job, a dead-lettered task or an unreadable
//! payload still gets, so that every uploaded item ends with exactly one
//! result. Both backends and the worker build them here, so a reader sees
//! the same result whichever wrote it.

use dfscan_proto::v1::{Item, ItemResult};

use crate::TaskHandle;

/// The error a cancelled job's remaining items get.
pub const CANCELLED_ERROR: &str = "job cancelled";

/// The error result the queue records for an item it gives up on.
pub fn error_result(id: &str, index: u64, error: &str) -> ItemResult {
    ItemResult {
        id: id.to_string(),
        index,
        error: error.to_string(),
        outcome: dfscan_core::Outcome::Error.name().to_string(),
        ..Default::default()
    }
}

/// One error result per item of the task (e.g. "job cancelled"), named
/// by the payload's ids and carrying its metadata where it could be read.
pub fn error_results(task: &TaskHandle, items: Option<&[Item]>, error: &str) -> Vec<ItemResult> {
    let count = items.map_or(task.count, |items| items.len() as u64);
    (0..count)
        .map(|i| {
            let item = items.and_then(|items| items.get(i as usize));
            ItemResult {
                metadata: item.map(|item| item.metadata.clone()).unwrap_or_default(),
                ..error_result(
                    item.map_or("", |item| item.id.as_str()),
                    task.first_index + i,
                    error,
                )
            }
        })
        .collect()
}

/// The error results of a dead-lettered task.
pub(crate) fn dead_letter_results(
    task: &TaskHandle,
    items: Option<&[Item]>,
    deliveries: u64,
) -> Vec<ItemResult> {
    let error =
        format!("dead-lettered: the task failed on {deliveries} deliveries without completing");
    error_results(task, items, &error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Priority;

    #[test]
    fn error_results_cover_unreadable_payloads() {
        let task = TaskHandle {
            model: "m".into(),
            priority: Priority::Bulk,
            entry_id: "1".into(),
            job_id: "j".into(),
            first_index: 4,
            count: 2,
        };
        let results = error_results(&task, None, CANCELLED_ERROR);
        assert_eq!(results.len(), 2);
        assert_eq!((results[1].index, results[1].id.as_str()), (5, ""));
    }
}
