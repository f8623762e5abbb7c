//! Sending the cases and judging the answers. Messages go out as raw bytes
//! (a codec that neither encodes nor decodes), so a case reaches the
//! server exactly as generated. A call passes when the server answers it
//! with a status of its own other than INTERNAL or UNKNOWN; a transport
//! error (a dropped connection, a reset stream) or a call that hangs fails
//! it, as does a good request that no longer scores afterwards.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use dfscan_proto::inference::model_infer_request::InferInputTensor;
use dfscan_proto::inference::ModelInferRequest;
use dfscan_proto::inference::ModelInferResponse;
use dfscan_proto::v1::submit_job_request::Message as Submit;
use dfscan_proto::v1::{
    item::Source, Item, ItemBatch, JobHeader, StreamResultsRequest, SubmitJobRequest,
    SubmitJobResponse,
};
use prost::bytes::{Buf, BufMut};
use prost::Message;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::task::JoinSet;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::gen::{self, Case, Context, Rpc, Shape};

/// Longest one call may take: ModelInfer waits for a worker, the rest
/// answer at once.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Responses can be large (ListJobs of jobs with metadata).
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Bytes in, bytes out.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self {
        RawCodec
    }

    fn decoder(&mut self) -> Self {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let len = buf.remaining();
        Ok(Some(buf.copy_to_bytes(len).to_vec()))
    }
}

/// How one call ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status code; `None` when the call never got one (it hung past
    /// [`CALL_TIMEOUT`]).
    pub code: Option<Code>,
    /// The status was made by the client's transport, not sent by the
    /// server: the connection or the stream broke.
    pub transport: bool,
    pub message: String,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.transport || matches!(self.code, None | Some(Code::Internal | Code::Unknown))
    }

    /// `OK`, `INVALID_ARGUMENT`, ... as gRPC spells them.
    pub fn label(&self) -> String {
        match self.code {
            None => "HUNG".into(),
            Some(_) if self.transport => "TRANSPORT".into(),
            Some(code) => format!("{code:?}"),
        }
    }

    fn of(result: Result<(), Status>) -> Self {
        match result {
            Ok(()) => Outcome {
                code: Some(Code::Ok),
                transport: false,
                message: String::new(),
            },
            Err(status) => Outcome {
                code: Some(status.code()),
                // tonic keeps the cause of the statuses it makes itself
                // from transport errors; a server's status has none.
                transport: std::error::Error::source(&status).is_some(),
                message: status.message().chars().take(200).collect(),
            },
        }
    }
}

/// Sends one case's messages over `channel` and reads the whole answer.
pub async fn send(channel: &Channel, case: &Case) -> Outcome {
    let call = async {
        let mut grpc = tonic::client::Grpc::new(channel.clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
            .max_encoding_message_size(usize::MAX);
        grpc.ready()
            .await
            .map_err(|e| Status::from_error(e.into()))?;
        let path = PathAndQuery::from_static(case.rpc.path());
        match case.rpc.shape() {
            Shape::Unary => {
                let message = case.messages.first().cloned().unwrap_or_default();
                grpc.unary(tonic::Request::new(message), path, RawCodec)
                    .await
                    .map(drop)
            }
            Shape::ServerStream => {
                let message = case.messages.first().cloned().unwrap_or_default();
                let mut stream = grpc
                    .server_streaming(tonic::Request::new(message), path, RawCodec)
                    .await?
                    .into_inner();
                while stream.message().await?.is_some() {}
                Ok(())
            }
            Shape::ClientStream => {
                let messages = tonic::codegen::tokio_stream::iter(case.messages.clone());
                grpc.client_streaming(tonic::Request::new(messages), path, RawCodec)
                    .await
                    .map(drop)
            }
        }
    };
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Outcome::of(result),
        Err(_) => Outcome {
            code: None,
            transport: false,
            message: format!("no answer within {CALL_TIMEOUT:?}"),
        },
    }
}

/// Counts of one run.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: u64,
    /// RPC → status label → calls.
    pub by_rpc: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// Status label → calls.
    pub by_status: BTreeMap<String, u64>,
    /// Each named case with its status.
    pub named: Vec<(Rpc, String, String)>,
    /// The cases that failed, with what they got (the first 50).
    pub failures: Vec<String>,
    pub failed: u64,
}

impl Tally {
    fn add(&mut self, case: &Case, outcome: &Outcome, named: bool) {
        let label = outcome.label();
        self.requests += 1;
        *self
            .by_rpc
            .entry(case.rpc.name())
            .or_default()
            .entry(label.clone())
            .or_default() += 1;
        *self.by_status.entry(label.clone()).or_default() += 1;
        if named {
            self.named
                .push((case.rpc, case.name.clone(), label.clone()));
        }
        if outcome.failed() {
            self.failed += 1;
            if self.failures.len() < 50 {
                self.failures.push(format!(
                    "{} / {}: {label}: {}",
                    case.rpc.name(),
                    case.name,
                    outcome.message
                ));
            }
        }
    }

    /// The case list and the counts, for a test's or a benchmark's output.
    pub fn report(&self, seed: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "named cases ({}):", self.named.len());
        for (rpc, name, label) in &self.named {
            let _ = writeln!(out, "  {:<16} {name:<58} {label}", rpc.name());
        }
        let _ = writeln!(out, "{} requests, seed {seed}; by RPC:", self.requests);
        for (rpc, labels) in &self.by_rpc {
            let total: u64 = labels.values().sum();
            let counts: Vec<String> = labels.iter().map(|(l, n)| format!("{l} {n}")).collect();
            let _ = writeln!(out, "  {rpc:<16} {total:>7}  {}", counts.join(", "));
        }
        let _ = writeln!(out, "by status:");
        for (label, n) in &self.by_status {
            let _ = writeln!(out, "  {label:<20} {n:>7}");
        }
        let _ = writeln!(out, "failed: {}", self.failed);
        for failure in &self.failures {
            let _ = writeln!(out, "  {failure}");
        }
        out
    }
}

/// The named cases, then random ones from `seed` up to `requests` calls
/// in all, `concurrency` at a time.
pub async fn fuzz(
    channel: &Channel,
    ctx: &Context,
    seed: u64,
    requests: u64,
    concurrency: usize,
) -> Tally {
    let mut tally = Tally::default();
    let named = gen::named(ctx);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut next = 0u64;
    let mut running = JoinSet::new();
    let mut cases = named.into_iter().map(|case| (case, true));
    loop {
        while running.len() < concurrency && next < requests.max(1) {
            let (case, named) = match cases.next() {
                Some(named) => named,
                None => (gen::random(&mut rng, ctx), false),
            };
            next += 1;
            let channel = channel.clone();
            running.spawn(async move {
                let outcome = send(&channel, &case).await;
                (case, outcome, named)
            });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (case, outcome, named) = done.expect("a call panicked");
        tally.add(&case, &outcome, named);
    }
    // The named cases all run, however small `requests` is.
    for case in cases.map(|(case, _)| case) {
        let outcome = send(channel, &case).await;
        tally.add(&case, &outcome, true);
    }
    tally
}

/// A connection to the coordinator at `url`.
pub async fn connect(url: &str) -> Result<Channel, String> {
    Channel::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// A ModelInfer of one good image; its probabilities, or why not.
pub async fn good_infer(channel: &Channel, ctx: &Context) -> Result<Vec<f32>, String> {
    let mut raw = (ctx.image.len() as u32).to_le_bytes().to_vec();
    raw.extend_from_slice(&ctx.image);
    let request = ModelInferRequest {
        model_name: ctx.model.clone(),
        inputs: vec![InferInputTensor {
            name: "IMAGE".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    };
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| e.to_string())?;
    let path = PathAndQuery::from_static(Rpc::ModelInfer.path());
    let answer = grpc
        .unary(tonic::Request::new(request.encode_to_vec()), path, RawCodec)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let response = ModelInferResponse::decode(answer.as_slice()).map_err(|e| e.to_string())?;
    let probabilities = response
        .raw_output_contents
        .first()
        .ok_or("no outputs")?
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(probabilities)
}

/// Submits a job of `items` good images and waits until it is finished;
/// its id.
pub async fn good_job(channel: &Channel, ctx: &Context, items: u64) -> Result<String, String> {
    let messages = vec![
        SubmitJobRequest {
            message: Some(Submit::Header(JobHeader {
                model: ctx.model.clone(),
                ..Default::default()
            })),
        }
        .encode_to_vec(),
        SubmitJobRequest {
            message: Some(Submit::Items(ItemBatch {
                items: (0..items)
                    .map(|i| Item {
                        id: format!("good-{i}"),
                        source: Some(Source::Data(ctx.image.clone().into())),
                        ..Default::default()
                    })
                    .collect(),
            })),
        }
        .encode_to_vec(),
    ];
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.map_err(|e| e.to_string())?;
    let submitted = grpc
        .client_streaming(
            tonic::Request::new(tonic::codegen::tokio_stream::iter(messages)),
            PathAndQuery::from_static(Rpc::SubmitJob.path()),
            RawCodec,
        )
        .await
        .map_err(|s| format!("SubmitJob: {s}"))?
        .into_inner();
    let job = SubmitJobResponse::decode(submitted.as_slice())
        .map_err(|e| e.to_string())?
        .job
        .ok_or("no job")?;
    // StreamResults ends once the job is finished.
    grpc.ready().await.map_err(|e| e.to_string())?;
    let request = StreamResultsRequest {
        job_id: job.job_id.clone(),
        after_cursor: 0,
    };
    let mut stream = grpc
        .server_streaming(
            tonic::Request::new(request.encode_to_vec()),
            PathAndQuery::from_static(Rpc::StreamResults.path()),
            RawCodec,
        )
        .await
        .map_err(|s| format!("StreamResults: {s}"))?
        .into_inner();
    while stream
        .message()
        .await
        .map_err(|s| format!("StreamResults: {s}"))?
        .is_some()
    {}
    Ok(job.job_id)
}
