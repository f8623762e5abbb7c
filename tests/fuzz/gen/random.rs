//! The seeded random cases: fields drawn from hostile values, streams
//! shuffled, bytes damaged. The same seed gives the same cases.

use dfscan_testkit::mutate::mutate;
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use super::*;

/// Hostile values the random cases draw from.
fn text(rng: &mut StdRng, ctx: &Context) -> Vec<u8> {
    match rng.random_range(0..12) {
        0 => Vec::new(),
        1 => ctx.model.clone().into_bytes(),
        2 => ctx.job_id.clone().into_bytes(),
        3 => vec![b'x'; if rng.random_bool(0.1) { MB } else { 4097 }],
        4 => (0..rng.random_range(1..300))
            .map(|_| rng.random_range(0..32u8))
            .collect(),
        5 => {
            // Not UTF-8: a lone continuation byte, an overlong form, a
            // surrogate, or noise.
            let mut bytes = b"id".to_vec();
            bytes.extend_from_slice(match rng.random_range(0..4) {
                0 => &[0x80][..],
                1 => &[0xc0, 0xaf],
                2 => &[0xed, 0xa0, 0x80],
                _ => &[0xff, 0xfe, 0xfd],
            });
            bytes
        }
        6 => "é".repeat(rng.random_range(1..2000)).into_bytes(),
        7 => format!("{:032x}", rng.random::<u128>()).into_bytes(),
        8 => b"IMAGE".to_vec(),
        9 => b"BYTES".to_vec(),
        10 => b"PROBABILITIES".to_vec(),
        _ => {
            let mut bytes = vec![0; rng.random_range(0..64)];
            rng.fill_bytes(&mut bytes);
            bytes
        }
    }
}

fn number(rng: &mut StdRng) -> u64 {
    const EDGES: [u64; 14] = [
        0,
        1,
        2,
        63,
        64,
        65,
        1024,
        1025,
        u32::MAX as u64,
        1 << 32,
        1 << 46,
        i64::MAX as u64,
        i64::MIN as u64,
        u64::MAX,
    ];
    if rng.random_bool(0.8) {
        EDGES[rng.random_range(0..EDGES.len())]
    } else {
        rng.random()
    }
}

fn float(rng: &mut StdRng) -> f32 {
    const EDGES: [f32; 10] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        0.0,
        1.0,
        1.000_000_1,
        f32::MIN_POSITIVE,
        f32::MAX,
        0.5,
    ];
    EDGES[rng.random_range(0..EDGES.len())]
}

/// A random message for `rpc`, its fields drawn from the hostile values.
fn message(rpc: Rpc, rng: &mut StdRng, ctx: &Context) -> Vec<u8> {
    let mut raw = Raw::default();
    match rpc {
        Rpc::GetJob | Rpc::CancelJob => raw = raw.bytes(1, &text(rng, ctx)),
        Rpc::StreamResults => {
            raw = raw.bytes(1, &text(rng, ctx)).uint(2, number(rng));
        }
        Rpc::ListJobs => raw = raw.uint(1, number(rng)).uint(2, number(rng)),
        Rpc::ModelReady | Rpc::ModelMetadata | Rpc::ModelConfig => {
            raw = raw.bytes(1, &text(rng, ctx)).bytes(2, &text(rng, ctx));
        }
        Rpc::RepositoryIndex => raw = raw.bytes(1, &text(rng, ctx)).uint(2, number(rng)),
        Rpc::ModelInfer => return infer_message(rng, ctx),
        Rpc::SubmitJob => return header_message(rng, ctx),
        Rpc::ListModels
        | Rpc::ListWorkers
        | Rpc::ServerLive
        | Rpc::ServerReady
        | Rpc::ServerMetadata => {
            let field = rng.random_range(1..20);
            raw = raw.bytes(field, &text(rng, ctx));
        }
    }
    raw.done()
}

fn infer_message(rng: &mut StdRng, ctx: &Context) -> Vec<u8> {
    let mut tensor = Raw::default()
        .bytes(
            1,
            if rng.random_bool(0.8) {
                b"IMAGE"
            } else {
                b"image"
            },
        )
        .bytes(
            2,
            if rng.random_bool(0.8) {
                b"BYTES"
            } else {
                b"FP32"
            },
        );
    for _ in 0..rng.random_range(0..3) {
        tensor = tensor.uint(3, number(rng));
    }
    let mut raw = Raw::default().bytes(
        1,
        &if rng.random_bool(0.8) {
            ctx.model.clone().into_bytes()
        } else {
            text(rng, ctx)
        },
    );
    if rng.random_bool(0.3) {
        raw = raw.bytes(3, &text(rng, ctx));
    }
    raw = raw.bytes(5, &tensor.done());
    for _ in 0..rng.random_range(0..3) {
        let name: &[u8] = match rng.random_range(0..4) {
            0 => b"PROBABILITIES",
            1 => b"LABEL",
            2 => b"FACES",
            _ => b"OTHER",
        };
        raw = raw.bytes(6, &Raw::default().bytes(1, name).done());
    }
    let elements: Vec<&[u8]> = (0..rng.random_range(0..4))
        .map(|_| {
            if rng.random_bool(0.5) {
                &ctx.image[..]
            } else {
                &b"\xff\xd8\xff"[..]
            }
        })
        .collect();
    let mut data = raw_bytes(&elements);
    if rng.random_bool(0.3) {
        let declared = number(rng) as u32;
        data.extend_from_slice(&declared.to_le_bytes());
    }
    raw.bytes(7, &data).done()
}

/// A SubmitJob header with hostile fields (the items follow in
/// [`random`]).
fn header_message(rng: &mut StdRng, ctx: &Context) -> Vec<u8> {
    let mut header = Raw::default().bytes(
        1,
        &if rng.random_bool(0.7) {
            ctx.model.clone().into_bytes()
        } else {
            text(rng, ctx)
        },
    );
    if rng.random_bool(0.3) {
        header = header.bytes(2, &text(rng, ctx));
    }
    for _ in 0..rng.random_range(0..3) {
        let entry = Raw::default()
            .bytes(1, &text(rng, ctx))
            .bytes(2, &text(rng, ctx));
        header = header.bytes(3, &entry.done());
    }
    if rng.random_bool(0.3) {
        header = header.uint(4, number(rng));
    }
    if rng.random_bool(0.3) {
        let threshold: Vec<u8> = Raw::default()
            .bytes(1, b"flag")
            .key(2, 5)
            .0
            .into_iter()
            .chain(float(rng).to_le_bytes())
            .collect();
        header = header.bytes(5, &Raw::default().bytes(1, &threshold).done());
    }
    wrapped(1, header.done())
}

fn items_message(rng: &mut StdRng, ctx: &Context) -> Vec<u8> {
    let mut batch = Raw::default();
    for _ in 0..rng.random_range(0..4) {
        let mut item = Raw::default().bytes(1, &text(rng, ctx));
        item = match rng.random_range(0..3) {
            0 => item.bytes(2, &ctx.image),
            1 => item.bytes(3, &text(rng, ctx)),
            _ => item,
        };
        batch = batch.bytes(1, &item.done());
    }
    wrapped(2, batch.done())
}

/// A random case; the same `rng` state gives the same case.
pub fn random(rng: &mut StdRng, ctx: &Context) -> Case {
    let rpc = Rpc::ALL[rng.random_range(0..Rpc::ALL.len())];
    let mut messages = vec![message(rpc, rng, ctx)];
    let mut name = "random fields";
    if rpc == Rpc::SubmitJob {
        for _ in 0..rng.random_range(0..3) {
            messages.push(items_message(rng, ctx));
        }
        match rng.random_range(0..8) {
            0 => {
                messages.reverse();
                name = "random stream, reversed";
            }
            1 => {
                messages.push(messages[0].clone());
                name = "random stream, a second header";
            }
            2 => {
                messages.clear();
                name = "random stream, empty";
            }
            _ => name = "random stream",
        }
    }
    if rng.random_bool(0.25) {
        // Byte-level damage, by the mutator the image fuzzer uses too.
        for message in &mut messages {
            mutate(message, &[], rng);
        }
        name = "random fields, damaged bytes";
    }
    case(rpc, name, messages)
}
