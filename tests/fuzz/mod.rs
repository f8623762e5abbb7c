//! A protocol fuzzer for both gRPC APIs of the coordinator
//! (`dfscan.v1.Scoring` and `inference.GRPCInferenceService`): hostile
//! requests for every RPC, sent to a running coordinator, each of which
//! must get a status of the server's own that is not INTERNAL or UNKNOWN.
//! Shared by the bounded test (`tests/protocol_fuzz.rs`) and the long run
//! (`benches/protocol_fuzz.rs`), so both send the same cases for a seed.

#![allow(dead_code)] // the test and the benchmark each use their own subset

pub mod gen;
pub mod run;

/// A small PNG that the test model scores.
pub fn image() -> Vec<u8> {
    let pixels =
        image::RgbImage::from_fn(24, 24, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 128]));
    let mut png = std::io::Cursor::new(Vec::new());
    pixels
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("encoding a PNG in memory");
    png.into_inner()
}
