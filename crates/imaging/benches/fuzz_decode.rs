//! The stable-Rust runner of the decode fuzz target (`fuzz/target.rs`,
//! which libFuzzer runs on nightly from `crates/imaging/fuzz/`). Not a CI
//! test: run it for a fixed number of iterations, like a benchmark.
//!
//! ```text
//! cargo bench -p dfscan-imaging --bench fuzz_decode -- [--iterations N] [--seed S]
//!     [--corpus DIR...] [--crashes DIR] [--max-heap BYTES] [--replay FILE...]
//! ```
//!
//! Inputs are mutations of the seed files (built-in ones, `tests/hostile/`
//! and any `--corpus` directories; the hostile-image corpus the tests
//! generate is `target/tmp/hostile-*`): the byte-level ones shared with the
//! protocol fuzzer (`dfscan_testkit::mutate`: bit flips, interesting
//! integers, truncation, insertion, repetition, splicing of two inputs) and,
//! here, structure-aware ones (PNG chunk lengths and types with the CRC
//! repaired, JPEG segment lengths and SOF fields, GIF screen and frame
//! descriptors, RIFF/BMP/TIFF sizes, EXIF IFD fields). Every input goes
//! through the target under `catch_unwind`; a panic is a crash and its
//! input is written to the crashes directory. The Rust heap is counted by
//! this binary's allocator: an input whose decode holds more than
//! `--max-heap` bytes at once (default: the limits' allocation budget) is
//! reported and written out too. libjpeg-turbo's own allocations are C
//! `malloc`s, not counted; the process's peak RSS is reported at the end,
//! and the slowest input is written out.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dfscan_imaging::{DecodeLimits, ImagingError};
use dfscan_testkit::mutate::{
    self, interesting_u16, pick, put_u16, put_u32, INTERESTING_32, INTERESTING_8,
};
use image::{ImageFormat, RgbImage, RgbaImage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[path = "../fuzz/target.rs"]
mod target;

// ---------------------------------------------------------------------------
// heap accounting

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------
// mutations: the shared byte-level ones, and those that know a format

/// (offset of the length field, declared length) of each PNG chunk.
fn png_chunks(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while let Some(head) = data.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        out.push((pos, len));
        pos = pos.saturating_add(12).saturating_add(len);
    }
    out
}

/// Rewrites every complete chunk's CRC, so that mutated chunks get past
/// Pillow's (and dfscan's) checksum test.
fn png_fix_crcs(data: &mut [u8]) {
    for (pos, len) in png_chunks(data) {
        let end = pos + 8 + len;
        if end + 4 <= data.len() {
            let crc = crc32fast::hash(&data[pos + 4..end]);
            data[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        }
    }
}

/// (offset of the marker, segment length) of each JPEG segment before SOS.
fn jpeg_segments(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 2;
    while let Some(seg) = data.get(pos..pos + 4) {
        if seg[0] != 0xFF {
            break;
        }
        let len = usize::from(u16::from_be_bytes([seg[2], seg[3]]));
        out.push((pos, len));
        if seg[1] == 0xDA {
            break;
        }
        pos += 2 + len;
    }
    out
}

/// Where EXIF/TIFF structures (IFD counts, entry types, offsets) or XMP
/// orientation text start inside a file, if anywhere.
fn metadata_offset(data: &[u8]) -> Option<usize> {
    let find = |needle: &[u8]| data.windows(needle.len()).position(|w| w == needle);
    find(b"Exif\0\0")
        .map(|p| p + 6)
        .or_else(|| find(b"MM\0*"))
        .or_else(|| find(b"II*\0"))
        .or_else(|| find(b"tiff:Orientation").map(|p| p + 16))
}

/// A mutation that knows the container format.
fn mutate_structure(data: &mut Vec<u8>, rng: &mut StdRng) {
    if rng.random_bool(0.25) {
        if let Some(start) = metadata_offset(data) {
            // IFD entry counts, tags, types, counts and offsets.
            let at = start + rng.random_range(0..96);
            let big_endian = data.get(start) == Some(&b'M');
            match rng.random_range(0..3) {
                0 => put_u16(data, at, interesting_u16(rng), big_endian),
                1 => put_u32(data, at, *pick(&INTERESTING_32, rng), big_endian),
                _ => {
                    if let Some(b) = data.get_mut(at) {
                        *b = *pick(&INTERESTING_8, rng);
                    }
                }
            }
            if data.starts_with(b"\x89PNG") {
                png_fix_crcs(data);
            }
            return;
        }
    }
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        let chunks = png_chunks(data);
        if chunks.is_empty() {
            return;
        }
        let (pos, len) = *pick(&chunks, rng);
        match rng.random_range(0..6) {
            0 => put_u32(data, pos, *pick(&INTERESTING_32, rng), true),
            1 => {
                let v = (len as u32)
                    .wrapping_add(rng.random_range(0..9) as u32)
                    .wrapping_sub(4);
                put_u32(data, pos, v, true);
            }
            2 => {
                let kinds: [&[u8; 4]; 10] = [
                    b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"eXIf", b"acTL", b"fcTL",
                    b"zTXt", b"iTXt",
                ];
                data[pos + 4..pos + 8].copy_from_slice(*pick(&kinds, rng));
            }
            3 => {
                // IHDR fields: width, height, depth, colour type, interlace.
                match rng.random_range(0..5) {
                    0 => put_u32(data, 16, *pick(&INTERESTING_32, rng), true),
                    1 => put_u32(data, 20, *pick(&INTERESTING_32, rng), true),
                    field => {
                        let at = [24, 25, 28][field - 2];
                        if let Some(b) = data.get_mut(at) {
                            *b = *pick(&INTERESTING_8, rng);
                        }
                    }
                }
            }
            4 => {
                // Duplicate a chunk (two IHDRs, PLTEs, IDATs...).
                let end = (pos + 12 + len).min(data.len());
                let copy = data[pos..end].to_vec();
                let at = pick(&chunks, rng).0;
                data.splice(at..at, copy);
            }
            _ => {
                // Drop a chunk.
                let end = (pos + 12 + len).min(data.len());
                data.drain(pos..end);
            }
        }
        if rng.random_bool(0.8) {
            png_fix_crcs(data);
        }
    } else if data.starts_with(b"\xff\xd8") {
        let segments = jpeg_segments(data);
        if segments.is_empty() {
            return;
        }
        let (pos, len) = *pick(&segments, rng);
        match rng.random_range(0..5) {
            0 => put_u16(data, pos + 2, interesting_u16(rng), true),
            1 => {
                // SOF-style fields: precision, height, width, components,
                // then per-component id / sampling / table.
                let at = pos + 4 + rng.random_range(0..len.clamp(1, 16));
                if let Some(b) = data.get_mut(at) {
                    *b = *pick(&INTERESTING_8, rng);
                }
            }
            2 => {
                put_u16(data, pos + 5, interesting_u16(rng), true);
                put_u16(data, pos + 7, interesting_u16(rng), true);
            }
            3 => {
                let markers = [0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xCC, 0xDB, 0xDD, 0xE1, 0xEE];
                data[pos + 1] = *pick(&markers, rng);
            }
            _ => {
                let end = (pos + 2 + len).min(data.len());
                let copy = data[pos..end].to_vec();
                let at = pick(&segments, rng).0;
                data.splice(at..at, copy);
            }
        }
    } else if data.starts_with(b"GIF8") {
        match rng.random_range(0..3) {
            0 => {
                put_u16(data, 6, interesting_u16(rng), false);
                put_u16(data, 8, interesting_u16(rng), false);
            }
            1 => {
                if let Some(at) = data.iter().position(|&b| b == 0x2C) {
                    let field = at + 1 + 2 * rng.random_range(0..4);
                    put_u16(data, field, interesting_u16(rng), false);
                }
            }
            _ => {
                // Flags: global table size, frame flags, LZW code size.
                let spots: Vec<usize> = [10, 11]
                    .into_iter()
                    .chain(data.iter().position(|&b| b == 0x2C).map(|p| p + 9))
                    .chain(data.iter().position(|&b| b == 0x2C).map(|p| p + 10))
                    .collect();
                let at = *pick(&spots, rng);
                if let Some(b) = data.get_mut(at) {
                    *b = rng.random();
                }
            }
        }
    } else if data.starts_with(b"RIFF") || data.starts_with(b"BM") || data.starts_with(b"II") {
        // Size fields live in the first 40 bytes (RIFF/VP8X/BMP headers, TIFF IFD offsets).
        let at = rng.random_range(0..data.len().clamp(1, 40));
        let v = *pick(&INTERESTING_32, rng);
        put_u32(data, at, v, false);
    }
}

/// One random mutation of `data`, one in five aware of its format; `other`
/// is another input to splice with.
fn mutate(data: &mut Vec<u8>, other: &[u8], rng: &mut StdRng) {
    if rng.random_bool(0.2) {
        mutate_structure(data, rng);
    } else {
        mutate::mutate(data, other, rng);
    }
}

// ---------------------------------------------------------------------------
// seeds

fn synthetic(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(97);
        image::Rgb([v as u8, (v >> 3) as u8, (x * 255 / w.max(1)) as u8])
    })
}

fn encoded(img: impl Into<image::DynamicImage>, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.into()
        .write_to(&mut out, format)
        .expect("encoding a seed");
    out.into_inner()
}

/// Small valid files of every decoded format, so the fuzzer needs no corpus.
fn builtin_seeds() -> Vec<(String, Vec<u8>)> {
    let rgb = synthetic(33, 21, 1);
    let rgba = RgbaImage::from_fn(17, 13, |x, y| {
        image::Rgba([x as u8 * 9, y as u8 * 7, 99, 128])
    });
    let gray = image::GrayImage::from_fn(19, 11, |x, y| image::Luma([(x * y) as u8]));
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(9, 7, |x, y| {
        image::Luma([(x * 7000 + y * 300) as u16])
    });
    let mut seeds = vec![
        ("seed.png".into(), encoded(rgb.clone(), ImageFormat::Png)),
        (
            "seed_rgba.png".into(),
            encoded(rgba.clone(), ImageFormat::Png),
        ),
        ("seed_gray16.png".into(), encoded(gray16, ImageFormat::Png)),
        ("seed.jpg".into(), encoded(rgb.clone(), ImageFormat::Jpeg)),
        ("seed_gray.jpg".into(), encoded(gray, ImageFormat::Jpeg)),
        ("seed.gif".into(), encoded(rgba.clone(), ImageFormat::Gif)),
        ("seed.webp".into(), encoded(rgba, ImageFormat::WebP)),
        ("seed.bmp".into(), encoded(rgb.clone(), ImageFormat::Bmp)),
        ("seed.tiff".into(), encoded(rgb, ImageFormat::Tiff)),
    ];
    seeds.push(("seed_empty".into(), Vec::new()));
    seeds
}

fn read_seeds(dir: &Path, seeds: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("note: no corpus at {}", dir.display());
        return;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let skip = name.starts_with('.') || name.ends_with(".json") || name.ends_with(".md");
        if path.is_file() && !skip && !name.ends_with(".safetensors") {
            if let Ok(data) = std::fs::read(&path) {
                // Seeds over 1 MiB slow every mutation down; use them as-is only.
                if data.len() <= 1 << 20 {
                    seeds.push((name.into_owned(), data));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// running one input

enum Outcome {
    Ok,
    Error(ImagingError),
    Panic(String),
}

thread_local! {
    static PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The target on `data` under `catch_unwind`, and the most heap it held at
/// once.
fn run_one(data: &[u8]) -> (Outcome, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let result = panic::catch_unwind(AssertUnwindSafe(|| target::fuzz_decode(data)));
    let heap = PEAK.load(Relaxed).saturating_sub(base);
    let outcome = match result {
        Ok(Ok(_)) => Outcome::Ok,
        Ok(Err(e)) => Outcome::Error(e),
        Err(_) => Outcome::Panic(
            PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "panic without a message".into()),
        ),
    };
    (outcome, heap)
}

fn error_kind(e: &ImagingError) -> &'static str {
    match e {
        ImagingError::TooManyBytes { .. } => "too many bytes",
        ImagingError::TooManyPixels { .. } => "too many pixels",
        ImagingError::TooManyScans { .. } => "too many scans",
        ImagingError::ZeroSize { .. } => "zero size",
        ImagingError::Empty => "empty",
        ImagingError::UnsupportedFormat(_) => "unsupported format",
        ImagingError::Decode(_) => "decode error",
        ImagingError::InvalidConfig(_) => "invalid config",
        ImagingError::Unreadable(_) => "unreadable",
        ImagingError::GrewPastLimit { .. } => "grew past the limit",
    }
}

fn save(dir: &Path, prefix: &str, data: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).expect("creating the crashes directory");
    let path = dir.join(format!("{prefix}-{:016x}", target::fnv(data)));
    std::fs::write(&path, data).expect("writing a crash input");
    path
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------

struct Args {
    iterations: u64,
    seed: u64,
    corpus: Vec<PathBuf>,
    crashes: PathBuf,
    max_heap: Option<usize>,
    replay: Vec<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        iterations: 200_000,
        seed: 0,
        corpus: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/hostile")],
        crashes: Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes"),
        max_heap: None,
        replay: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--iterations" => args.iterations = value().parse().expect("--iterations N"),
            "--seed" => args.seed = value().parse().expect("--seed S"),
            "--corpus" => args.corpus.push(value().into()),
            "--crashes" => args.crashes = value().into(),
            "--max-heap" => args.max_heap = Some(value().parse().expect("--max-heap BYTES")),
            // Up to the next flag: cargo bench appends --bench.
            "--replay" => args.replay.extend(
                it.by_ref()
                    .take_while(|a| !a.starts_with("--"))
                    .map(PathBuf::from),
            ),
            // A glob after --corpus may expand to several directories.
            dir if !dir.starts_with("--") => args.corpus.push(dir.into()),
            // cargo bench passes --bench.
            _ => {}
        }
    }
    args
}

fn main() {
    let args = parse_args();
    panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        PANIC.with(|p| *p.borrow_mut() = Some(format!("{at}: {msg}")));
    }));
    let limits = DecodeLimits::default();
    let max_heap = args.max_heap.unwrap_or_else(|| {
        // The decoders' budget: max_pixels at 8 bytes each plus 16 MiB.
        (limits.max_pixels * 8 + (16 << 20)) as usize
    });
    if !args.replay.is_empty() {
        let mut failed = false;
        for path in &args.replay {
            let data = std::fs::read(path).expect("reading a replay input");
            let (outcome, heap) = run_one(&data);
            let verdict = match outcome {
                Outcome::Ok => "ok".to_string(),
                Outcome::Error(e) => format!("error: {e}"),
                Outcome::Panic(p) => {
                    failed = true;
                    format!("PANIC: {p}")
                }
            };
            println!(
                "{}: {verdict} (heap peak {} KiB)",
                path.display(),
                heap >> 10
            );
        }
        std::process::exit(i32::from(failed));
    }

    let mut seeds = builtin_seeds();
    for dir in &args.corpus {
        read_seeds(dir, &mut seeds);
    }
    println!(
        "fuzz_decode: {} iterations, seed {}, {} seed inputs, heap bound {} MiB",
        args.iterations,
        args.seed,
        seeds.len(),
        max_heap >> 20
    );
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut crashes: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut heavy: Vec<(usize, PathBuf)> = Vec::new();
    let mut slowest = (Duration::ZERO, Vec::new());
    let start = Instant::now();
    let mut last_report = start;
    for i in 0..args.iterations {
        let (_, seed) = &seeds[rng.random_range(0..seeds.len())];
        let (_, other) = &seeds[rng.random_range(0..seeds.len())];
        let mut input = seed.clone();
        for _ in 0..=rng.random_range(0..4) {
            mutate(&mut input, other, &mut rng);
        }
        let t0 = Instant::now();
        let (outcome, heap) = run_one(&input);
        let took = t0.elapsed();
        if took > slowest.0 {
            slowest = (took, input.clone());
        }
        match outcome {
            Outcome::Ok => *kinds.entry("ok").or_default() += 1,
            Outcome::Error(e) => *kinds.entry(error_kind(&e)).or_default() += 1,
            Outcome::Panic(msg) => {
                *kinds.entry("PANIC").or_default() += 1;
                // One file per distinct panic site.
                let site = msg.split(": ").next().unwrap_or_default().to_string();
                if let std::collections::btree_map::Entry::Vacant(slot) = crashes.entry(site) {
                    let path = save(&args.crashes, "crash", &input);
                    println!("CRASH at iteration {i}: {msg}\n  input: {}", path.display());
                    slot.insert(path);
                }
            }
        }
        if heap > max_heap {
            let path = save(&args.crashes, "heap", &input);
            println!(
                "HEAP at iteration {i}: {} MiB held at once (bound {} MiB)\n  input: {}",
                heap >> 20,
                max_heap >> 20,
                path.display()
            );
            heavy.push((heap, path));
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            println!(
                "  {} iterations, {:.0}/s",
                i + 1,
                (i + 1) as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = start.elapsed();
    let slow_path = save(&args.crashes, "slowest", &slowest.1);
    println!(
        "done: {} iterations in {:.1} s ({:.0}/s)",
        args.iterations,
        elapsed.as_secs_f64(),
        args.iterations as f64 / elapsed.as_secs_f64()
    );
    for (kind, n) in &kinds {
        println!("  {kind}: {n}");
    }
    println!(
        "  slowest input: {:.0} ms ({})",
        slowest.0.as_secs_f64() * 1e3,
        slow_path.display()
    );
    if let Some(kib) = peak_rss_kib() {
        println!("  peak RSS of this process: {} MiB", kib >> 10);
    }
    println!(
        "  crashes: {} distinct, heap-bound violations: {}",
        crashes.len(),
        heavy.len()
    );
    if !crashes.is_empty() || !heavy.is_empty() {
        std::process::exit(1);
    }
}
