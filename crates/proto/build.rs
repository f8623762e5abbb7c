//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no
//! `protoc` has to be installed) and generates the tonic/prost code plus the
//! encoded descriptor set that gRPC server reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "dfscan/v1/scoring.proto",
        "dfscan/v1/queue.proto",
        "inference/grpc_service.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Image bytes are passed along without copies.
        .bytes(".dfscan.v1.Item.data")
        .bytes(".inference")
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
