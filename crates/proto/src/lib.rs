//! dfscan's wire formats: the `dfscan.v1` gRPC API (`proto/dfscan/v1/`)
//! and the protobuf entries the queue stores, generated at build time.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("dfscan.v1");
}

/// The encoded descriptors of every file in `proto/`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
