//! StreamResults: a task per stream pages results out of the queue into a
//! small bounded channel, so a slow reader holds back reading from the
//! queue instead of piling results up in memory. The stream ends cleanly
//! only when the job is finished; anything else (a queue error, shutdown)
//! ends it with a status, and the client resumes from its last cursor.

use std::sync::Arc;
use std::time::Duration;

use dfscan_proto::v1::{StreamResultsRequest, StreamResultsResponse};
use dfscan_queue::JobQueue;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::jobs::{job_id, owned_job};
use super::ScoringService;
use crate::auth::Tenant;
use crate::error::status;

/// Longest a queue read waits for new results before the loop looks again
/// (bounds how long a dropped read is outstanding in the backend).
const READ_WAIT: Duration = Duration::from_secs(1);
/// Pages buffered per stream ahead of the client.
const CHANNEL_PAGES: usize = 2;

type Page = Result<StreamResultsResponse, Status>;

pub(super) async fn stream_results(
    svc: &ScoringService,
    tenant: &Tenant,
    request: StreamResultsRequest,
) -> Result<ReceiverStream<Page>, Status> {
    let id = job_id(&request.job_id)?.to_string();
    // An unknown job is an error of the call itself, before any streaming.
    let job = owned_job(svc.queue.as_ref(), tenant, &id).await?;
    // Every item gets one result, so cursors never pass the item count
    // (nor the results recorded, should a worker have sent extra ones).
    let last = job.total.max(job.completed + job.failed);
    if request.after_cursor > last {
        return Err(Status::out_of_range(format!(
            "after_cursor {} is past the job's last cursor, {last}",
            request.after_cursor
        )));
    }
    let (tx, rx) = mpsc::channel(CHANNEL_PAGES);
    tokio::spawn(pump(
        Arc::clone(&svc.queue),
        id,
        request.after_cursor,
        svc.settings.result_batch,
        tx,
        svc.shutdown.clone(),
    ));
    Ok(ReceiverStream::new(rx))
}

/// Sends the job's results after cursor `after` until the job is finished,
/// the client goes away or the server shuts down.
async fn pump(
    queue: Arc<dyn JobQueue>,
    job_id: String,
    mut after: u64,
    batch: usize,
    tx: mpsc::Sender<Page>,
    shutdown: CancellationToken,
) {
    loop {
        let read = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = tx.closed() => return,
            read = queue.read_results(&job_id, after, batch, READ_WAIT) => read,
        };
        let page = match read {
            Ok(page) => page,
            Err(error) => {
                // Err only when the client has gone: nobody to tell.
                let _ = tx.send(Err(status(error))).await;
                return;
            }
        };
        if let Some(last) = page.results.last() {
            after = last.cursor;
            let message = StreamResultsResponse {
                results: page.results,
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                sent = tx.send(Ok(message)) => {
                    if sent.is_err() {
                        return;
                    }
                }
            }
        }
        if page.finished {
            return;
        }
    }
    // Shutdown: the stream must not end cleanly, or the client would take
    // it for the end of the job.
    let _ = tx
        .send(Err(Status::unavailable(format!(
            "the coordinator is shutting down: resume after cursor {after}"
        ))))
        .await;
}
