//! Byte-level mutation, the one implementation the stable-Rust fuzzers
//! share: the image decoders' (`dfscan-imaging`'s `fuzz_decode` bench) and
//! the gRPC protocol fuzzer's (`tests/fuzz/`). Every choice is drawn from
//! the caller's seeded generator, so a seed gives the same inputs again.
//! What knows a format (PNG chunks, JPEG segments, protobuf fields) stays
//! with its fuzzer, which builds on the values and writers here.

use rand::seq::IndexedRandom;
use rand::Rng;

/// Bytes that sit on boundaries: sizes, counts, flags, sign bits.
pub const INTERESTING_8: [u8; 10] = [0, 1, 2, 3, 4, 8, 12, 16, 0x7F, 0xFF];

/// 16-bit lengths and dimensions around the limits decoders check.
pub const INTERESTING_16: [u16; 12] = [0, 1, 2, 3, 8, 255, 256, 9459, 16384, 20000, 32767, 65535];

/// 32-bit lengths, sizes and offsets: powers of two and their neighbours,
/// signed and unsigned extremes.
pub const INTERESTING_32: [u32; 16] = [
    0,
    1,
    2,
    7,
    8,
    255,
    256,
    16383,
    16384,
    16385,
    65535,
    65536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    0xFFFF_FFFF,
];

/// One of `items` (which must not be empty).
pub fn pick<'a, T, R: Rng + ?Sized>(items: &'a [T], rng: &mut R) -> &'a T {
    items.choose(rng).expect("picking from an empty list")
}

/// An interesting 16-bit value seven times in ten, any value otherwise.
pub fn interesting_u16<R: Rng + ?Sized>(rng: &mut R) -> u16 {
    if rng.random_bool(0.7) {
        *pick(&INTERESTING_16, rng)
    } else {
        rng.random()
    }
}

/// Writes the big-endian `bytes` at `at`, reversed for little-endian, if
/// they fit.
fn put(data: &mut [u8], at: usize, bytes: &[u8], big_endian: bool) {
    if let Some(dst) = data.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
        if !big_endian {
            dst.reverse();
        }
    }
}

/// Writes `v` at `at`, if it fits.
pub fn put_u16(data: &mut [u8], at: usize, v: u16, big_endian: bool) {
    put(data, at, &v.to_be_bytes(), big_endian);
}

/// Writes `v` at `at`, if it fits.
pub fn put_u32(data: &mut [u8], at: usize, v: u32, big_endian: bool) {
    put(data, at, &v.to_be_bytes(), big_endian);
}

/// One random mutation of `data`: flipped bits, an interesting byte or
/// 32-bit integer (either byte order), a truncation, inserted noise, a
/// deleted range, a range repeated (floods of chunks, markers, fields), or
/// `data`'s head spliced onto the tail of `other` (skipped when `other` is
/// empty). Empty data gets one random byte.
pub fn mutate<R: Rng + ?Sized>(data: &mut Vec<u8>, other: &[u8], rng: &mut R) {
    if data.is_empty() {
        data.push(rng.random());
        return;
    }
    let len = data.len();
    let ops = if other.is_empty() { 8 } else { 9 };
    match rng.random_range(0..ops) {
        0 | 1 => {
            for _ in 0..=rng.random_range(0..8) {
                let at = rng.random_range(0..len);
                data[at] ^= 1 << rng.random_range(0..8);
            }
        }
        2 => {
            let at = rng.random_range(0..len);
            data[at] = *pick(&INTERESTING_8, rng);
        }
        3 => {
            let at = rng.random_range(0..len);
            let v = *pick(&INTERESTING_32, rng);
            let big_endian = rng.random_bool(0.5);
            put_u32(data, at, v, big_endian);
        }
        4 => data.truncate(rng.random_range(0..len)),
        5 => {
            let at = rng.random_range(0..=len);
            let noise: Vec<u8> = (0..rng.random_range(1..=64))
                .map(|_| rng.random())
                .collect();
            data.splice(at..at, noise);
        }
        6 => {
            let start = rng.random_range(0..len);
            let end = (start + rng.random_range(1..=256)).min(len);
            data.drain(start..end);
        }
        7 => {
            let start = rng.random_range(0..len);
            let end = (start + rng.random_range(1..=128)).min(len);
            let piece = data[start..end].to_vec();
            for _ in 0..=rng.random_range(0..4) {
                data.splice(end..end, piece.iter().copied());
            }
        }
        _ => {
            let cut = rng.random_range(0..len);
            let from = rng.random_range(0..other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_seed_gives_the_same_mutations_again() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut outputs = Vec::new();
            for start in [&b""[..], b"x", b"\x89PNG\r\n\x1a\n0123456789"] {
                let mut data = start.to_vec();
                for _ in 0..200 {
                    mutate(&mut data, b"other input", &mut rng);
                    data.truncate(4096);
                }
                outputs.push(data);
            }
            outputs
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn writers_skip_what_does_not_fit() {
        let mut data = vec![0u8; 5];
        put_u32(&mut data, 1, 0x0102_0304, true);
        assert_eq!(data, [0, 1, 2, 3, 4]);
        put_u32(&mut data, 2, 0xFFFF_FFFF, false);
        put_u16(&mut data, 4, 0xFFFF, false);
        put_u16(&mut data, usize::MAX, 0xFFFF, false);
        assert_eq!(data, [0, 1, 2, 3, 4]);
        put_u16(&mut data, 3, 0x0A0B, false);
        assert_eq!(data, [0, 1, 2, 0x0B, 0x0A]);
    }
}
