//! Bad inputs: every one must come back as an error whose message tells the
//! uploader what is wrong, and none may panic or allocate past the limits.
//! The inputs are built here (no reference virtualenv needed).

use std::io::Cursor;

use dfscan_imaging::{decode_rgb, preprocess, DecodeLimits, ImagingError, PreprocessorConfig};
use image::{ImageFormat, RgbImage};

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sample_image(w: u32, h: u32) -> RgbImage {
    let px = noise((w * h * 3) as usize, 7);
    RgbImage::from_raw(w, h, px).unwrap()
}

fn encode(format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    sample_image(64, 48).write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend(crc32fast::hash(&crc_input).to_be_bytes());
    out
}

/// A PNG signature and IHDR for an 8-bit RGB image of the given size.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out
}

fn message(bytes: &[u8]) -> String {
    decode_rgb(bytes, &limits())
        .expect_err("bad input must not decode")
        .to_string()
}

#[test]
fn empty_and_tiny_inputs() {
    let err = decode_rgb(b"", &limits()).unwrap_err();
    assert!(matches!(err, ImagingError::Empty));
    assert_eq!(err.to_string(), "image file is empty (0 bytes)");
    for one in [b"\x00", b"\xff", b"\x89", b"G"] {
        assert_eq!(message(one), "unsupported image format (detected: none)");
    }
}

#[test]
fn random_bytes_and_text_named_jpg() {
    for seed in 0..50 {
        let bytes = noise(1 + seed as usize * 37, seed);
        // Whatever the bytes, the answer is an error, never a panic.
        assert!(decode_rgb(&bytes, &limits()).is_err(), "seed {seed}");
    }
    let text = b"This is a plain text file that somebody renamed to photo.jpg\n";
    assert_eq!(message(text), "unsupported image format (detected: none)");
}

#[test]
fn unsupported_formats_are_named() {
    let cases: [(&[u8], &str); 5] = [
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "HEIC/HEIF"),
        (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1", "AVIF"),
        (
            b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
            "SVG",
        ),
        (b"<svg width=\"10\" height=\"10\"></svg>", "SVG"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF"),
    ];
    for (bytes, name) in cases {
        let err = decode_rgb(bytes, &limits()).unwrap_err();
        assert!(
            matches!(err, ImagingError::UnsupportedFormat(_)),
            "{name}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("unsupported image format (detected: {name})")
        );
    }
}

#[test]
fn truncated_png_and_jpeg_fail_at_every_length() {
    for format in [ImageFormat::Png, ImageFormat::Jpeg] {
        let full = encode(format);
        assert!(
            decode_rgb(&full, &limits()).is_ok(),
            "{format:?} fixture decodes"
        );
        let lengths = [
            3,
            8,
            16,
            30,
            50,
            100,
            full.len() / 3,
            full.len() / 2,
            full.len() - 40,
        ];
        for len in lengths {
            let err = decode_rgb(&full[..len], &limits())
                .expect_err(&format!("{format:?} cut to {len} of {} bytes", full.len()));
            assert!(
                matches!(
                    err,
                    ImagingError::Decode(_) | ImagingError::UnsupportedFormat(_)
                ),
                "{format:?} {len}: {err:?}"
            );
        }
    }
    // A JPEG missing only its end-of-image marker is truncated for Pillow too.
    let jpeg = encode(ImageFormat::Jpeg);
    let msg = message(&jpeg[..jpeg.len() - 2]);
    assert!(msg.contains("truncated"), "{msg}");
    // A PNG is not: Pillow stops reading after the last row, so a file that
    // lacks only its IEND chunk and the last IDAT's CRC decodes.
    let png = encode(ImageFormat::Png);
    assert_eq!(
        decode_rgb(&png[..png.len() - 16], &limits()).unwrap(),
        decode_rgb(&png, &limits()).unwrap()
    );
}

#[test]
fn jpeg_warnings_pass_but_errors_after_them_fail() {
    // libjpeg warns about stray bytes before a marker and decodes on, as
    // Pillow does; the pixels are those of the clean file.
    let clean = encode(ImageFormat::Jpeg);
    let sof = baseline_sof(&clean);
    let mut stray = clean[..sof].to_vec();
    stray.extend([0x00, 0x12, 0x34]);
    stray.extend(&clean[sof..]);
    assert_eq!(
        decode_rgb(&stray, &limits()).unwrap(),
        decode_rgb(&clean, &limits()).unwrap()
    );
    // An error after that warning (a second frame header once the scan is
    // done) fails the decode, as in Pillow, although TurboJPEG labels the
    // outcome a warning.
    let len = usize::from(u16::from_be_bytes([clean[sof + 2], clean[sof + 3]]));
    let mut broken = stray[..stray.len() - 2].to_vec();
    broken.extend(&clean[sof..sof + 2 + len]);
    broken.extend([0xFF, 0xD9]);
    let msg = message(&broken);
    assert_eq!(
        msg,
        "cannot decode image: JPEG: Invalid JPEG file structure: two SOF markers"
    );
}

#[test]
fn jpeg_frame_headers_pillow_refuses() {
    let clean = encode(ImageFormat::Jpeg);
    let sof = baseline_sof(&clean);
    let mut twelve_bit = clean.clone();
    twelve_bit[sof + 4] = 12;
    assert_eq!(
        message(&twelve_bit),
        "cannot decode image: JPEG: cannot handle 12-bit layers"
    );
    let mut two_layers = clean;
    two_layers[sof + 9] = 2;
    assert_eq!(
        message(&two_layers),
        "cannot decode image: JPEG: cannot handle 2-layer images"
    );
}

#[test]
fn huge_declared_sizes_are_rejected_before_decoding() {
    // IHDR only, then a tiny IDAT: the limit fires on the header.
    let mut png = png_header(100_000, 100_000);
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", b""));
    let err = decode_rgb(&png, &limits()).unwrap_err();
    assert!(matches!(err, ImagingError::TooManyPixels { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "image is 100000x100000 = 10000000000 pixels, over the limit of 89478485"
    );
    // Even without any image data after the header.
    assert!(matches!(
        decode_rgb(&png_header(100_000, 100_000), &limits()),
        Err(ImagingError::TooManyPixels { .. })
    ));

    // JPEG: patch the SOF dimensions of a real file to 65535x65535.
    let mut jpeg = encode(ImageFormat::Jpeg);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(matches!(
        decode_rgb(&jpeg, &limits()),
        Err(ImagingError::TooManyPixels {
            width: 65535,
            height: 65535,
            ..
        })
    ));

    // GIF: a 65535x65535 logical screen.
    let mut gif = encode(ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0xFF; 4]);
    assert!(matches!(
        decode_rgb(&gif, &limits()),
        Err(ImagingError::TooManyPixels { .. })
    ));

    // A tighter configured limit applies to ordinary images too.
    let small = DecodeLimits {
        max_bytes: u64::MAX,
        max_pixels: 1000,
        ..limits()
    };
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ] {
        let err = decode_rgb(&encode(format), &small).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 64x48 = 3072 pixels, over the limit of 1000",
            "{format:?}"
        );
    }
}

#[test]
fn byte_limit_is_checked_before_anything_else() {
    let tight = DecodeLimits {
        max_bytes: 100,
        max_pixels: u64::MAX,
        ..limits()
    };
    let png = encode(ImageFormat::Png);
    let err = decode_rgb(&png, &tight).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "image file is {} bytes, over the limit of 100 bytes",
            png.len()
        )
    );
    assert!(matches!(
        decode_rgb(&noise(101, 3), &tight),
        Err(ImagingError::TooManyBytes {
            size: 101,
            limit: 100
        })
    ));
}

#[test]
fn zero_sized_images_are_rejected() {
    let mut png = png_header(0, 7);
    png.extend(png_chunk(b"IEND", b""));
    let err = decode_rgb(&png, &limits()).unwrap_err();
    assert_eq!(err.to_string(), "image has zero size (0x7)");

    let mut gif = encode(ImageFormat::Gif);
    gif[6..10].copy_from_slice(&[0; 4]);
    // The frame still has its own size, so the canvas grows to hold it; a
    // zero-sized frame on a zero-sized screen is an empty image.
    let frame = gif.iter().position(|&b| b == 0x2C).unwrap();
    gif[frame + 5..frame + 9].copy_from_slice(&[0; 4]);
    assert!(decode_rgb(&gif, &limits()).is_err());
}

#[test]
fn mutated_files_never_panic() {
    let formats = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ];
    let cfg = PreprocessorConfig::default();
    for (f, format) in formats.into_iter().enumerate() {
        let original = encode(format);
        for round in 0..120u64 {
            let mut bytes = original.clone();
            let r = noise(8, round * 31 + f as u64);
            // Flip a few bytes, skipping the magic so the format decoder runs.
            for k in 0..(1 + r[0] % 4) as usize {
                let at =
                    4 + (usize::from(r[1 + k]) * 131 + round as usize * 17) % (bytes.len() - 4);
                bytes[at] ^= r[5].wrapping_add(k as u8) | 1;
            }
            if round % 3 == 0 {
                bytes.truncate(
                    4 + (usize::from(r[6]) * 97 + round as usize * 13) % (bytes.len() - 4),
                );
            }
            // Either outcome is fine; panicking or hanging is not.
            let _ = preprocess(&bytes, &cfg, &limits());
        }
    }
}

/// Offset of the baseline frame header (SOF0) in an encoded JPEG.
fn baseline_sof(jpeg: &[u8]) -> usize {
    jpeg.windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF")
}

/// A progressive greyscale 8x8 JPEG with `scans` scans: a DC first scan
/// (the successive-approximation bit 1 and up), then DC refinement scans,
/// each one byte of data (refinement bits are raw, no Huffman table). The
/// repeated refinements make libjpeg warn ("inconsistent progression")
/// and go on, as it does for the files of the scan-count attack.
fn progressive_jpeg(scans: usize) -> Vec<u8> {
    let segment = |marker: u8, payload: &[u8]| {
        let mut out = vec![0xFF, marker];
        out.extend(((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    let mut out = vec![0xFF, 0xD8];
    let mut dqt = vec![0];
    dqt.extend([1u8; 64]);
    out.extend(segment(0xDB, &dqt));
    // SOF2: 8-bit, 8x8, one component (id 1, 1x1 sampling, table 0).
    out.extend(segment(0xC2, &[8, 0, 8, 0, 8, 1, 1, 0x11, 0]));
    // DC table 0: one 1-bit code, for difference category 0.
    let mut dht = vec![0x00, 1];
    dht.extend([0u8; 15]);
    dht.push(0);
    out.extend(segment(0xC4, &dht));
    // Scan: component 1 with table 0, Ss = Se = 0, Ah/Al.
    let scan = |ah_al: u8| segment(0xDA, &[1, 1, 0x00, 0, 0, ah_al]);
    out.extend(scan(0x01));
    out.push(0x7F); // code "0" (no difference), padded with ones
    for _ in 1..scans {
        out.extend(scan(0x10));
        out.push(0x7F); // refinement bit 0, padding
    }
    out.extend([0xFF, 0xD9]);
    out
}

#[test]
fn jpeg_scans_over_the_limit_are_refused_before_decoding() {
    // 500 scans decode (and libjpeg-turbo's own scan limit, set to the
    // same value, lets them through); 501 are refused.
    let rgb = decode_rgb(&progressive_jpeg(500), &limits()).unwrap();
    assert_eq!(rgb.dimensions(), (8, 8));
    let err = decode_rgb(&progressive_jpeg(501), &limits()).unwrap_err();
    assert!(matches!(
        err,
        ImagingError::TooManyScans {
            scans: 501,
            limit: 500
        }
    ));
    assert_eq!(err.to_string(), "JPEG has 501 scans, over the limit of 500");
    // Thousands of scans: the same error, from walking the markers only.
    assert_eq!(
        message(&progressive_jpeg(20_000)),
        "JPEG has 20000 scans, over the limit of 500"
    );
    // The limit is a setting; a baseline file has one scan.
    let two = DecodeLimits {
        max_jpeg_scans: 2,
        ..limits()
    };
    assert!(decode_rgb(&progressive_jpeg(2), &two).is_ok());
    assert_eq!(
        decode_rgb(&progressive_jpeg(3), &two)
            .unwrap_err()
            .to_string(),
        "JPEG has 3 scans, over the limit of 2"
    );
    let one = DecodeLimits {
        max_jpeg_scans: 1,
        ..limits()
    };
    assert!(decode_rgb(&encode(ImageFormat::Jpeg), &one).is_ok());
}

/// A 1x1 greyscale PNG with `extra` chunks before its image data.
fn png_with_chunks(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut ihdr = 1u32.to_be_bytes().to_vec();
    ihdr.extend(1u32.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    for chunk in extra {
        out.extend_from_slice(chunk);
    }
    out.extend(png_chunk(b"IDAT", &fdeflate::compress_to_vec(&[0, 0])));
    out.extend(png_chunk(b"IEND", b""));
    out
}

#[test]
fn png_text_is_bounded_like_pillows_and_so_is_discarded_text() {
    let mib = vec![b'x'; 1 << 20];
    let packed = fdeflate::compress_to_vec(&mib[..(1 << 20) - 16]);
    let ztxt = |key: &[u8], stream: &[u8]| {
        let mut data = key.to_vec();
        data.extend([0, 0]);
        data.extend_from_slice(stream);
        png_chunk(b"zTXt", &data)
    };
    // 60 MiB of text is within Pillow's MAX_TEXT_MEMORY...
    assert!(decode_rgb(
        &png_with_chunks(&vec![ztxt(b"Comment", &packed); 60]),
        &limits()
    )
    .is_ok());
    // ... 70 MiB is over it, as in Pillow.
    let err = message(&png_with_chunks(&vec![ztxt(b"Comment", &packed); 70]));
    assert!(
        err.starts_with("cannot decode image: PNG: too much memory used in text chunks ("),
        "{err}"
    );
    assert!(
        err.ends_with("over Pillow's MAX_TEXT_MEMORY of 67108864)"),
        "{err}"
    );
    // Text Pillow inflates and throws away counts too: chunks without a
    // keyword, and streams cut before their checksum (a zlib error).
    let cut = &packed[..packed.len() - 4];
    for chunk in [ztxt(b"", &packed), ztxt(b"Comment", cut)] {
        let err = message(&png_with_chunks(&vec![chunk; 70]));
        assert!(err.contains("too much memory used in text chunks"), "{err}");
    }
}

/// A little-endian TIFF: `entries` (tag, type, count, value) in its first
/// IFD, then `data` (at offset 8 + 2 + 12 * entries + 4).
fn tiff_file(entries: &[(u16, u16, u32, u32)], data: &[u8]) -> Vec<u8> {
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    for &(tag, typ, count, value) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(typ.to_le_bytes());
        out.extend(count.to_le_bytes());
        out.extend(value.to_le_bytes());
    }
    out.extend(0u32.to_le_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn tiff_strips_sharing_their_bytes_run_out_of_time() {
    let (width, rows) = (16u32, 5000u32);
    // One zlib stream for every strip: 20 000 empty stored blocks (nothing
    // out, 5 bytes in each), then the row.
    let mut stream = vec![0x78, 0x01];
    for _ in 0..20_000 {
        stream.extend([0x00, 0x00, 0x00, 0xFF, 0xFF]);
    }
    stream.extend([0x01, 16, 0, !16, 0xFF]);
    stream.extend([0x80; 16]);
    let adler = {
        let (a, b) = (0..16).fold((1u32, 0u32), |(a, b), _| {
            let a = (a + 0x80) % 65521;
            (a, (b + a) % 65521)
        });
        (b << 16) | a
    };
    stream.extend(adler.to_be_bytes());
    let entries = 11u32;
    let offsets_at = 8 + 2 + 12 * entries + 4;
    let counts_at = offsets_at + 4 * rows;
    let data_at = counts_at + 4 * rows;
    let mut data = Vec::new();
    data.extend((0..rows).flat_map(|_| data_at.to_le_bytes()));
    data.extend((0..rows).flat_map(|_| (stream.len() as u32).to_le_bytes()));
    data.extend_from_slice(&stream);
    let tags = |compression: u32| {
        [
            (256, 4, 1, width),       // ImageWidth
            (257, 4, 1, rows),        // ImageLength
            (258, 3, 1, 8),           // BitsPerSample
            (259, 3, 1, compression), // Compression
            (262, 3, 1, 1),           // PhotometricInterpretation: BlackIsZero
            (273, 4, rows, offsets_at),
            (277, 3, 1, 1), // SamplesPerPixel
            (278, 4, 1, 1), // RowsPerStrip
            (279, 4, rows, counts_at),
            (284, 3, 1, 1), // PlanarConfiguration
            (339, 3, 1, 1), // SampleFormat: unsigned
        ]
    };
    assert_eq!(tags(8).len(), entries as usize);
    // Each of the 5000 strips inflates the whole 100 KB (500 MB, seconds
    // of work even in a release build) to get its 16 bytes: stopped at the
    // time limit.
    let quick = DecodeLimits {
        max_decode_ms: 100,
        ..limits()
    };
    let err = decode_rgb(&tiff_file(&tags(8), &data), &quick)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot decode image: TIFF: ")
            && err.contains("decoding took longer than the limit of 100 ms"),
        "{err}"
    );
    // The same layout with strips of their own decodes.
    let mut own = stream.clone();
    own.truncate(2);
    own.extend([0x01, 16, 0, !16, 0xFF]);
    own.extend([0x80; 16]);
    own.extend(adler.to_be_bytes());
    let mut data = Vec::new();
    let own_at = |i: u32| data_at + i * own.len() as u32;
    data.extend((0..rows).flat_map(|i| own_at(i).to_le_bytes()));
    data.extend((0..rows).flat_map(|_| (own.len() as u32).to_le_bytes()));
    data.extend((0..rows).flat_map(|_| own.iter().copied()));
    let rgb = decode_rgb(&tiff_file(&tags(8), &data), &limits()).unwrap();
    assert_eq!(rgb.dimensions(), (width, rows));
    assert!(rgb.pixels().all(|p| p.0 == [0x80; 3]));
    // JPEG compression is refused before its decoder runs.
    assert_eq!(
        message(&tiff_file(&tags(7), &data)),
        "cannot decode image: TIFF: JPEG-compressed TIFF is not supported"
    );
}
