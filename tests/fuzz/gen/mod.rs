//! The hostile requests. Each case is the raw bytes of the messages one
//! call sends, so that a case can hold what no well-behaved client
//! encodes: strings that are not UTF-8, length prefixes past the end,
//! fields of the wrong wire type. There are two kinds: a fixed list of
//! named cases (every field of every RPC, pushed to the values that
//! broke or could break something) and seeded random ones, which combine
//! hostile values field by field and mutate the bytes.
//!
//! This module holds what both kinds share: the RPCs, the case type and
//! the builders of raw and well-formed messages.

mod kserve;
mod named;
mod random;

pub use named::named;
pub use random::random;

use std::collections::HashMap;

use dfscan_proto::inference::model_infer_request::InferInputTensor;
use dfscan_proto::inference::ModelInferRequest;
use dfscan_proto::v1::submit_job_request::Message as Submit;
use dfscan_proto::v1::{
    item::Source, Item, ItemBatch, JobHeader, SubmitJobRequest, VerdictPolicy, VerdictThreshold,
};
use prost::Message;

/// Every RPC of `dfscan.v1.Scoring` and `inference.GRPCInferenceService`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rpc {
    SubmitJob,
    GetJob,
    ListJobs,
    CancelJob,
    StreamResults,
    ListModels,
    ListWorkers,
    ServerLive,
    ServerReady,
    ModelReady,
    ServerMetadata,
    ModelMetadata,
    ModelInfer,
    ModelConfig,
    RepositoryIndex,
}

/// How an RPC's messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Unary,
    ClientStream,
    ServerStream,
}

impl Rpc {
    pub const ALL: [Rpc; 15] = [
        Rpc::SubmitJob,
        Rpc::GetJob,
        Rpc::ListJobs,
        Rpc::CancelJob,
        Rpc::StreamResults,
        Rpc::ListModels,
        Rpc::ListWorkers,
        Rpc::ServerLive,
        Rpc::ServerReady,
        Rpc::ModelReady,
        Rpc::ServerMetadata,
        Rpc::ModelMetadata,
        Rpc::ModelInfer,
        Rpc::ModelConfig,
        Rpc::RepositoryIndex,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Rpc::SubmitJob => "/dfscan.v1.Scoring/SubmitJob",
            Rpc::GetJob => "/dfscan.v1.Scoring/GetJob",
            Rpc::ListJobs => "/dfscan.v1.Scoring/ListJobs",
            Rpc::CancelJob => "/dfscan.v1.Scoring/CancelJob",
            Rpc::StreamResults => "/dfscan.v1.Scoring/StreamResults",
            Rpc::ListModels => "/dfscan.v1.Scoring/ListModels",
            Rpc::ListWorkers => "/dfscan.v1.Scoring/ListWorkers",
            Rpc::ServerLive => "/inference.GRPCInferenceService/ServerLive",
            Rpc::ServerReady => "/inference.GRPCInferenceService/ServerReady",
            Rpc::ModelReady => "/inference.GRPCInferenceService/ModelReady",
            Rpc::ServerMetadata => "/inference.GRPCInferenceService/ServerMetadata",
            Rpc::ModelMetadata => "/inference.GRPCInferenceService/ModelMetadata",
            Rpc::ModelInfer => "/inference.GRPCInferenceService/ModelInfer",
            Rpc::ModelConfig => "/inference.GRPCInferenceService/ModelConfig",
            Rpc::RepositoryIndex => "/inference.GRPCInferenceService/RepositoryIndex",
        }
    }

    pub fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or_default()
    }

    pub fn shape(self) -> Shape {
        match self {
            Rpc::SubmitJob => Shape::ClientStream,
            Rpc::StreamResults => Shape::ServerStream,
            _ => Shape::Unary,
        }
    }
}

/// One call: its RPC, a name for reports, and the encoded messages it
/// sends (exactly one for unary and server-streaming RPCs).
#[derive(Debug, Clone)]
pub struct Case {
    pub rpc: Rpc,
    pub name: String,
    pub messages: Vec<Vec<u8>>,
}

/// What the cases are built around: a model the cluster serves, a
/// finished job of `job_total` items, and an image that scores.
#[derive(Debug, Clone)]
pub struct Context {
    pub model: String,
    pub job_id: String,
    pub job_total: u64,
    pub image: Vec<u8>,
}

const MB: usize = 1 << 20;

fn case(rpc: Rpc, name: &str, messages: Vec<Vec<u8>>) -> Case {
    Case {
        rpc,
        name: name.to_string(),
        messages,
    }
}

fn one(rpc: Rpc, name: &str, message: impl Message) -> Case {
    case(rpc, name, vec![message.encode_to_vec()])
}

/// A protobuf message written field by field, right or wrong.
#[derive(Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn varint(mut self, mut value: u64) -> Self {
        while value >= 0x80 {
            self.0.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
        self
    }

    fn key(self, field: u32, wire: u8) -> Self {
        self.varint(u64::from(field) << 3 | u64::from(wire))
    }

    fn uint(self, field: u32, value: u64) -> Self {
        self.key(field, 0).varint(value)
    }

    /// A length-delimited field (string, bytes, message) of any bytes.
    fn bytes(self, field: u32, data: &[u8]) -> Self {
        let mut raw = self.key(field, 2).varint(data.len() as u64);
        raw.0.extend_from_slice(data);
        raw
    }

    /// A length-delimited field whose length says more than follows.
    fn past_end(self, field: u32, declared: u64, data: &[u8]) -> Self {
        let mut raw = self.key(field, 2).varint(declared);
        raw.0.extend_from_slice(data);
        raw
    }

    fn done(self) -> Vec<u8> {
        self.0
    }
}

/// The same message as the `SubmitJobRequest` oneof arm it goes in.
fn header(header: JobHeader) -> Vec<u8> {
    SubmitJobRequest {
        message: Some(Submit::Header(header)),
    }
    .encode_to_vec()
}

fn items(items: Vec<Item>) -> Vec<u8> {
    SubmitJobRequest {
        message: Some(Submit::Items(ItemBatch { items })),
    }
    .encode_to_vec()
}

fn item(id: &str, source: Source) -> Item {
    Item {
        id: id.into(),
        source: Some(source),
        ..Default::default()
    }
}

/// A `SubmitJobRequest` header or items message around raw bytes.
fn wrapped(arm: u32, inner: Vec<u8>) -> Vec<u8> {
    Raw::default().bytes(arm, &inner).done()
}

fn big_map(entries: usize) -> HashMap<String, String> {
    (0..entries)
        .map(|i| (i.to_string(), String::new()))
        .collect()
}

fn policy(min_fake_score: f32) -> VerdictPolicy {
    VerdictPolicy {
        thresholds: vec![VerdictThreshold {
            verdict: "flag".into(),
            min_fake_score,
        }],
        otherwise: String::new(),
    }
}

/// A raw BYTES tensor: each element a 4-byte little-endian length, then
/// its bytes.
fn raw_bytes(elements: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for element in elements {
        out.extend_from_slice(&(element.len() as u32).to_le_bytes());
        out.extend_from_slice(element);
    }
    out
}

fn image_input(shape: Vec<i64>) -> InferInputTensor {
    InferInputTensor {
        name: "IMAGE".into(),
        datatype: "BYTES".into(),
        shape,
        ..Default::default()
    }
}

fn infer(ctx: &Context, input: InferInputTensor, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: ctx.model.clone(),
        inputs: vec![input],
        raw_input_contents: raw.into_iter().map(Into::into).collect(),
        ..Default::default()
    }
}
