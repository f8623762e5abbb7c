"""The client against a running ``dfscan serve`` (see conftest.py): every
test submits its own jobs to it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

import dfscan_client
from dfscan_client import Client, ItemResult
from conftest import assert_matches_reference, assert_record, assert_same_records, png
from dfscan_client.records import f32_text

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "score_folder.py"


def check_stream(results: List[ItemResult], total: int, after: int = 0) -> None:
    """Cursors after..total without gaps or repeats, each item once."""
    assert [r.cursor for r in results] == list(range(after + 1, total + 1))
    assert len({r.id for r in results}) == len(results)


def test_folder_round_trip(client: Client, images_dir: Path, reference: Dict[str, dict]) -> None:
    job = client.submit(images_dir, metadata={"suite": "python"}, task_size=4)
    assert job.state in ("running", "completed") and not job.deduplicated
    assert job.total == len(reference) and job.metadata == {"suite": "python"}
    results = list(client.results(job.job_id))
    check_stream(results, job.total)
    assert sorted(r.id for r in results) == sorted(reference)
    assert sorted(r.index for r in results) == list(range(job.total))
    for r in results:
        assert r.ok and r.label and r.scores, r
        assert_matches_reference(r.to_dict(), reference[r.id])
    done = client.get_job(job.job_id)
    assert done.finished and done.state == "completed"
    assert (done.completed, done.failed) == (job.total, 0)
    assert job.job_id in [j.job_id for j in client.list_jobs(state="completed")]


def test_iterable_of_bytes_with_an_invalid_image(client: Client, reference: Dict[str, dict]) -> None:
    names = sorted(reference)[:5]

    def items():
        yield ("broken", b"this is not an image")
        for name in names:
            yield (name, Path(name).read_bytes())

    job = client.submit(items())
    assert job.total == 6
    results = {r.id: r for r in client.results(job.job_id)}
    assert set(results) == {"broken", *names}
    broken = results.pop("broken")
    assert broken.error and not broken.ok
    assert (broken.label, broken.fake_score, broken.scores) == (None, None, {})
    for name, r in results.items():
        assert_matches_reference(r.to_dict(), reference[name])
    done = client.get_job(job.job_id)
    assert done.finished and (done.completed, done.failed) == (5, 1)


def test_policy_and_item_metadata_round_trip(client: Client, reference: Dict[str, dict]) -> None:
    names = sorted(reference)[:6]
    scores = sorted(reference[n]["fake_score"] for n in names)
    # A threshold between the scores: both verdicts occur.
    middle = (scores[2] + scores[3]) / 2
    policy = dfscan_client.pb.VerdictPolicy(
        thresholds=[dfscan_client.pb.VerdictThreshold(verdict="flag", min_fake_score=middle)],
        otherwise="pass",
    )
    items = (
        dfscan_client.item(name, data=Path(name).read_bytes(), metadata={"name": name})
        for name in names
    )
    job = client.submit(items, policy=policy)
    results = list(client.results(job.job_id))
    assert len(results) == len(names)
    for r in results:
        assert r.metadata == {"name": r.id}
        assert r.verdict == ("flag" if r.fake_score >= middle else "pass"), r
        assert r.to_dict()["verdict"] == r.verdict
    done = client.get_job(job.job_id)
    counts = dict(done.raw.verdicts)
    assert counts == {"flag": 3, "pass": 3}, counts


def test_resume_from_any_cursor(client: Client, coordinator: str, images_dir: Path) -> None:
    job = client.submit(images_dir)
    full = list(client.results(job.job_id))
    check_stream(full, job.total)
    key = [(r.id, r.cursor, r.fake_score) for r in full]
    for after in sorted({0, 1, job.total // 2, job.total - 1, job.total}):
        again = list(client.results(job.job_id, after_cursor=after))
        assert [(r.id, r.cursor, r.fake_score) for r in again] == key[after:]
    # An iteration stopped midway (this client gone), resumed by another
    # from the last cursor seen: no gap, no repeat.
    stopped = client.results(job.job_id)
    head = [next(stopped) for _ in range(7)]
    stopped.close()
    with Client(coordinator) as other:
        tail = list(other.results(job.job_id, after_cursor=head[-1].cursor))
    assert [(r.id, r.cursor, r.fake_score) for r in head + tail] == key


def test_resume_while_the_job_runs(client: Client, images_dir: Path) -> None:
    """Stopping and resuming while results are still being produced."""
    data = png(300, 300)
    job = client.submit(((f"p{i}", data) for i in range(60)), task_size=1)
    seen: List[ItemResult] = []
    while True:
        stream = client.results(job.job_id, after_cursor=seen[-1].cursor if seen else 0)
        batch = [r for _, r in zip(range(9), stream)]
        stream.close()
        if not batch:
            break
        seen.extend(batch)
    check_stream(seen, 60)


def test_cancel(client: Client) -> None:
    # Enough items that the worker cannot have claimed them all when the
    # cancel arrives (it holds a few batches at a time).
    data = png(300, 300)
    job = client.submit(((f"c{i}", data) for i in range(300)), task_size=1)
    cancelled = client.cancel_job(job.job_id)
    assert cancelled.job_id == job.job_id and cancelled.state == "cancelled"
    results = list(client.results(job.job_id))
    check_stream(results, 300)
    errors = [r.error for r in results if not r.ok]
    assert errors and set(errors) == {"job cancelled"}
    done = client.get_job(job.job_id)
    assert done.finished and done.state == "cancelled"
    assert done.completed + done.failed == 300 and done.failed == len(errors)
    with pytest.raises(dfscan_client.FailedPrecondition):
        client.cancel_job(job.job_id)


def test_unknown_job(client: Client) -> None:
    missing = "0123456789abcdef" * 2
    with pytest.raises(dfscan_client.JobNotFound):
        client.get_job(missing)
    with pytest.raises(dfscan_client.JobNotFound):
        client.cancel_job(missing)
    with pytest.raises(dfscan_client.JobNotFound):
        next(client.results(missing))
    with pytest.raises(dfscan_client.InvalidArgument):
        client.get_job("not-a-job-id")


def test_refused_submissions(client: Client, parked_model: str, max_queued_items: int) -> None:
    with pytest.raises(dfscan_client.InvalidArgument, match="model"):
        client.submit([("a", b"x")], model="no-such-model")
    with pytest.raises(dfscan_client.InvalidArgument, match="id is empty"):
        client.submit([("", b"x")])
    # Over the parked model's queue limit (no worker drains it): refused,
    # and the refused upload leaves nothing queued.
    before = {j.job_id for j in client.list_jobs(limit=1000)}
    with pytest.raises(dfscan_client.QueueFull) as raised:
        client.submit(((f"q{i}", b"x") for i in range(max_queued_items + 1)), model=parked_model)
    assert raised.value.code.name == "RESOURCE_EXHAUSTED"
    assert {j.job_id for j in client.list_jobs(limit=1000)} == before
    assert_nothing_queued(client, parked_model)

    # A source failing midway abandons the upload: the error is the
    # source's, and nothing is created or left queued.
    def failing():
        for i in range(600):
            yield (f"f{i}", b"x")
        raise OSError("the disk went away")

    with pytest.raises(OSError, match="the disk went away"):
        client.submit(failing(), model=parked_model)
    assert_nothing_queued(client, parked_model)
    assert {j.job_id for j in client.list_jobs(limit=1000)} == before


def assert_nothing_queued(client: Client, model: str) -> None:
    """The model's queue empties (an aborted upload is removed at once, but
    after the call has returned: the job goes with its tasks)."""
    deadline = time.monotonic() + 10
    while True:
        parked = {m.name: m for m in client.models()}[model]
        assert parked.workers == 0
        if parked.queued_items == 0:
            return
        assert time.monotonic() < deadline, f"{parked.queued_items} items left queued"
        time.sleep(0.05)


def test_idempotency_key(client: Client, reference: Dict[str, dict]) -> None:
    first_file = Path(sorted(reference)[0])
    first = client.submit([first_file], idempotency_key="python-client-test")
    again = client.submit([first_file, first_file], idempotency_key="python-client-test")
    assert again.deduplicated and again.job_id == first.job_id and again.total == 1
    assert [r.id for r in client.results(first.job_id)] == [str(first_file)]


def test_models_and_workers(client: Client, parked_model: str) -> None:
    models = {m.name: m for m in client.models()}
    (served,) = [m for m in models.values() if m.workers > 0]
    assert parked_model in models and served.identities and len(served.identities[0].sha256) == 64
    workers = client.workers()
    assert [w.model for w in workers] == [served.name]
    assert workers[0].identity == served.identities[0] and workers[0].pid > 0


def dfscan(dfscan_bin: str, coordinator: str, *args: str) -> subprocess.CompletedProcess:
    """Runs ``dfscan ARGS`` against the server (without the suite's own
    DFSCAN_ variables, which are no settings of dfscan's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFSCAN_")}
    return subprocess.run(
        [dfscan_bin, *args, "--coordinator", f"http://{coordinator}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def read_lines(path: Path) -> List[str]:
    # Not splitlines(): JSON leaves U+2028 and the like unescaped.
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def test_score_records_follow_the_schema(reference_file: Path) -> None:
    for line in read_lines(reference_file):
        record = assert_record(line)
        assert "id" not in record and record["error"] is None


def test_one_record_shape_with_dfscan_submit(
    client: Client, coordinator: str, dfscan_bin: str, reference: Dict[str, dict], tmp_path: Path
) -> None:
    """The same folder submitted by ``dfscan submit`` and by this client to
    the same server, an undecodable image and a verdict policy included:
    the same ids and the same records, key for key."""
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    names = sorted(reference)[:6]
    for i, name in enumerate(names):
        shutil.copy(name, folder / ("sub" if i % 2 else "") / Path(name).name)
    (folder / "sub" / "broken.png").write_bytes(b"not a png")
    scores = sorted(reference[n]["fake_score"] for n in names)
    # A threshold between the scores (both verdicts occur), the same
    # float32 for both clients.
    threshold = f32_text((scores[2] + scores[3]) / 2)

    cli = tmp_path / "cli.jsonl"
    verdicts = f"flag={threshold},pass"
    run = dfscan(dfscan_bin, coordinator, "submit", "--verdicts", verdicts, "--output", str(cli), str(folder))
    assert run.returncode == 3, run.stderr  # finished, an item has an error
    policy = dfscan_client.pb.VerdictPolicy(
        thresholds=[dfscan_client.pb.VerdictThreshold(verdict="flag", min_fake_score=float(threshold))],
        otherwise="pass",
    )
    job = client.submit(str(folder), policy=policy)
    results = list(client.results(job.job_id))
    for r in results:
        assert json.loads(r.to_json()) == r.to_dict()
    ours = [r.to_json() for r in results]
    assert_same_records(ours, read_lines(cli))
    records = [json.loads(l) for l in ours]
    assert {r["verdict"] for r in records if "verdict" in r} == {"flag", "pass"}
    (broken,) = [r for r in records if r["error"]]
    assert broken["id"] == f"{folder}/sub/broken.png"
    assert broken["model"] == {"name": job.model, "sha256": ""}


def test_one_record_shape_with_dfscan_jobs_results(
    client: Client, coordinator: str, dfscan_bin: str, reference: Dict[str, dict], tmp_path: Path
) -> None:
    """A job of this client's, item metadata included, read by ``dfscan jobs
    results`` and by this client: the same lines, byte for byte."""
    names = sorted(reference)[:4]
    items = [
        dfscan_client.item(name, data=Path(name).read_bytes(), metadata={"name": name, "batch": "7", "é": "\n\x01"})
        for name in names
    ]
    items.append(dfscan_client.item("broken", data=b"not an image", metadata={"z": "1", "a": "2"}))
    job = client.submit(items)
    ours = [r.to_json() for r in client.results(job.job_id)]
    cli = tmp_path / "cli.jsonl"
    run = dfscan(dfscan_bin, coordinator, "jobs", "results", job.job_id, "--output", str(cli))
    assert run.returncode == 3, run.stderr  # finished, an item has an error
    assert ours == read_lines(cli)
    for line in ours:
        assert_record(line)


def test_example_script(
    coordinator: str, dfscan_bin: str, images_dir: Path, reference: Dict[str, dict], tmp_path: Path
) -> None:
    output = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parent.parent)}
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--coordinator", coordinator, str(images_dir), "--output", str(output)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(l) for l in read_lines(output)]
    assert sorted(l["id"] for l in lines) == sorted(reference)
    for line in lines:
        assert_matches_reference(line, reference[line["id"]])
    job_id = re.search(r"job ([0-9a-f]{32}):", run.stderr).group(1)
    # The lines dfscan submit writes for the same folder.
    cli = tmp_path / "cli.jsonl"
    submit = dfscan(dfscan_bin, coordinator, "submit", "--output", str(cli), str(images_dir))
    assert submit.returncode == 0, submit.stderr
    assert_same_records(read_lines(output), read_lines(cli))

    # Interrupted after 5 lines and part of the 6th: --attach finishes the
    # same file, every item once.
    text = output.read_text()
    cut = [m.end() for m in re.finditer("\n", text)][4] + 10
    output.write_text(text[:cut])
    attach = [sys.executable, str(EXAMPLE), "--coordinator", coordinator, "--attach", job_id, "--output", str(output)]
    run = subprocess.run(attach, capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert output.read_text() == text
