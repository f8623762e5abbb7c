#!/usr/bin/env python3
"""Generate dfscan's hostile-image corpus (issue 6): files a scanner gets from strangers.

    make_hostile_corpus.py OUT_DIR [--model DIR]

Writes OUT_DIR/<file> for every case below, plus

    OUT_DIR/manifest.json   {"model": name or null, "labels": [...], "files": {name: entry}}
        entry for a file that must score (the transformers pipeline opens it):
            {"expect": "score", "case": text, "loaded_size": [w, h],   # after EXIF transpose
             "rgb_sha256": sha256 of load_image(path)'s RGB bytes,
             "exact_pixels": whether dfscan must reproduce those bytes exactly (false only for
                             lossy WebP, decoded by image-webp rather than libwebp),
             "probs": {label: probability} from pipeline(..., top_k=None)   # with --model}
        entry for a file that must fail:
            {"expect": "error", "case": text,
             "kind": "empty" | "unsupported" | "too_many_pixels" | "too_many_scans" | "truncated"
                     | "corrupt",
             "detected": format name dfscan must report (unsupported only),
             "pipeline_opens": why the pipeline opens it all the same (only where it does),
             "pipeline_error": what the pipeline raised (with --model)}
    OUT_DIR/pixels.safetensors   with --model: key = file name, f32 [3,H,W] pixel_values the
                                 pipeline computed, for every file that must score
    OUT_DIR/.complete            written last

Expectations are what dfscan promises: the pipeline's output for every file Pillow + transformers
can open, a per-item error naming the reason otherwise.  With --model the script runs the
pipeline on every file and fails if a file it expects to score does not open there, or one it
expects to fail does (so the manifest cannot drift from the reference).  Files under
tests/hostile/ (inputs the fuzzer found, see crates/imaging/README.md) are copied in; their
expectation is the pipeline's outcome (kind "corrupt" when it fails).

Deterministic: the same package versions give the same bytes.  ~10 s on 2 cores.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHECKED_IN = HERE.parent / "hostile"
sys.path.insert(0, str(HERE))
from make_fixtures import minimal_pdf  # noqa: E402  (same directory)


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def synth(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth gradients plus blocks and noise: uint8 [h, w, 3], asymmetric (EXIF cases)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [
            255 * xx / max(w - 1, 1),
            255 * yy / max(h - 1, 1),
            128 + 100 * np.sin(xx / 5.0 + yy / 7.0),
        ],
        axis=-1,
    )
    for _ in range(4):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        base[y0 : y0 + max(1, h // 4), x0 : x0 + max(1, w // 4)] = rng.integers(0, 256, 3)
    base[: max(1, h // 6), : max(1, w // 3)] = [255, 255, 255]  # marks the stored top-left
    base += rng.normal(0, 8, base.shape)
    return np.clip(np.round(base), 0, 255).astype(np.uint8)


def pil_bytes(im, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def rgb_image(w: int, h: int, seed: int):
    from PIL import Image

    return Image.fromarray(synth(w, h, seed), "RGB")


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_file(width: int, height: int, bit_depth: int, color_type: int, idat: bytes, interlace: int = 0,
             extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def adam7_rows(arr: np.ndarray) -> bytes:
    """The filtered (type 0) scanlines of an Adam7-interlaced 8-bit image, pass by pass."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    out = bytearray()
    for xs, ys, dx, dy in passes:
        sub = arr[ys::dy, xs::dx]
        if sub.size == 0:
            continue
        for row in sub:
            out += b"\x00" + row.tobytes()
    return bytes(out)


def jpeg_segments(data: bytes):
    """(offset, marker, length) of each segment before the first SOS."""
    pos = 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF, pos
        marker = data[pos + 1]
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        yield pos, marker, length
        if marker == 0xDA:
            return
        pos += 2 + length


def patch_sof(data: bytes, width: int, height: int) -> bytes:
    out = bytearray(data)
    for pos, marker, _ in jpeg_segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            out[pos + 5 : pos + 9] = struct.pack(">HH", height, width)
            return bytes(out)
    raise AssertionError("no SOF")


def many_scans_jpeg(progressive: bytes, scans: int) -> bytes:
    """`progressive` with DC refinement scans (Ah=1, Al=0, all components, zero bits) added
    before its EOI until it has `scans` scans: libjpeg warns about the progression and decodes."""
    sof = next((pos, length) for pos, marker, length in jpeg_segments(progressive) if marker == 0xC2)
    pos = sof[0]
    count = progressive[pos + 9]
    ids = [progressive[pos + 10 + 3 * i] for i in range(count)]
    factors = [progressive[pos + 11 + 3 * i] for i in range(count)]
    height, width = struct.unpack(">HH", progressive[pos + 5 : pos + 9])
    hmax, vmax = max(f >> 4 for f in factors), max(f & 15 for f in factors)
    mcus = -(-width // (8 * hmax)) * -(-height // (8 * vmax))
    bits = mcus * sum((f >> 4) * (f & 15) for f in factors)
    sos = (b"\xff\xda" + struct.pack(">HB", 6 + 2 * count, count) + b"".join(bytes([c, 0]) for c in ids)
           + bytes([0, 0, 0x10]))
    have = progressive.count(b"\xff\xda")
    assert progressive.endswith(b"\xff\xd9") and have < scans
    return progressive[:-2] + (sos + bytes(-(-bits // 8))) * (scans - have) + b"\xff\xd9"


def png_ztxt(key: bytes, stream: bytes) -> bytes:
    return png_chunk(b"zTXt", key + b"\0\0" + stream)


def png_with_text(png: bytes, chunks: list[bytes]) -> bytes:
    """`png` with `chunks` inserted after its IHDR."""
    return png[:33] + b"".join(chunks) + png[33:]


def gif_parts(data: bytes) -> tuple[bytes, bytes]:
    """(header + logical screen + global colour table, the first frame's blocks)."""
    flags = data[10]
    head = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    assert data[-1:] == b";"
    return data[:head], data[head:-1]


def iso_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


# --------------------------------------------------------------------------------------------
# the corpus
# --------------------------------------------------------------------------------------------
def score(case: str, exact: bool = True) -> dict:
    return {"expect": "score", "case": case, "exact_pixels": exact}


def error(kind: str, case: str, detected: str | None = None) -> dict:
    entry = {"expect": "error", "case": case, "kind": kind}
    if detected is not None:
        entry["detected"] = detected
    return entry


def refused(kind: str, case: str, pipeline_opens: str) -> dict:
    """A file dfscan refuses although the pipeline opens it (a limit Pillow lacks)."""
    return {**error(kind, case), "pipeline_opens": pipeline_opens}


def build() -> dict[str, tuple[bytes, dict]]:
    from PIL import Image

    files: dict[str, tuple[bytes, dict]] = {}

    def add(name: str, data: bytes, entry: dict) -> None:
        assert name not in files, name
        files[name] = (data, entry)

    rng = np.random.default_rng(6)
    base_jpeg = pil_bytes(rgb_image(96, 64, 1), "JPEG", quality=90)
    prog_jpeg = pil_bytes(rgb_image(96, 64, 2), "JPEG", quality=90, progressive=True)
    base_png = pil_bytes(rgb_image(80, 60, 3), "PNG")
    base_gif = pil_bytes(rgb_image(64, 48, 4).quantize(64), "GIF")
    base_webp = pil_bytes(rgb_image(64, 48, 5), "WEBP", quality=80)

    # --- nothing, or not an image at all ------------------------------------------------------
    add("empty.jpg", b"", error("empty", "0 bytes"))
    add("one_byte.png", b"\x89", error("unsupported", "1 byte (first byte of the PNG magic)", "none"))
    noise = bytearray(rng.integers(0, 256, 8192, dtype=np.uint8).tobytes())
    noise[:4] = b"\x13\x37\x00\x42"
    add("random.jpg", bytes(noise), error("unsupported", "8 KiB of random bytes", "none"))
    add("text.jpg", b"This is not a JPEG, it is a text file named .jpg\n" * 20,
        error("unsupported", "plain text named .jpg", "none"))
    add("page.png", b"<!DOCTYPE html>\n<html><body><img src=x></body></html>\n",
        error("unsupported", "HTML named .png", "HTML"))
    # Random bytes behind each magic number: the decoder itself must refuse them.
    add("random_after_png_magic.png", b"\x89PNG\r\n\x1a\n" + bytes(noise[:2048]),
        error("corrupt", "PNG signature followed by random bytes"))
    add("random_after_jpeg_magic.jpg", b"\xff\xd8\xff" + bytes(noise[:2048]),
        error("corrupt", "JPEG SOI followed by random bytes"))
    add("random_after_gif_magic.gif", b"GIF89a" + bytes(noise[:2048]),
        error("corrupt", "GIF header followed by random bytes"))

    # --- formats recognised but not decoded -----------------------------------------------------
    heic = iso_box(b"ftyp", b"heic" + b"\x00\x00\x00\x00" + b"mif1heic") + iso_box(b"meta", b"\x00" * 24)
    add("photo.heic", heic, error("unsupported", "HEIC (ftyp heic box)", "HEIC/HEIF"))
    add("photo.avif", iso_box(b"ftyp", b"avif\x00\x00\x00\x00avifmif1"),
        error("unsupported", "AVIF (ftyp avif box)", "AVIF"))
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64" fill="#36c"/></svg>\n'
    )
    add("drawing.svg", svg, error("unsupported", "SVG", "SVG"))
    add("document.pdf", minimal_pdf(binary_marker=True), error("unsupported", "PDF 1.4", "PDF"))

    # --- truncated at many points ---------------------------------------------------------------
    for pct in (10, 50, 90):
        add(f"truncated_{pct}.jpg", base_jpeg[: len(base_jpeg) * pct // 100],
            error("truncated", f"baseline JPEG cut at {pct}%"))
        add(f"truncated_{pct}.png", base_png[: len(base_png) * pct // 100],
            error("truncated", f"PNG cut at {pct}%"))
    add("truncated_50_progressive.jpg", prog_jpeg[: len(prog_jpeg) // 2],
        error("truncated", "progressive JPEG cut at 50%"))
    add("no_eoi.jpg", base_jpeg[:-2], error("truncated", "baseline JPEG without its EOI marker"))
    add("truncated_50.gif", base_gif[: len(base_gif) // 2], error("truncated", "GIF cut at 50%"))
    add("truncated_50.webp", base_webp[: len(base_webp) // 2], error("truncated", "lossy WebP cut at 50%"))
    short = synth(64, 64, 9)
    add("png_short_zlib_stream.png",
        png_file(64, 64, 8, 2, zlib.compress(b"".join(b"\x00" + short[r].tobytes() for r in range(10)))),
        score("64x64 PNG whose complete zlib stream holds 10 rows (Pillow leaves the rest black)"))
    def sync_flushed(data: bytes) -> bytes:  # a zlib stream with no end
        c = zlib.compressobj()
        return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

    add("png_stream_ends_mid_row.png",
        png_file(64, 64, 8, 2, zlib.compress(b"".join(b"\x00" + short[r].tobytes() for r in range(10))
                                             + b"\x00" + short[10].tobytes()[:50])),
        error("truncated", "PNG whose complete zlib stream ends in the middle of row 11"))
    add("png_stream_unterminated.png",
        png_file(64, 64, 8, 2, sync_flushed(b"".join(b"\x00" + short[r].tobytes() for r in range(10)))),
        error("truncated", "PNG whose IDAT holds 10 rows of an unterminated zlib stream"))
    full_rows = b"".join(b"\x00" + short[r].tobytes() for r in range(64))
    add("png_bad_adler32.png", png_file(64, 64, 8, 2, zlib.compress(full_rows)[:-4] + b"\0\0\0\0"),
        error("corrupt", "PNG whose zlib stream has a wrong Adler-32 checksum"))
    add("png_interlaced_cut_stream.png",
        png_file(37, 29, 8, 2, zlib.compress(adam7_rows(synth(37, 29, 18))[:1500]), interlace=1),
        error("truncated", "Adam7 PNG whose zlib stream ends inside pass 5"))
    add("png_no_iend_no_crc.png", base_png[:-16],
        score("PNG cut after its image data: no IDAT CRC, no IEND (Pillow stops after the last row)"))
    add("png_no_iend.png", base_png[:-12], score("PNG without its IEND chunk (Pillow never reads IEND)"))

    # --- corrupt but well-formed enough to get to the decoder -----------------------------------
    bad_crc = bytearray(base_png)
    bad_crc[29] ^= 0xFF  # last byte of the IHDR CRC
    add("bad_ihdr_crc.png", bytes(bad_crc), error("corrupt", "PNG whose IHDR checksum is wrong"))
    add("zero_width.png", png_file(0, 16, 8, 2, zlib.compress(b"\x00" * 16)),
        error("corrupt", "PNG IHDR declaring 0x16"))
    scan = next(pos + 2 + length for pos, marker, length in jpeg_segments(base_jpeg) if marker == 0xDA)
    garbled = bytearray(base_jpeg)
    for i in range(scan + 200, scan + 260, 3):
        garbled[i] = (garbled[i] * 7 + 13) & 0xFF
        if garbled[i] == 0xFF:
            garbled[i] = 0xFE
    add("garbled_scan.jpg", bytes(garbled),
        score("JPEG with garbage inside the entropy-coded data (libjpeg warns, Pillow decodes)"))

    # --- declared sizes far beyond the pixel limit ----------------------------------------------
    add("png_100000x100000.png", png_file(100_000, 100_000, 8, 2, zlib.compress(b"\x00" * 301)),
        error("too_many_pixels", "valid IHDR declaring 100000x100000 RGB, tiny IDAT"))
    over = error("too_many_pixels", "IHDR declaring 9459x9460 = 89 482 140 pixels, one row of data")
    # Pillow only warns below 2 * MAX_IMAGE_PIXELS (and leaves rows its zlib stream lacks black)
    over["pipeline_opens"] = "opens (with a DecompressionBombWarning)"
    add("png_one_over_limit.png", png_file(9459, 9460, 8, 0, zlib.compress(b"\x00" * 9460)), over)
    add("jpeg_20000x20000.jpg", patch_sof(base_jpeg, 20000, 20000),
        error("too_many_pixels", "JPEG whose SOF declares 20000x20000"))
    add("jpeg_65535x65535.jpg", patch_sof(base_jpeg, 65535, 65535),
        error("too_many_pixels", "JPEG whose SOF declares 65535x65535"))
    head, frame = gif_parts(base_gif)
    bomb = bytearray(head)
    bomb[6:10] = struct.pack("<HH", 65535, 65535)
    add("gif_bomb_screen.gif", bytes(bomb) + frame + b";",
        error("too_many_pixels", "GIF with a 65535x65535 logical screen around a 64x48 frame"))
    # one 1x1 frame, then a frame descriptor claiming 65535x65535 at offset 0
    tiny_head, tiny_frame = gif_parts(pil_bytes(Image.new("P", (1, 1)), "GIF"))
    big = bytearray(tiny_frame)
    desc = big.index(b"\x2c")
    big[desc + 5 : desc + 9] = struct.pack("<HH", 65535, 65535)
    add("gif_bomb_frame.gif", tiny_head + bytes(big) + b";",
        error("too_many_pixels", "GIF whose first frame declares 65535x65535 (1x1 screen)"))

    # --- CPU bombs: small files whose decoding costs far more than their size -------------------
    # Each progressive scan makes libjpeg walk every block; DC refinement scans need no Huffman
    # table (one raw bit per block), so a scan is 14 bytes of header and 18 of zero bits here.
    add("jpeg_5000_scans.jpg", many_scans_jpeg(prog_jpeg, 5000),
        refused("too_many_scans", "progressive JPEG with 5000 scans (4990 repeated DC refinements)",
                "opens (Pillow sets no scan limit)"))
    mib_text = zlib.compress(b"x" * ((1 << 20) - 16), 9)  # ~1 KiB inflating to just under 1 MiB
    add("png_text_70_mib.png", png_with_text(base_png, [png_ztxt(b"Comment", mib_text)] * 70),
        error("corrupt", "PNG with 70 zTXt chunks of 1 MiB each (over Pillow's MAX_TEXT_MEMORY)"))
    add("png_text_discarded_70_mib.png", png_with_text(base_png, [png_ztxt(b"", mib_text)] * 70),
        refused("corrupt", "PNG with 70 keyword-less zTXt chunks of 1 MiB each, inflated and discarded",
                "opens (Pillow inflates text without a keyword but does not count it)"))
    add("tiff_jpeg.tiff", pil_bytes(rgb_image(30, 20, 23), "TIFF", compression="jpeg"),
        refused("corrupt", "JPEG-compressed TIFF (its decoder bounds neither frame size nor scans)",
                "opens"))

    # --- large but legal: must score, within bounded memory -------------------------------------
    add("jpeg_20000x8.jpg", pil_bytes(rgb_image(20000, 8, 7), "JPEG", quality=85),
        score("real JPEG 20000 pixels wide (over 16384)"))
    add("jpeg_sof_20000_wide.jpg", patch_sof(base_jpeg, 20000, 64),
        score("96x64 JPEG whose SOF says 20000x64: libjpeg pads with grey, Pillow decodes"))
    gray_zeros = b"".join(b"\x00" + bytes(3000) for _ in range(3000))
    add("png_zlib_bomb_3000x3000.png", png_file(3000, 3000, 8, 0, zlib.compress(gray_zeros, 9)),
        score("9 Mpixel greyscale PNG of zeros in ~9 KB (decompression ratio ~1000)"))
    big_screen = bytearray(tiny_head)
    big_screen[6:10] = struct.pack("<HH", 3000, 3000)
    add("gif_big_screen_3000x3000.gif", bytes(big_screen) + tiny_frame + b";",
        score("1x1 GIF frame on a 3000x3000 logical screen"))
    many = pil_bytes(rgb_image(16, 16, 8).quantize(16), "GIF")
    head16, frame16 = gif_parts(many)
    add("gif_20000_frames.gif", head16 + frame16 * 20000 + b";",
        score("20000 frames (the pipeline reads the first)"))

    # --- modes and codings ----------------------------------------------------------------------
    frames = [rgb_image(48, 40, 10 + i).quantize(32) for i in range(3)]
    add("animated.gif", pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0),
        score("3-frame animated GIF"))
    add("interlaced.gif", pil_bytes(rgb_image(50, 37, 11).quantize(48), "GIF", interlace=True),
        score("interlaced GIF"))
    add("cmyk.jpg", pil_bytes(rgb_image(48, 40, 12).convert("CMYK"), "JPEG", quality=90),
        score("CMYK JPEG (Adobe APP14, transform 0)"))
    add("ycck.jpg", ycck_jpeg(), score("YCCK JPEG (Adobe APP14, transform 2)"))
    add("progressive.jpg", prog_jpeg, score("progressive JPEG"))
    add("gray.jpg", pil_bytes(rgb_image(40, 30, 13).convert("L"), "JPEG", quality=90), score("greyscale JPEG"))
    g16 = (synth(45, 35, 14)[..., 0].astype(np.uint32) * 257 // 2).astype(np.uint16)
    g16[:, :15] //= 200  # values under 256 survive Pillow's clipping I;16 -> L
    add("gray16.png", pil_bytes(Image.fromarray(g16), "PNG"), score("16-bit greyscale PNG (I;16)"))
    c16 = synth(33, 27, 15).astype(">u2") * 257
    rows = b"".join(b"\x00" + c16[r].tobytes() for r in range(c16.shape[0]))
    add("rgb16.png", png_file(33, 27, 16, 2, zlib.compress(rows)), score("16-bit RGB PNG"))
    pal = rgb_image(48, 36, 16).quantize(16)
    idx = np.asarray(pal)
    key = int(np.bincount(idx.ravel()).argmax())
    add("palette_trns.png", pil_bytes(pal, "PNG", transparency=key), score("palette PNG with a tRNS key"))
    alphas = bytes(int(a) for a in np.linspace(0, 255, 16))
    add("palette_alpha.png", pil_bytes(pal, "PNG", transparency=alphas),
        score("palette PNG with per-entry tRNS alpha"))
    rgba = np.dstack([synth(40, 40, 17), np.tile(np.linspace(0, 255, 40).astype(np.uint8), (40, 1))])
    add("rgba.png", pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), score("RGBA PNG"))
    inter = synth(37, 29, 18)
    add("interlaced.png", png_file(37, 29, 8, 2, zlib.compress(adam7_rows(inter)), interlace=1),
        score("Adam7-interlaced RGB PNG"))
    add("lossy.webp", base_webp, score("lossy WebP", exact=False))
    add("lossless.webp", pil_bytes(rgb_image(50, 30, 19), "WEBP", lossless=True), score("lossless WebP"))
    anim = [rgb_image(40, 32, 40 + i) for i in range(3)]
    add("animated.webp", pil_bytes(anim[0], "WEBP", save_all=True, append_images=anim[1:], lossless=True),
        score("3-frame animated WebP (lossless)"))
    rgba_webp = Image.fromarray(rgba, "RGBA")
    add("lossy_alpha.webp", pil_bytes(rgba_webp, "WEBP", quality=85), score("lossy WebP with alpha (VP8X + ALPH)", exact=False))
    add("animated.png", pil_bytes(anim[0], "PNG", save_all=True, append_images=anim[1:]),
        score("3-frame APNG (the default image is the first frame)"))
    head_o, frame_o = gif_parts(pil_bytes(rgb_image(16, 16, 43).quantize(16), "GIF"))
    outside = bytearray(frame_o)
    desc = outside.index(b"\x2c")
    outside[desc + 1 : desc + 5] = struct.pack("<HH", 20, 12)
    add("gif_frame_outside_screen.gif", head_o + bytes(outside) + b";",
        score("GIF whose first frame lies outside its 16x16 screen (Pillow grows the canvas)"))
    twelve = bytearray(base_jpeg)
    sof = next(pos for pos, marker, _ in jpeg_segments(base_jpeg) if marker == 0xC0)
    twelve[sof + 4] = 12
    add("jpeg_12bit_header.jpg", bytes(twelve), error("corrupt", "8-bit JPEG whose SOF claims 12-bit samples"))
    add("image.bmp", pil_bytes(rgb_image(30, 20, 20), "BMP"), score("24-bit BMP"))
    add("image.tiff", pil_bytes(rgb_image(30, 20, 21), "TIFF"), score("uncompressed RGB TIFF"))

    # --- EXIF orientations 1-8 (stored 72x48: 5-8 load as 48x72) --------------------------------
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        add(f"exif_orientation_{o}.jpg", pil_bytes(rgb_image(72, 48, 30 + o), "JPEG", quality=92, exif=exif.tobytes()),
            score(f"JPEG with EXIF orientation {o}"))

    # --- found by the fuzzer (crates/imaging/benches/fuzz_decode.rs) ----------------------------
    if CHECKED_IN.is_dir():
        for path in sorted(CHECKED_IN.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.suffix != ".md":
                add(f"fuzz_{path.name}", path.read_bytes(), {"expect": "pipeline", "case": "fuzzer find"})
    return files


def ycck_jpeg() -> bytes:
    """A YCCK JPEG: libjpeg writes Pillow's CMYK images as plain CMYK (Adobe transform 0), so the
    YCCK samples are computed here, stored through Pillow's CMYK path (which inverts what it
    writes) and the Adobe marker's transform byte switched to 2 (YCCK)."""
    from PIL import Image

    rgb = synth(48, 40, 22).astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # libjpeg's YCCK -> CMYK gives 255 - R, 255 - G, 255 - B of the YCC part, K as stored.
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    k = np.tile(np.linspace(60, 255, 48), (40, 1))
    stored = np.clip(np.round(np.stack([y, cb, cr, k], axis=-1)), 0, 255).astype(np.uint8)
    data = bytearray(pil_bytes(Image.fromarray(255 - stored, "CMYK"), "JPEG", quality=92))
    at = data.find(b"Adobe")
    assert at > 0 and data[at - 4 : at - 2] == b"\xff\xee", "Pillow wrote no Adobe marker"
    assert data[at + 11] == 0, "expected transform 0 (CMYK)"
    data[at + 11] = 2
    out = bytes(data)
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.mode == "CMYK", im.mode
        assert np.asarray(im.convert("RGB")).std() > 20, "YCCK decode looks degenerate"
    return out


# --------------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------------
def loaded(path: Path) -> dict:
    from transformers.image_utils import load_image

    im = load_image(str(path))
    return {"loaded_size": list(im.size), "rgb_sha256": hashlib.sha256(np.asarray(im).tobytes()).hexdigest()}


def reference(out: Path, files: dict[str, tuple[bytes, dict]], model: Path | None) -> dict:
    """Runs the pipeline over every file and fills in the manifest entries."""
    import warnings

    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    pipe = captured = None
    labels = None
    if model is not None:
        import torch
        from transformers import pipeline

        sys.path.insert(0, str(HERE))
        import make_checkpoint  # noqa: E402

        make_checkpoint._quiet_transformers()
        pipe = pipeline("image-classification", model=str(model), device=-1, dtype=torch.float32)
        labels = [pipe.model.config.id2label[i] for i in range(len(pipe.model.config.id2label))]
        captured = {}
        orig = pipe.preprocess

        def pre(*a, **k):
            res = orig(*a, **k)
            captured["pixel_values"] = res["pixel_values"].detach().to(torch.float32).clone()
            return res

        pipe.preprocess = pre

    manifest, pixels = {}, {}
    for name, (_, entry) in sorted(files.items()):
        path = out / name
        entry = dict(entry)
        try:
            info = loaded(path)
            opened, why = True, None
        except Exception as e:  # noqa: BLE001 - whatever load_image raises is the reference
            opened, why = False, f"{type(e).__name__}: {str(e).replace(str(out), '<corpus>')[:200]}"
        if entry["expect"] == "pipeline":  # fuzzer finds: the reference decides
            entry["expect"] = "score" if opened else "error"
            entry["exact_pixels" if opened else "kind"] = True if opened else "corrupt"
        if entry["expect"] == "score":
            if not opened:
                raise RuntimeError(f"{name}: expected to open, load_image raised {why}")
            entry.update(info)
            if pipe is not None:
                res = pipe(str(path), top_k=None)
                entry["probs"] = {r["label"]: float(r["score"]) for r in res}
                pixels[name] = captured["pixel_values"][0].contiguous()
        else:
            if opened and not entry.get("pipeline_opens"):
                raise RuntimeError(f"{name}: expected a failure, load_image opened it: {info}")
            entry["pipeline_error"] = why if not opened else entry["pipeline_opens"]
        manifest[name] = entry
    if pixels:
        from safetensors.torch import save_file

        save_file(pixels, str(out / "pixels.safetensors"), metadata={"source": "transformers pipeline"})
    return {"model": model.name if model else None, "labels": labels, "files": manifest}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--model", help="checkpoint directory for the reference probabilities")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    files = build()
    for name, (data, _) in files.items():
        (out / name).write_bytes(data)
    manifest = reference(out, files, Path(args.model) if args.model else None)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / ".complete").write_text("ok\n")
    n_score = sum(e["expect"] == "score" for e in manifest["files"].values())
    print(f"{len(files)} files ({n_score} must score, {len(files) - n_score} must fail) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
