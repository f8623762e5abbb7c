#!/usr/bin/env python3
"""Generate dfscan's parity-test fixtures (deterministic; idempotent; ~10-20 s on 2 cores).

    make_fixtures.py OUT_DIR [--force]

Writes
    OUT_DIR/models/tiny-a, OUT_DIR/models/tiny-b   random-weight HF checkpoints (make_checkpoint.py)
    OUT_DIR/images/*                               fixture images dfscan must score
    OUT_DIR/bad/*                                  files that must give a per-item error
    OUT_DIR/reference.json    {model: {image: {"probs": [...], "label": str, "logits": [...]}}}
                              probs in class-index order, from
                              pipeline("image-classification", model=DIR, top_k=None)(path);
                              logits from the model run on the pipeline's pixel_values
    OUT_DIR/pixels-<model>.safetensors   key = image file name, float32 [1,3,H,W] pixel_values
                                         exactly as the pipeline computed them
    OUT_DIR/logits-<model>.safetensors   key = image file name, float32 [1,num_labels] logits
                                         (model.eval(), torch.no_grad(), fp32)
    OUT_DIR/meta.json         versions, processor class, id2label, decoded image sizes/modes,
                              and what the pipeline does with each file in bad/
    OUT_DIR/.complete         written last; holds a stamp of the generator sources + versions

If OUT_DIR/.complete already holds the current stamp the script does nothing.  Otherwise it
builds everything in a temporary sibling directory and swaps it into place, under a lock file,
so concurrent callers (parallel test binaries) are safe.  An existing non-empty OUT_DIR without
.complete is refused unless --force.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import shutil
import struct
import sys
import time
import zlib
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_checkpoint  # noqa: E402  (same directory)

MODELS = {"tiny-a": dict(preset="tiny-a", seed=1), "tiny-b": dict(preset="tiny-b", seed=2)}
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# synthetic image content
# --------------------------------------------------------------------------------------------
def _seed(name: str) -> int:
    return zlib.crc32(name.encode()) & 0xFFFFFFFF


def synth_rgb(w: int, h: int, seed: int | str, noise: float = 10.0, marker: bool = False) -> np.ndarray:
    """Varied, deterministic content: a two-colour gradient, random shapes, stripes and noise.
    Returns uint8 [h, w, 3].  marker=True adds an asymmetric top-left marker (for EXIF tests)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(_seed(seed) if isinstance(seed, str) else seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx /= max(w - 1, 1)
    yy /= max(h - 1, 1)
    theta = rng.uniform(0, 2 * np.pi)
    t = (np.cos(theta) * xx + np.sin(theta) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    base = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 7))):
        kind = int(rng.integers(0, 4))
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, 2) * w)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, 2) * h)
        box = [x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)]
        if kind == 0:
            draw.ellipse(box, fill=col)
        elif kind == 1:
            draw.rectangle(box, fill=col)
        elif kind == 2:
            pts = [(float(rng.uniform(0, w)), float(rng.uniform(0, h))) for _ in range(3)]
            draw.polygon(pts, fill=col)
        else:
            draw.line(box, fill=col, width=max(1, int(min(w, h) * 0.06)))
    arr = np.asarray(img).astype(np.float32)
    if rng.uniform() < 0.7:  # stripes
        f = rng.uniform(3, 12)
        arr += 25 * np.sin(2 * np.pi * f * (xx if rng.uniform() < 0.5 else yy))[..., None]
    if marker:
        mh, mw = max(1, h // 4), max(1, w // 4)
        arr[:mh, :mw] = [255, 255, 255]
        arr[: max(1, h // 12), :] = [255, 0, 0]
    arr += rng.normal(0, noise, arr.shape)
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand (filter byte already in raw_rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# fixture images
# --------------------------------------------------------------------------------------------
def write_images(d: Path) -> list[str]:
    from PIL import Image

    d.mkdir(parents=True)
    names = []

    def save(name, im, **kw):
        im.save(d / name, **kw)
        names.append(name)

    rgb = lambda w, h, name, **k: Image.fromarray(synth_rgb(w, h, name, **k), "RGB")  # noqa: E731

    # JPEG: baseline 4:2:0 and progressive
    save("rgb.jpg", rgb(64, 48, "rgb.jpg"), quality=90, subsampling=2, progressive=False, optimize=False)
    save("progressive.jpg", rgb(80, 60, "progressive.jpg"), quality=88, subsampling=2, progressive=True)

    # RGBA with varying alpha (the pipeline's convert("RGB") drops alpha, no compositing)
    a = synth_rgb(56, 56, "rgba.png")
    yy, xx = np.mgrid[0:56, 0:56]
    alpha = np.clip(xx * 4.6, 0, 255).astype(np.uint8)
    alpha[(yy - 28) ** 2 + (xx - 20) ** 2 < 100] = 0
    alpha[40:, 40:] = 128
    save("rgba.png", Image.fromarray(np.dstack([a, alpha])))

    # grayscale
    g = Image.fromarray(synth_rgb(50, 70, "gray.png"), "RGB").convert("L")
    save("gray.png", g)
    save("gray.jpg", Image.fromarray(synth_rgb(72, 52, "gray.jpg"), "RGB").convert("L"), quality=90)

    # palette, palette + tRNS (the transparent entry is magenta; convert("RGB") keeps the colour)
    pal = rgb(60, 45, "palette.png").quantize(colors=48, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("palette.png", pal)
    pt = rgb(48, 64, "palette_trns.png").quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    idx = np.asarray(pt)
    k = int(np.bincount(idx.ravel()).argmax())
    palette = pt.getpalette()
    palette[3 * k : 3 * k + 3] = [255, 0, 255]
    pt.putpalette(palette)
    idx = idx.copy()
    idx[8:30, 6:30] = k  # a solid transparent block too (~17% of pixels are index k)
    pt = Image.fromarray(idx.astype(np.uint8), "P")
    pt.putpalette(palette)
    save("palette_trns.png", pt, transparency=k)

    # gray + alpha
    l = np.asarray(Image.fromarray(synth_rgb(40, 40, "la.png"), "RGB").convert("L"))
    la_alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (40, 1)).T
    save("la.png", Image.fromarray(np.dstack([l, la_alpha])))

    # 16-bit grayscale.  Pillow's I;16 -> RGB conversion CLIPS values at 255 (no scaling), so a
    # full-range image loads as solid white: the right 60% uses the full 16-bit range, the left
    # 40% holds values 0..255 only, so the reference image is not constant and an
    # implementation that scales (v / 257) instead of clipping is caught.
    g8 = np.asarray(Image.fromarray(synth_rgb(45, 35, "gray16.png"), "RGB").convert("L")).astype(np.int64)
    rng = np.random.default_rng(_seed("gray16.png"))
    g16 = g8 * 257 + rng.integers(-100, 100, g8.shape)
    g16[:, :18] = g8[:, :18]
    g16 = np.clip(g16, 0, 65535).astype(np.uint16)
    save("gray16.png", Image.fromarray(g16))

    # EXIF orientation: stored landscape 72x48 with a marker in the stored top-left corner
    for o in (6, 3, 8):
        name = f"exif_rot{o}.jpg"
        im = Image.fromarray(synth_rgb(72, 48, name, marker=True), "RGB")
        exif = Image.Exif()
        exif[0x0112] = o
        save(name, im, quality=92, exif=exif.tobytes())

    save("wide.png", rgb(300, 100, "wide.png"))
    save("tall.jpg", rgb(90, 400, "tall.jpg"), quality=90)
    save("tiny_1x1.png", Image.new("RGB", (1, 1), (200, 60, 30)))
    save("tiny_3x5.png", rgb(3, 5, "tiny_3x5.png", noise=40))
    save("large.jpg", rgb(2000, 1500, "large.jpg"), quality=90)
    save("photo.webp", rgb(64, 64, "photo.webp"), lossless=True, quality=100, method=4)

    # animated GIF, 2 very different frames (the pipeline uses frame 0)
    f0 = rgb(48, 40, "anim.gif#0").quantize(colors=64, dither=Image.Dither.NONE)
    f1 = Image.fromarray(255 - synth_rgb(48, 40, "anim.gif#1"), "RGB").quantize(colors=64, dither=Image.Dither.NONE)
    save("anim.gif", f0, save_all=True, append_images=[f1], duration=120, loop=0)

    # extras beyond the basic list: 16-bit RGB PNG (Pillow keeps the high byte) and CMYK JPEG
    c16 = synth_rgb(33, 27, "rgb16.png").astype(np.uint32) * 257
    c16 = np.clip(c16 + np.random.default_rng(_seed("rgb16.png")).integers(-90, 90, c16.shape), 0, 65535)
    rows = b"".join(b"\x00" + c16[r].astype(">u2").tobytes() for r in range(c16.shape[0]))
    (d / "rgb16.png").write_bytes(png_bytes(33, 27, 16, 2, rows))
    names.append("rgb16.png")
    save("cmyk.jpg", rgb(40, 56, "cmyk.jpg").convert("CMYK"), quality=90)

    return sorted(names)


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------
def write_bad(d: Path) -> list[str]:
    from PIL import Image

    d.mkdir(parents=True)
    rng = np.random.default_rng(1234)
    files: dict[str, bytes] = {}
    files["empty.jpg"] = b""
    files["one_byte.png"] = b"\x89"
    rnd = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    rnd[:4] = b"\x13\x37\x00\x42"  # make sure it starts with no known magic number
    files["random.jpg"] = bytes(rnd)
    files["text.jpg"] = b"This is not a JPEG file.\nIt is plain ASCII text pretending to be one.\n" * 8

    buf = io.BytesIO()
    Image.fromarray(synth_rgb(160, 120, "truncated.jpg"), "RGB").save(buf, "JPEG", quality=90)
    jpg = buf.getvalue()
    files["truncated.jpg"] = jpg[: int(len(jpg) * 0.4)]
    buf = io.BytesIO()
    Image.fromarray(synth_rgb(120, 90, "truncated.png"), "RGB").save(buf, "PNG")
    png = buf.getvalue()
    files["truncated.png"] = png[: int(len(png) * 0.5)]

    # valid PNG structure, IHDR declares 100000 x 100000 RGB, IDAT holds one tiny row
    files["huge_dims.png"] = png_bytes(100_000, 100_000, 8, 2, b"\x00" + b"\x00" * 30)

    files["fake.svg"] = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        b'  <rect width="64" height="64" fill="#3366cc"/><circle cx="32" cy="32" r="20" fill="#ffcc00"/>\n'
        b"</svg>\n"
    )
    files["doc.pdf"] = minimal_pdf()
    for name, data in files.items():
        (d / name).write_bytes(data)
    return sorted(files)


def minimal_pdf(binary_marker: bool = False) -> bytes:
    """A one-page PDF; `binary_marker` adds the comment line of high bytes
    that PDF writers put second to mark the file binary."""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    out = bytearray(b"%PDF-1.4\n" + (b"%\xe2\xe3\xcf\xd3\n" if binary_marker else b""))
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# reference outputs through the real pipeline
# --------------------------------------------------------------------------------------------
def build_pipeline(model_dir: Path, dtype=None):
    import torch
    from transformers import pipeline

    pipe = pipeline(
        "image-classification", model=str(model_dir), device=-1, dtype=dtype or torch.float32
    )
    cls = type(pipe.image_processor).__name__
    if not ("Pil" in cls or cls == "ViTImageProcessor"):
        raise RuntimeError(f"pipeline uses image processor {cls}, expected the PIL/slow ViT one")
    return pipe


def reference_for_model(model_dir: Path, images: list[tuple[str, Path]], bad: list[tuple[str, Path]]):
    import torch
    from transformers import ViTForImageClassification

    pipe = build_pipeline(model_dir)
    captured: dict = {}
    orig_pre, orig_fwd = pipe.preprocess, pipe._forward

    def pre(*a, **k):
        out = orig_pre(*a, **k)
        captured["pixel_values"] = out["pixel_values"].detach().clone()
        return out

    def fwd(*a, **k):
        out = orig_fwd(*a, **k)
        captured["logits"] = out["logits"].detach().clone()
        return out

    pipe.preprocess, pipe._forward = pre, fwd

    model = ViTForImageClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    id2label = {int(i): l for i, l in model.config.id2label.items()}
    n = len(id2label)
    label2idx = {l: i for i, l in id2label.items()}

    ref, pixels, logits = {}, {}, {}
    for name, path in images:
        captured.clear()
        out = pipe(str(path), top_k=None)
        pv = captured["pixel_values"].to(torch.float32).contiguous()
        with torch.no_grad():
            lg = model(pixel_values=pv).logits.to(torch.float32).contiguous()
        if not torch.equal(lg, captured["logits"].to(torch.float32)):
            d = (lg - captured["logits"]).abs().max().item()
            print(f"note: {model_dir.name}/{name}: pipeline vs model logits differ by {d:.3g}", file=sys.stderr)
        probs = [None] * n
        for item in out:
            probs[label2idx[item["label"]]] = float(item["score"])
        if any(p is None for p in probs):
            raise RuntimeError(f"pipeline returned {len(out)} of {n} labels for {name}")
        top = max(out, key=lambda x: x["score"])["label"]
        ref[name] = {"probs": probs, "label": top, "logits": [float(v) for v in lg[0]]}
        pixels[name], logits[name] = pv, lg

    bad_results = {}
    for name, path in bad:
        try:
            out = pipe(str(path), top_k=None)
            bad_results[name] = {"ok": True, "result": out}
        except Exception as e:  # noqa: BLE001 - we record whatever the pipeline raises
            msg = str(e).replace(str(path.parent), "<bad>")[:200]
            bad_results[name] = {"ok": False, "error": f"{type(e).__name__}: {msg}"}
    info = {
        "processor_class": type(pipe.image_processor).__name__,
        "processor": json.loads(pipe.image_processor.to_json_string()),
        "id2label": [id2label[i] for i in range(n)],
        "bad_files": bad_results,
    }
    return ref, pixels, logits, info


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------
def stamp() -> str:
    h = hashlib.sha256()
    h.update(str(FORMAT_VERSION).encode())
    for f in (HERE / "make_fixtures.py", HERE / "make_checkpoint.py"):
        h.update(f.read_bytes())
    for pkg in ("torch", "transformers", "pillow", "numpy", "safetensors"):
        try:
            h.update(f"{pkg}={metadata.version(pkg)};".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{pkg}=none;".encode())
    return h.hexdigest()


def is_current(out: Path, st: str) -> bool:
    try:
        return (out / ".complete").read_text().strip() == st
    except OSError:
        return False


def generate(tmp: Path, st: str) -> dict:
    import torch
    import transformers
    import PIL
    from PIL import Image
    from safetensors.torch import save_file

    make_checkpoint._quiet_transformers()
    torch.manual_seed(0)
    t0 = time.time()
    tmp.mkdir(parents=True)
    for name, spec in MODELS.items():
        make_checkpoint.make_checkpoint(tmp / "models" / name, **spec)
    image_names = write_images(tmp / "images")
    bad_names = write_bad(tmp / "bad")

    img_info = {}
    for name in image_names:
        with Image.open(tmp / "images" / name) as im:
            stored = dict(format=im.format, mode=im.mode, size=list(im.size), frames=getattr(im, "n_frames", 1))
        from transformers.image_utils import load_image

        li = load_image(str(tmp / "images" / name))
        img_info[name] = dict(stored, loaded_size=list(li.size))

    reference, meta_models = {}, {}
    images = [(n, tmp / "images" / n) for n in image_names]
    bad = [(n, tmp / "bad" / n) for n in bad_names]
    for name in MODELS:
        ref, pixels, logits, info = reference_for_model(tmp / "models" / name, images, bad)
        reference[name] = ref
        meta_models[name] = info
        # one metadata key only: safetensors writes metadata in hash order (keeps files byte-stable)
        md = {"source": f"transformers pipeline image-classification, model {name}"}
        save_file(pixels, str(tmp / f"pixels-{name}.safetensors"), metadata=md)
        save_file(logits, str(tmp / f"logits-{name}.safetensors"), metadata=md)

    (tmp / "reference.json").write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    meta = {
        "format_version": FORMAT_VERSION,
        "stamp": st,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "models": meta_models,
        "images": img_info,
        "bad": bad_names,
        "notes": [
            "probs are in class-index order (config.id2label); pipeline output was mapped back by label name",
            "load_image = PIL.Image.open -> ImageOps.exif_transpose -> convert('RGB') (alpha dropped, not composited;"
            " 16-bit gray clipped to 255; GIF/WebP first frame)",
            "processor = PIL resize to size (resample from preprocessor_config) on uint8, then *rescale_factor,"
            " then (x-mean)/std, float32",
        ],
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
    for p in tmp.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    (tmp / ".complete").write_text(st + "\n")
    return {"seconds": round(time.time() - t0, 2), "images": len(image_names), "bad": len(bad_names)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate dfscan parity fixtures.")
    ap.add_argument("out_dir")
    ap.add_argument("--force", action="store_true", help="regenerate even if up to date / replace a foreign dir")
    args = ap.parse_args(argv)

    out = Path(args.out_dir).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    st = stamp()
    if not args.force and is_current(out, st):
        print(f"fixtures up to date: {out}")
        return 0

    lock_path = out.parent / f".{out.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not args.force and is_current(out, st):  # another process made them meanwhile
            print(f"fixtures up to date: {out}")
            return 0
        if out.exists() and any(out.iterdir()) and not (out / ".complete").exists() and not args.force:
            print(f"refusing to replace non-empty {out} that has no .complete (use --force)", file=sys.stderr)
            return 2
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            summary = generate(tmp, st)
            old = None
            if out.exists():
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.rename(out, old)
            os.rename(tmp, out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"out": str(out), **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
