#!/usr/bin/env python3
"""Score images with a Hugging Face ViT checkpoint the way `pipeline("image-classification")`
does, and print logits, probabilities and the top label of every image as one JSON object.

    hf_predict.py MODEL_DIR IMAGE_OR_DIR [IMAGE_OR_DIR ...]

MODEL_DIR is loaded with `ViTForImageClassification.from_pretrained(MODEL_DIR,
dtype=torch.float32, output_loading_info=True)`; the script fails (exit 1, message on stderr)
when the loader reports any missing, unexpected or mismatched weight or error, so a checkpoint
with an incomplete or misnamed state dict (a head-less backbone, a dropped LayerNorm, a wrong
key prefix) is caught instead of silently running with freshly initialised weights.  The image
processor is the PIL ViT processor that the pipeline uses without torchvision
(make_checkpoint.processor_class(), i.e. `ViTImageProcessorPil` in transformers 5), loaded from
MODEL_DIR's preprocessor_config.json.

Each image is decoded as the pipeline does (`transformers.image_utils.load_image`:
PIL.Image.open -> ImageOps.exif_transpose -> convert("RGB")), preprocessed alone
(`processor(images=img, return_tensors="pt")`, float32) and run alone (batch of 1, CPU,
eval mode, torch.no_grad).  Directory arguments are searched recursively for
.jpg .jpeg .png .gif .webp .bmp .tif .tiff (case-insensitive), in sorted path order.

Output (stdout, one JSON object, keys in input order):
    {"<key>": {"logits": [float, ...], "probs": [float, ...], "label": "<id2label[argmax]>"}, ...}
<key> is the path relative to the directory argument it was found under (POSIX separators),
or the file name for a file argument; two images with the same key are an error.  `logits`
and `probs` are in class-index order; probs = softmax(logits) computed like the pipeline's
postprocess (numpy, float32), so they equal the pipeline's scores bit for bit (and
make_fixtures.py's reference.json).  An image that fails to decode or preprocess is an error
too (the exception propagates, exit 1).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_checkpoint  # noqa: E402  (same directory: _quiet_transformers, processor_class)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


def collect_images(args: list[str]) -> list[tuple[str, Path]]:
    """(key, path) for every image: files as given (key = file name), directories recursively
    (key = path relative to the directory, sorted)."""
    out: list[tuple[str, Path]] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS
            )
            out.extend((f.relative_to(p).as_posix(), f) for f in found)
        elif p.is_file():
            out.append((p.name, p))
        else:
            raise SystemExit(f"hf_predict: no such file or directory: {a}")
    seen: dict[str, Path] = {}
    for key, path in out:
        if key in seen:
            raise SystemExit(f"hf_predict: two images map to the key {key!r}: {seen[key]} and {path}")
        seen[key] = path
    return out


def load_model(model_dir: str):
    """Model (float32, eval) and the pipeline's PIL image processor.  Exits on an incomplete
    checkpoint."""
    import torch
    from transformers import ViTForImageClassification

    model, info = ViTForImageClassification.from_pretrained(
        model_dir, dtype=torch.float32, output_loading_info=True
    )
    problems = {k: sorted(map(str, v)) for k, v in info.items() if v}
    if problems:
        raise SystemExit(
            f"hf_predict: {model_dir} is not a complete ViTForImageClassification checkpoint: "
            + json.dumps(problems)
        )
    model.eval()
    processor = make_checkpoint.processor_class().from_pretrained(model_dir)
    return model, processor


def predict(model, processor, path: Path) -> dict:
    import torch
    from transformers.image_utils import load_image

    image = load_image(str(path))  # open, exif_transpose, convert("RGB"), like the pipeline
    inputs = processor(images=image, return_tensors="pt")
    pixel_values = inputs["pixel_values"].to(torch.float32)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits[0].to(torch.float32)
    out = logits.numpy()
    # the pipeline's postprocess softmax (numpy, float32), so probs match it bit for bit
    shifted = np.exp(out - out.max(axis=-1, keepdims=True))
    probs = shifted / shifted.sum(axis=-1, keepdims=True)
    top = int(np.argmax(out))
    return {
        "logits": [float(v) for v in out],
        "probs": [float(v) for v in probs],
        "label": model.config.id2label[top],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="Hugging Face ViTForImageClassification checkpoint directory")
    ap.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    args = ap.parse_args(argv)

    make_checkpoint._quiet_transformers()
    images = collect_images(args.inputs)
    if not images:
        raise SystemExit(f"hf_predict: no image files in {' '.join(args.inputs)}")
    model, processor = load_model(args.model_dir)
    result = {key: predict(model, processor, path) for key, path in images}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
