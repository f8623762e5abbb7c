"""Reference outputs for tests/pillow_parity.rs, produced by the stack dfscan
reproduces: transformers 5.24 (`load_image`, `ViTImageProcessorPil`) on
Pillow 13.

Usage: pillow_reference.py OUTDIR

Writes fixture files (made with Pillow, plus hand-built PNG/GIF/JPEG variants
that Pillow cannot write), Pillow's decode of each, `Image.resize` outputs for
random images, and full processor outputs, all as raw .bin files described by
OUTDIR/manifest.json. Everything is deterministic (fixed seeds).
"""

import io
import json
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from transformers import ViTImageProcessorPil
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import load_image

warnings.simplefilter("ignore")

OUT = Path(sys.argv[1])
OUT.mkdir(parents=True, exist_ok=True)
RNG = np.random.default_rng(20240611)


def photo(h, w, seed):
    """Smooth gradients and blobs with mild noise: JPEG-friendly content."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [
            128 + 100 * np.sin(x / max(w, 1) * 6.3 + r.uniform(0, 6)),
            128 + 100 * np.cos(y / max(h, 1) * 4.1 + r.uniform(0, 6)),
            255 * (x + y) / max(w + h, 1),
        ],
        axis=-1,
    )
    img += r.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def noise(h, w, channels=3, seed=0):
    r = np.random.default_rng(seed)
    shape = (h, w) if channels == 1 else (h, w, channels)
    return r.integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- raw writers


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(w, h, depth, ctype, rows, before=b"", after=b"", plte=None, trns=None, interlace=0):
    """A PNG from pre-packed rows (filter byte 0 added here)."""
    if interlace:
        raw = rows  # already the concatenated filtered passes
    else:
        raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += before + chunk(b"IDAT", zlib.compress(raw)) + after + chunk(b"IEND", b"")
    return out


def pack_bits(values, depth):
    """Packs sub-byte samples MSB first."""
    out = bytearray()
    acc, n = 0, 0
    for v in values:
        acc = (acc << depth) | int(v)
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def adam7(arr):
    """Filtered Adam7 pass data for an 8-bit RGB array."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = arr[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        data += b"".join(b"\0" + row.tobytes() for row in sub)
    return data


def tiff_ifd(entries):
    """Little-endian EXIF TIFF block with (tag, type, count, 4-byte field)."""
    out = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, count, field in entries:
        out += struct.pack("<HHI", tag, typ, count) + field
    return out + struct.pack("<I", 0)


def exif_orientation(n):
    return tiff_ifd([(274, 3, 1, struct.pack("<HH", n, 0))])


def pil_save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def jpeg_insert_after_soi(data, segment):
    return data[:2] + segment + data[2:]


def app1(payload):
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


# ---------------------------------------------------------------- fixtures

fixtures = []  # (name, bytes, compare) with compare in {"exact", "bounded"} (lossy WebP)


def add(name, data, compare="exact"):
    fixtures.append((name, data, compare))


asym = photo(24, 40, 1)  # wider than tall: every orientation is distinguishable

# PNG written by Pillow
add("png_rgb.png", pil_save(Image.fromarray(noise(29, 37, seed=1)), "PNG"))
rgba = noise(23, 31, 4, seed=2)
rgba[::3, ::2, 3] = 0
add("png_rgba.png", pil_save(Image.fromarray(rgba, "RGBA"), "PNG"))
add("png_l.png", pil_save(Image.fromarray(noise(17, 19, 1, seed=3), "L"), "PNG"))
add("png_la.png", pil_save(Image.fromarray(noise(13, 21, 2, seed=4), "LA"), "PNG"))
pal = Image.fromarray(noise(19, 23, 1, seed=5) % 200, "L").convert("P")
pal.putpalette(list(noise(1, 200, 3, seed=6).reshape(-1)))
add("png_p.png", pil_save(pal, "PNG"))
add("png_p_trns_index.png", pil_save(pal, "PNG", transparency=5))
add("png_p_trns_alpha.png", pil_save(pal, "PNG", transparency=bytes(range(0, 200, 2))))
add("png_i16.png", pil_save(Image.fromarray(np.random.default_rng(7).integers(0, 700, (11, 9)).astype(np.uint16)), "PNG"))
add("png_1bit.png", pil_save(Image.fromarray(noise(9, 13, 1, seed=8) > 127), "PNG"))
add("png_exif6.png", pil_save(Image.fromarray(asym), "PNG", exif=exif_orientation(6)))

# PNG built by hand: depths and chunk layouts Pillow does not write
w, h = 7, 5
rgb16 = np.random.default_rng(9).integers(0, 65536, (h, w, 3)).astype(">u2")
add("png_rgb16.png", png_bytes(w, h, 16, 2, [r.tobytes() for r in rgb16]))
rgba16 = np.random.default_rng(10).integers(0, 65536, (h, w, 4)).astype(">u2")
add("png_rgba16.png", png_bytes(w, h, 16, 6, [r.tobytes() for r in rgba16]))
la16 = np.random.default_rng(11).integers(0, 65536, (h, w, 2)).astype(">u2")
add("png_la16.png", png_bytes(w, h, 16, 4, [r.tobytes() for r in la16]))
g16 = np.random.default_rng(12).integers(0, 600, (h, w)).astype(">u2")
add("png_gray16_raw.png", png_bytes(w, h, 16, 0, [r.tobytes() for r in g16]))
for depth in (2, 4):
    vals = np.random.default_rng(13 + depth).integers(0, 1 << depth, (h, 11))
    add(f"png_gray{depth}.png", png_bytes(11, h, depth, 0, [pack_bits(r, depth) for r in vals]))
# 4-bit palette with 5 entries and indices past the end (Pillow: black)
idx = np.random.default_rng(16).integers(0, 16, (h, 9))
add("png_p4_short_palette.png", png_bytes(9, h, 4, 3, [pack_bits(r, 4) for r in idx], plte=bytes(range(10, 25))))
inter = noise(13, 11, seed=17)
add("png_interlaced.png", png_bytes(11, 13, 8, 2, adam7(inter), interlace=1))
# tRNS keys that survive convert("RGB") (they matter with do_convert_rgb)
grey = np.array([[44, 255, 44, 7]], dtype=np.uint8)
add("png_l_trns.png", png_bytes(4, 1, 8, 0, [grey[0].tobytes()], trns=struct.pack(">H", 44)))
rgb8 = np.array([[1, 2, 3, 4, 5, 6, 4, 5, 6]], dtype=np.uint8)
add("png_rgb_trns.png", png_bytes(3, 1, 8, 2, [rgb8[0].tobytes()], trns=struct.pack(">3H", 4, 5, 6)))
add(
    "png_rgb16_trns.png",
    png_bytes(2, 1, 16, 2, [struct.pack(">6H", 0x1234, 0x5678, 0x9ABC, 0x3400, 0x7800, 0xBC00)], trns=struct.pack(">3H", 0x1234, 0x5678, 0x9ABC)),
)
add("png_i16_trns.png", png_bytes(3, 1, 16, 0, [struct.pack(">3H", 300, 44, 0)], trns=struct.pack(">H", 0x012C)))
add("png_1bit_trns0.png", png_bytes(8, 1, 1, 0, [bytes([0b10100000])], trns=struct.pack(">H", 0)))
add("png_p_trns_newline.png", png_bytes(2, 1, 8, 3, [bytes([0, 1])], plte=bytes([10, 20, 30, 40, 50, 60]), trns=b"\x00\n"))
# orientation carried in other PNG places
arows = [r.tobytes() for r in asym]
add("png_exif3_after_idat.png", png_bytes(40, 24, 8, 2, arows, after=chunk(b"eXIf", exif_orientation(3))))
xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
add("png_xmp8.png", png_bytes(40, 24, 8, 2, arows, before=chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp)))
raw_hex = exif_orientation(5).hex()
profile = f"\nexif\n{len(exif_orientation(5)):8}\n{raw_hex[:40]}\n{raw_hex[40:]}\n".encode()
add("png_raw_profile5.png", png_bytes(40, 24, 8, 2, arows, before=chunk(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(profile))))
add("png_bad_crc.png", png_bytes(3, 1, 8, 2, [bytes(9)], before=chunk(b"tEXt", b"a\0b")[:-1] + b"\0"))

# JPEG (libjpeg-turbo, as in Pillow: exact)
ph = photo(61, 83, 20)
add("jpeg_420.jpg", pil_save(Image.fromarray(ph), "JPEG", quality=90))
add("jpeg_422.jpg", pil_save(Image.fromarray(ph), "JPEG", quality=90, subsampling=1))
add("jpeg_444.jpg", pil_save(Image.fromarray(ph), "JPEG", quality=95, subsampling=0))
add("jpeg_progressive.jpg", pil_save(Image.fromarray(ph), "JPEG", quality=85, progressive=True))
add("jpeg_gray.jpg", pil_save(Image.fromarray(ph[..., 0], "L"), "JPEG", quality=90))
add("jpeg_cmyk.jpg", pil_save(Image.fromarray(ph).convert("CMYK"), "JPEG", quality=95))
# The same file labelled YCCK (Adobe transform 2): libjpeg converts it to CMYK.
adobe = pil_save(Image.fromarray(ph).convert("CMYK"), "JPEG", quality=95)
transform = adobe.index(b"\xff\xee") + 4 + 11
assert adobe[transform - 11 : transform - 6] == b"Adobe" and adobe[transform] == 0
add("jpeg_ycck.jpg", adobe[:transform] + b"\x02" + adobe[transform + 1 :])
add("jpeg_1x1.jpg", pil_save(Image.fromarray(ph[:1, :1]), "JPEG"))
add("jpeg_odd_17x9.jpg", pil_save(Image.fromarray(ph[:9, :17]), "JPEG", quality=90))
add("jpeg_noise.jpg", pil_save(Image.fromarray(noise(64, 64, seed=21)), "JPEG", quality=75))
add("jpeg_large_photo.jpg", pil_save(Image.fromarray(photo(480, 640, 22)), "JPEG", quality=88))
for n in range(1, 9):
    e = Image.Exif()
    e[274] = n
    add(f"jpeg_exif{n}.jpg", pil_save(Image.fromarray(asym), "JPEG", quality=92, exif=e))
plain = pil_save(Image.fromarray(asym), "JPEG", quality=92)
add("jpeg_xmp6.jpg", jpeg_insert_after_soi(plain, app1(b"http://ns.adobe.com/xap/1.0/\0" + b'<x tiff:Orientation="6"/>')))
add("jpeg_bad_exif_nodpi.jpg", jpeg_insert_after_soi(plain, app1(b"Exif\0\0JUNKJUNKJUNK")))
with_dpi = pil_save(Image.fromarray(asym), "JPEG", quality=92, dpi=(300, 300))
add("jpeg_bad_exif_dpi.jpg", with_dpi[:20] + app1(b"Exif\0\0JUNKJUNKJUNK") + with_dpi[20:])
# libjpeg warnings (corrupt but recoverable data: stray bytes, scans cut short
# but closed by EOI) that Pillow ignores, and errors, after a warning or not,
# that it does not
sof = plain.index(b"\xff\xc0")
sof_segment = plain[sof : sof + 2 + struct.unpack(">H", plain[sof + 2 : sof + 4])[0]]
stray = plain[:sof] + b"\x00\x12\x34" + plain[sof:]  # libjpeg warns before the frame
add("jpeg_extraneous_bytes.jpg", stray)
add("jpeg_warning_then_error.jpg", stray[:-2] + sof_segment + b"\xff\xd9")
add("jpeg_error_after_scan.jpg", plain[:-2] + sof_segment + b"\xff\xd9")
sos = plain.index(b"\xff\xda")
add("jpeg_cut_scan_eoi.jpg", plain[: (sos + len(plain)) // 2] + b"\xff\xd9")
prog = pil_save(Image.fromarray(ph), "JPEG", quality=85, progressive=True)
add("jpeg_progressive_cut_eoi.jpg", prog[: len(prog) // 2] + b"\xff\xd9")

# GIF
gp = Image.fromarray(noise(15, 21, 1, seed=30) % 64, "L").convert("P")
gp.putpalette(list(noise(1, 64, 3, seed=31).reshape(-1)))
add("gif_basic.gif", pil_save(gp, "GIF"))
add("gif_trns.gif", pil_save(gp, "GIF", transparency=3))
add("gif_gray.gif", pil_save(Image.fromarray(noise(9, 12, 1, seed=32), "L"), "GIF"))
frames = [gp, Image.fromarray(noise(15, 21, 1, seed=33) % 64, "L").convert("P")]
add("gif_animated.gif", pil_save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50))


def regrid_gif(data, screen, offset):
    """Enlarges the logical screen and moves the first frame."""
    out = bytearray(data)
    out[6:10] = struct.pack("<HH", *screen)
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while out[pos] == 0x21:  # skip extensions
        pos += 2
        while out[pos]:
            pos += out[pos] + 1
        pos += 1
    assert out[pos] == 0x2C
    out[pos + 1 : pos + 5] = struct.pack("<HH", *offset)
    return bytes(out)


add("gif_offset.gif", regrid_gif(pil_save(gp, "GIF"), (30, 20), (5, 3)))
add("gif_offset_trns.gif", regrid_gif(pil_save(gp, "GIF", transparency=7), (30, 20), (5, 3)))

# BMP, TIFF, WebP
add("bmp_rgb.bmp", pil_save(Image.fromarray(noise(13, 17, seed=40)), "BMP"))
add("bmp_p.bmp", pil_save(pal, "BMP"))
add("tiff_rgb.tif", pil_save(Image.fromarray(noise(13, 17, seed=41)), "TIFF"))
add("tiff_lzw.tif", pil_save(Image.fromarray(ph), "TIFF", compression="tiff_lzw"))
add("tiff_l.tif", pil_save(Image.fromarray(ph[..., 1], "L"), "TIFF"))
add("tiff_orient6.tif", pil_save(Image.fromarray(asym), "TIFF", tiffinfo={274: 6}))
add("webp_lossless.webp", pil_save(Image.fromarray(noise(21, 19, seed=42)), "WEBP", lossless=True))
add("webp_lossless_rgba.webp", pil_save(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True))
e6 = Image.Exif()
e6[274] = 6
add("webp_exif6.webp", pil_save(Image.fromarray(asym), "WEBP", lossless=True, exif=e6))
add("webp_lossy.webp", pil_save(Image.fromarray(ph), "WEBP", quality=80), "bounded")
lossy_rgba = np.dstack([ph, (np.arange(ph.shape[1])[None, :] * 3 % 256).repeat(ph.shape[0], 0).astype(np.uint8)])
add("webp_lossy_rgba.webp", pil_save(Image.fromarray(lossy_rgba, "RGBA"), "WEBP", quality=80), "bounded")
wframes = [Image.fromarray(noise(21, 19, seed=43)), Image.fromarray(noise(21, 19, seed=44))]
add("webp_animated.webp", pil_save(wframes[0], "WEBP", lossless=True, save_all=True, append_images=wframes[1:]))
add("tiff_i16.tif", pil_save(Image.fromarray(np.random.default_rng(45).integers(0, 900, (9, 11)).astype(np.uint16)), "TIFF"))
add("bmp_rgba.bmp", pil_save(Image.fromarray(rgba, "RGBA"), "BMP"))
shapes = np.zeros((160, 240, 3), np.uint8)
for i, (y0, x0, hh, ww) in enumerate(np.random.default_rng(25).integers(0, 200, (40, 4))):
    shapes[y0 % 160 : y0 % 160 + hh % 60 + 3, x0 : x0 + ww % 80 + 3] = np.random.default_rng(i).integers(0, 2, 3) * 255
add("jpeg_sharp_colours.jpg", pil_save(Image.fromarray(shapes), "JPEG", quality=95))
add("jpeg_sharp_colours_q70.jpg", pil_save(Image.fromarray(shapes), "JPEG", quality=70))
add("jpeg_photo_odd.jpg", pil_save(Image.fromarray(photo(479, 641, 23)), "JPEG", quality=80))
add("jpeg_photo_q50_progressive.jpg", pil_save(Image.fromarray(photo(301, 399, 24)), "JPEG", quality=50, progressive=True))

# Truncations: Pillow's verdict (usually an error) is the expectation
base_png = {n: d for n, d, _ in fixtures}["png_rgb.png"]
for cut in (8, 20, 33, 60, len(base_png) // 2, len(base_png) - 30):
    add(f"trunc_png_{cut}.png", base_png[:cut])
base_jpg = {n: d for n, d, _ in fixtures}["jpeg_420.jpg"]
for cut in (3, 20, 200, len(base_jpg) // 2, len(base_jpg) - 2, len(base_jpg) - 1):
    add(f"trunc_jpeg_{cut}.jpg", base_jpg[:cut])
base_gif = {n: d for n, d, _ in fixtures}["gif_basic.gif"]
for cut in (10, len(base_gif) // 2, len(base_gif) - 1):
    add(f"trunc_gif_{cut}.gif", base_gif[:cut])

# ---------------------------------------------------------------- outputs

PIPELINE_CONFIGS = [
    {},
    {"size": {"height": 30, "width": 40}, "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True},
    {"size": {"height": 5, "width": 17}, "resample": 0, "do_rescale": False},
    {"size": {"height": 64, "width": 48}, "resample": 1, "rescale_factor": 0.5, "do_normalize": False},
]
PIPELINE_FIXTURES = ["png_rgb.png", "png_p_trns_index.png", "png_rgb_trns.png", "gif_trns.gif", "png_exif6.png", "jpeg_420.jpg", "jpeg_exif6.jpg"]

manifest = {"decode": [], "resize": [], "pipeline": []}

for name, data, compare in fixtures:
    path = OUT / name
    path.write_bytes(data)
    case = {"name": name, "compare": compare}
    try:
        im = load_image(str(path))
        arr = np.asarray(im, dtype=np.uint8)
        proc = convert_to_rgb(im, return_numpy=True)
        (OUT / f"{name}.rgb.bin").write_bytes(arr.tobytes())
        (OUT / f"{name}.proc.bin").write_bytes(np.ascontiguousarray(proc, dtype=np.uint8).tobytes())
        case.update(ok=True, width=im.width, height=im.height)
    except Exception as exc:  # noqa: BLE001 - Pillow's verdict is the data
        case.update(ok=False, error=f"{type(exc).__name__}: {exc}")
    manifest["decode"].append(case)

for name in PIPELINE_FIXTURES:
    compare = {n: c for n, _, c in fixtures}[name]
    for i, cfg in enumerate(PIPELINE_CONFIGS):
        proc = ViTImageProcessorPil(**cfg)
        pv = proc(images=load_image(str(OUT / name)), return_tensors="np")["pixel_values"][0]
        assert pv.dtype == np.float32
        out = f"{name}.pipe{i}.bin"
        (OUT / out).write_bytes(np.ascontiguousarray(pv).tobytes())
        manifest["pipeline"].append({"file": name, "compare": compare, "config": cfg, "shape": list(pv.shape), "pixel_values": out})

RESIZES = {
    (1, 1): [(1, 1), (3, 5), (224, 224)],
    (3, 5): [(1, 1), (7, 11), (2, 3), (224, 224)],
    (5, 3): [(2000, 17), (40, 30)],
    (7, 200): [(224, 224), (30, 40), (7, 13)],
    (224, 224): [(224, 224), (30, 40), (223, 225), (448, 300)],
    # both sides of Pillow 13's pass-order switch (vertical first iff the
    # height loses more than twice as many pixels as the width)
    (100, 100): [(75, 50), (76, 50), (51, 2), (52, 2)],
    (37, 91): [(10, 30), (30, 10), (12, 40)],
    (200, 100): [(300, 50), (175, 50), (176, 50)],
    (1000, 333): [(224, 224), (30, 40), (1000, 332), (999, 333)],
    (333, 1000): [(224, 224)],
    (2000, 1500): [(224, 224), (30, 40), (1, 1)],
}
for k, ((sw, sh), targets) in enumerate(RESIZES.items()):
    src = noise(sh, sw, seed=100 + k)
    src_name = f"resize_src_{sw}x{sh}.bin"
    (OUT / src_name).write_bytes(src.tobytes())
    img = Image.fromarray(src)
    for tw, th in targets:
        for f in (0, 1, 2, 3, 4, 5, 6, 7):
            out = img.resize((tw, th), resample=f, reducing_gap=None)
            out_name = f"resize_{sw}x{sh}_to_{tw}x{th}_f{f}.bin"
            (OUT / out_name).write_bytes(np.asarray(out).tobytes())
            manifest["resize"].append({"src": src_name, "src_w": sw, "src_h": sh, "dst_w": tw, "dst_h": th, "filter": f, "out": out_name})

(OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))
print(f"wrote {len(manifest['decode'])} decode, {len(manifest['resize'])} resize, {len(manifest['pipeline'])} pipeline cases to {OUT}")
