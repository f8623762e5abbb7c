//! Turns an iterator of items into the SubmitJob request stream. The
//! iterator runs on a blocking thread (it usually reads files) and feeds a
//! two-message channel, so at most a few upload messages exist at once
//! however large the job.

use std::sync::Arc;

use dfscan_proto::v1::{
    item::Source, submit_job_request, Item, ItemBatch, JobHeader, SubmitJobRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::ClientSettings;

/// Called with (items, bytes) uploaded so far after each message is queued.
pub type UploadProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

pub(crate) fn requests<I>(
    header: JobHeader,
    items: I,
    settings: &ClientSettings,
    progress: UploadProgress,
) -> ReceiverStream<SubmitJobRequest>
where
    I: Iterator<Item = Item> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(2);
    let max_items = settings.upload_batch_items.max(1);
    let max_bytes = settings.upload_batch_bytes;
    tokio::task::spawn_blocking(move || {
        // False once the call has ended (the receiver is gone).
        let send = |message| {
            tx.blocking_send(SubmitJobRequest {
                message: Some(message),
            })
            .is_ok()
        };
        if !send(submit_job_request::Message::Header(header)) {
            return;
        }
        let (mut sent_items, mut sent_bytes) = (0u64, 0u64);
        let mut batch = Vec::new();
        let mut batch_bytes = 0usize;
        let mut items = items.peekable();
        while let Some(item) = items.next() {
            batch_bytes += match &item.source {
                Some(Source::Data(d)) => d.len(),
                Some(Source::Uri(u)) => u.len(),
                None => 0,
            };
            batch.push(item);
            if batch.len() >= max_items || batch_bytes >= max_bytes || items.peek().is_none() {
                sent_items += batch.len() as u64;
                sent_bytes += batch_bytes as u64;
                let items = std::mem::take(&mut batch);
                batch_bytes = 0;
                // The call was dropped (failed or cancelled): stop reading.
                if !send(submit_job_request::Message::Items(ItemBatch { items })) {
                    return;
                }
                progress(sent_items, sent_bytes);
            }
        }
    });
    ReceiverStream::new(rx)
}
