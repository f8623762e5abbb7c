//! The client side of the `dfscan.v1.Scoring` API, as `dfscan submit` and
//! `dfscan jobs` use it: uploads that keep memory bounded by one message,
//! and result streams that survive coordinator restarts by resuming from
//! the last cursor received, checking that cursors arrive without gaps or
//! repeats.

mod error;
mod settings;
mod upload;

use std::time::{Duration, Instant};

use dfscan_core::error::with_causes;
use dfscan_core::Backoff;
use dfscan_proto::v1::scoring_client::ScoringClient;
use dfscan_proto::v1::*;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

pub use error::ClientError;
pub use settings::ClientSettings;
pub use upload::UploadProgress;

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// TLS to an `https://` coordinator: the public roots plus the configured
/// CA, and a client certificate when one is configured.
fn tls_config(settings: &ClientSettings) -> Result<ClientTlsConfig> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ClientError::Connect(format!("TLS: {}: {e}", path.display())))
    };
    let mut config = ClientTlsConfig::new().with_webpki_roots();
    if let Some(ca) = &settings.tls_ca_file {
        config = config.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    match (&settings.tls_cert_file, &settings.tls_key_file) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => {
            return Err(ClientError::Connect(
                "client.tls_cert_file and client.tls_key_file go together".into(),
            ))
        }
    }
    if let Some(domain) = &settings.tls_domain {
        config = config.domain_name(domain.clone());
    }
    Ok(config)
}

/// Puts the API token, if any, on every call.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The coordinator's URL. A bare `HOST:PORT`, as the Python client takes
/// it, means `http://HOST:PORT`, or `https://` when client TLS files are
/// configured.
fn coordinator_url(settings: &ClientSettings) -> String {
    let address = settings.coordinator.trim();
    if address.contains("://") {
        return address.to_string();
    }
    let tls = settings.tls_ca_file.is_some() || settings.tls_cert_file.is_some();
    format!("{}://{address}", if tls { "https" } else { "http" })
}

#[derive(Clone)]
pub struct Client {
    scoring: ScoringClient<InterceptedService<Channel, Bearer>>,
    settings: ClientSettings,
}

impl Client {
    /// Connects to the coordinator at `settings.coordinator`.
    pub async fn connect(settings: ClientSettings) -> Result<Self> {
        let url = coordinator_url(&settings);
        let failed = |e: &(dyn std::error::Error + 'static)| {
            ClientError::Connect(format!("{url}: {}", with_causes(e)))
        };
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| failed(&e))?
            .connect_timeout(Duration::from_secs(10))
            .http2_keep_alive_interval(Duration::from_secs(30));
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(tls_config(&settings)?)
                .map_err(|e| ClientError::Connect(format!("TLS: {}", with_causes(&e))))?;
        }
        let channel = endpoint.connect().await.map_err(|e| failed(&e))?;
        let bearer =
            match &settings.token {
                Some(token) => Some(format!("Bearer {}", token.0).parse().map_err(|_| {
                    ClientError::Connect("the API token is not valid ASCII".into())
                })?),
                None => None,
            };
        let scoring = ScoringClient::with_interceptor(channel, Bearer(bearer))
            .max_decoding_message_size(settings.max_message_bytes)
            .max_encoding_message_size(settings.max_message_bytes);
        Ok(Self { scoring, settings })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Uploads a job: `header`, then `items` in messages of at most
    /// `upload_batch_items` items / `upload_batch_bytes` bytes. `items` is
    /// drained on a blocking thread (it may read files).
    pub async fn submit<I>(
        &self,
        header: JobHeader,
        items: I,
        progress: UploadProgress,
    ) -> Result<SubmitJobResponse>
    where
        I: Iterator<Item = Item> + Send + 'static,
    {
        let requests = upload::requests(header, items, &self.settings, progress);
        Ok(self
            .scoring
            .clone()
            .submit_job(requests)
            .await?
            .into_inner())
    }

    pub async fn get_job(&self, job_id: &str) -> Result<Job> {
        let request = GetJobRequest {
            job_id: job_id.into(),
        };
        Ok(self.scoring.clone().get_job(request).await?.into_inner())
    }

    pub async fn list_jobs(&self, limit: u32, state: JobState) -> Result<Vec<Job>> {
        let request = ListJobsRequest {
            limit,
            state: state as i32,
        };
        Ok(self
            .scoring
            .clone()
            .list_jobs(request)
            .await?
            .into_inner()
            .jobs)
    }

    pub async fn cancel_job(&self, job_id: &str) -> Result<Job> {
        let request = CancelJobRequest {
            job_id: job_id.into(),
        };
        Ok(self.scoring.clone().cancel_job(request).await?.into_inner())
    }

    pub async fn list_models(&self) -> Result<Vec<Model>> {
        let mut scoring = self.scoring.clone();
        Ok(scoring
            .list_models(ListModelsRequest {})
            .await?
            .into_inner()
            .models)
    }

    pub async fn list_workers(&self) -> Result<Vec<Worker>> {
        let mut scoring = self.scoring.clone();
        Ok(scoring
            .list_workers(ListWorkersRequest {})
            .await?
            .into_inner()
            .workers)
    }

    /// Streams the results of `job_id` after cursor `after` into `sink`
    /// until the job is finished, and returns the last cursor. Broken
    /// streams (coordinator restart, network, Redis down) are resumed from
    /// the last cursor received, for as long as `resume_for_s` passes
    /// without progress.
    pub async fn stream_results(
        &self,
        job_id: &str,
        mut after: u64,
        mut sink: impl FnMut(Vec<ItemResult>) -> Result<()>,
    ) -> Result<u64> {
        let patience = Duration::from_secs(self.settings.resume_for_s);
        let mut last_progress = Instant::now();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            let before = after;
            let outcome = self.stream_once(job_id, &mut after, &mut sink).await;
            if after > before {
                last_progress = Instant::now();
                backoff.reset();
            }
            match outcome {
                Ok(()) => return Ok(after),
                Err(ClientError::Status(status)) if is_transient(status.code()) => {
                    if last_progress.elapsed() > patience {
                        return Err(ClientError::Status(status));
                    }
                    tracing::warn!(
                        job = job_id,
                        after,
                        "result stream broke ({}: {}); resuming",
                        status.code(),
                        status.message()
                    );
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn stream_once(
        &self,
        job_id: &str,
        after: &mut u64,
        sink: &mut impl FnMut(Vec<ItemResult>) -> Result<()>,
    ) -> Result<()> {
        let request = StreamResultsRequest {
            job_id: job_id.into(),
            after_cursor: *after,
        };
        let mut stream = self
            .scoring
            .clone()
            .stream_results(request)
            .await?
            .into_inner();
        while let Some(message) = stream.message().await? {
            for result in &message.results {
                if result.cursor != *after + 1 {
                    return Err(ClientError::Protocol(format!(
                        "job {job_id}: expected result cursor {}, got {}",
                        *after + 1,
                        result.cursor
                    )));
                }
                *after = result.cursor;
            }
            sink(message.results)?;
        }
        Ok(())
    }
}

/// Failures a retry may cure: the coordinator or Redis restarting, the
/// connection dropping.
fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled | Code::Aborted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_address_gets_a_scheme() {
        let mut settings = ClientSettings {
            coordinator: "127.0.0.1:50051".into(),
            ..Default::default()
        };
        assert_eq!(coordinator_url(&settings), "http://127.0.0.1:50051");
        settings.tls_ca_file = Some("ca.pem".into());
        assert_eq!(coordinator_url(&settings), "https://127.0.0.1:50051");
        settings.coordinator = "http://h:1".into();
        assert_eq!(coordinator_url(&settings), "http://h:1");
    }
}
