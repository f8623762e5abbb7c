//! GetJob, ListJobs and CancelJob: checks on the request, then one queue
//! call. Job ids are checked for shape here so that a malformed id is the
//! caller's mistake (INVALID_ARGUMENT), not a lookup that finds nothing.

use dfscan_proto::v1::{self as pb, CancelJobRequest, GetJobRequest, Job, ListJobsRequest};
use dfscan_queue::{JobQueue, JobRecord, JobState, ListQuery, QueueError};
use tonic::Status;

use super::{invalid, ScoringService};
use crate::auth::Tenant;
use crate::error::{shown, status};

/// ListJobs' page size when the request names none.
const DEFAULT_LIST_LIMIT: usize = 100;
/// Most jobs one ListJobs returns, so one call cannot pull the whole queue.
const MAX_LIST_LIMIT: usize = 1000;

/// `job_id` if it has the queue's shape (32 lowercase hex digits).
pub(super) fn job_id(job_id: &str) -> Result<&str, Status> {
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if job_id.len() == 32 && job_id.bytes().all(hex) {
        Ok(job_id)
    } else {
        Err(invalid(format!(
            "job_id {} is not a job id (32 lowercase hex digits)",
            shown(job_id)
        )))
    }
}

/// The job if it exists and belongs to `tenant`; another tenant's job is
/// NOT_FOUND with the very message of a job that does not exist. Without
/// authentication (tenant "") every job is visible.
pub(super) async fn owned_job(
    queue: &dyn JobQueue,
    tenant: &Tenant,
    id: &str,
) -> Result<JobRecord, Status> {
    let job = queue.get_job(id).await.map_err(status)?;
    if !tenant.0.is_empty() && job.spec.tenant != tenant.0 {
        return Err(status(QueueError::JobNotFound(id.to_string())));
    }
    Ok(job)
}

pub(super) async fn get_job(
    svc: &ScoringService,
    tenant: &Tenant,
    request: GetJobRequest,
) -> Result<Job, Status> {
    let id = job_id(&request.job_id)?;
    Ok(owned_job(svc.queue.as_ref(), tenant, id).await?.to_proto())
}

pub(super) async fn list_jobs(
    svc: &ScoringService,
    tenant: &Tenant,
    request: ListJobsRequest,
) -> Result<pb::ListJobsResponse, Status> {
    let state = pb::JobState::try_from(request.state)
        .map_err(|_| invalid(format!("unknown job state {}", request.state)))?;
    let limit = match request.limit as usize {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    let query = ListQuery {
        limit,
        state: JobState::from_proto(state),
        tenant: Some(tenant.0.clone()).filter(|t| !t.is_empty()),
    };
    let jobs = svc.queue.list_jobs(query).await.map_err(status)?;
    Ok(pb::ListJobsResponse {
        jobs: jobs.iter().map(|job| job.to_proto()).collect(),
    })
}

pub(super) async fn cancel_job(
    svc: &ScoringService,
    tenant: &Tenant,
    request: CancelJobRequest,
) -> Result<Job, Status> {
    let id = job_id(&request.job_id)?;
    owned_job(svc.queue.as_ref(), tenant, id).await?;
    let job = svc.queue.cancel_job(id).await.map_err(status)?;
    tracing::info!(job = %job.id, "job cancelled");
    Ok(job.to_proto())
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn job_ids_must_be_32_lowercase_hex_digits() {
        assert!(job_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "../../../../../../../../etc/pass",
        ] {
            assert_eq!(
                job_id(bad).unwrap_err().code(),
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }
}
