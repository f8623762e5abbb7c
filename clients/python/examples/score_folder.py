#!/usr/bin/env python3
"""Scores a folder of images on a dfscan cluster and writes JSON Lines.

    python examples/score_folder.py --coordinator 127.0.0.1:50051 DIR [--output results.jsonl]

Every image under DIR (recursively) gets one line: the line ``dfscan submit
DIR`` writes for it, byte for byte (the result record of
docs/result-record.schema.json: id = DIR as given joined with the image's
path under it, label, scores, fake_score, model, faces, outcome, error). If
the run is interrupted after the upload, finish the same file without
duplicates or gaps with ``--attach JOB --output FILE``: the lines already
written are counted and the results resume after them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from dfscan_client import Client
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from dfscan_client import Client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a folder of images on a dfscan cluster.")
    # A str, not a Path: the ids keep the folder as given ("./photos/...").
    parser.add_argument("folder", nargs="?", help="images to score (searched recursively)")
    parser.add_argument("--coordinator", default="127.0.0.1:50051", help="the coordinator's address")
    parser.add_argument("--model", help="model name (default: the coordinator's default)")
    parser.add_argument("--output", "-o", type=Path, help="JSONL file (default: standard output)")
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="kept with the job")
    parser.add_argument("--attach", metavar="JOB", help="finish --output for this job instead of submitting")
    args = parser.parse_args(argv)
    if (args.folder is None) == (args.attach is None):
        parser.error("give a folder, or --attach JOB")
    if args.attach and args.output is None:
        parser.error("--attach needs the --output of the interrupted run")
    metadata = dict(kv.split("=", 1) for kv in args.metadata)

    with Client(args.coordinator) as client:
        if args.attach:
            job = client.get_job(args.attach)
        else:
            job = client.submit(
                args.folder,
                model=args.model,
                metadata=metadata,
                on_unreadable=lambda id, e: print(f"{id}: not uploaded: {e}", file=sys.stderr),
            )
            print(f"job {job.job_id}: {job.total} items", file=sys.stderr)
        # Results arrive in cursor order, one line each from cursor 1: the
        # number of complete lines already in the file is the cursor to
        # resume after.
        done = 0
        if args.attach:
            text = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
            complete = text[: text.rfind("\n") + 1]  # drop a torn last line
            done = complete.count("\n")
            args.output.write_text(complete, encoding="utf-8")
        # UTF-8, as dfscan writes it: the lines do not escape non-ASCII.
        out = args.output.open("a", encoding="utf-8") if args.output else sys.stdout
        try:
            for result in client.results(job.job_id, after_cursor=done):
                out.write(result.to_json() + "\n")
                out.flush()
        finally:
            if out is not sys.stdout:
                out.close()
        job = client.get_job(job.job_id)
    print(f"job {job.job_id}: {job.state}: {job.completed} scored, {job.failed} failed", file=sys.stderr)
    return 0 if job.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
