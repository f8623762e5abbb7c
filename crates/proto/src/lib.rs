//! dfscan's wire formats: the `dfscan.v1` gRPC API (`proto/dfscan/v1/`),
//! the protobuf entries the queue stores, and the KServe v2 / Open
//! Inference Protocol service (`proto/inference/`), generated at build
//! time.

pub mod codec;

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("dfscan.v1");
}

/// The KServe v2 protocol (`inference.GRPCInferenceService`).
#[allow(clippy::all, clippy::pedantic)]
pub mod inference {
    tonic::include_proto!("inference");
}

/// The encoded descriptors of every file in `proto/`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
