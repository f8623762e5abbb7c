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
