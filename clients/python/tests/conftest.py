"""Shared fixtures. The tests in test_server.py need a running
``dfscan serve``, given by environment variables (tests/python_client.rs at
the repository root sets them all and runs this suite):

- DFSCAN_TEST_COORDINATOR: its address (``127.0.0.1:PORT``);
- DFSCAN_TEST_IMAGES: a folder of images;
- DFSCAN_TEST_REFERENCE: ``dfscan score --format jsonl`` of that folder;
- DFSCAN_TEST_PARKED_MODEL: a model the coordinator accepts but no worker
  serves (its jobs wait);
- DFSCAN_TEST_MAX_QUEUED_ITEMS: the coordinator's ``queue.max_queued_items``;
- DFSCAN_TEST_DFSCAN: the ``dfscan`` binary, whose ``submit`` and ``jobs
  results`` records this client's must equal.

Without DFSCAN_TEST_COORDINATOR those tests are skipped.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any, Dict, Iterator, List

import jsonschema
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package, uninstalled

from dfscan_client import Client  # noqa: E402

#: The result record every producer writes.
SCHEMA = json.loads((HERE.parents[2] / "docs" / "result-record.schema.json").read_text())


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: needs a running dfscan serve (see conftest.py)")
    return value


@pytest.fixture(scope="session")
def coordinator() -> str:
    return _env("DFSCAN_TEST_COORDINATOR")


@pytest.fixture
def client(coordinator: str) -> Iterator[Client]:
    with Client(coordinator, timeout=30, resume_for_s=30) as c:
        yield c


@pytest.fixture(scope="session")
def images_dir() -> Path:
    return Path(_env("DFSCAN_TEST_IMAGES"))


@pytest.fixture(scope="session")
def reference_file() -> Path:
    return Path(_env("DFSCAN_TEST_REFERENCE"))


@pytest.fixture(scope="session")
def reference(reference_file: Path, images_dir: Path) -> Dict[str, dict]:
    """``dfscan score``'s lines by path: the id both clients give the file
    when the images folder is submitted."""
    lines = [json.loads(l) for l in reference_file.read_text().splitlines()]
    by_id = {l["path"]: l for l in lines}
    assert len(by_id) == len(lines) > 0
    assert all(Path(p).is_relative_to(images_dir) for p in by_id)
    return by_id


@pytest.fixture(scope="session")
def dfscan_bin() -> str:
    return _env("DFSCAN_TEST_DFSCAN")


@pytest.fixture(scope="session")
def parked_model() -> str:
    return _env("DFSCAN_TEST_PARKED_MODEL")


@pytest.fixture(scope="session")
def max_queued_items() -> int:
    return int(_env("DFSCAN_TEST_MAX_QUEUED_ITEMS"))


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG (a gradient), encoded with the standard library."""
    row = bytes((x * 7) & 0xFF for x in range(width * 3))
    raw = b"".join(b"\x00" + row[y % 3 :] + row[: y % 3] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def assert_matches_reference(result: dict, ref: dict) -> None:
    """A result (ItemResult.to_dict() or a JSON line) equals ``dfscan
    score``'s line for the same file, scores within 1e-5."""
    assert result["error"] is None, result
    assert result["label"] == ref["label"], (result, ref)
    assert list(result["scores"]) == list(ref["scores"]), (result, ref)
    for label, p in ref["scores"].items():
        assert abs(result["scores"][label] - p) < 1e-5, (label, result, ref)
    assert abs(result["fake_score"] - ref["fake_score"]) < 1e-5
    assert result["model"] == ref["model"]


def assert_record(line: str) -> dict:
    """``line`` is a result record: valid under the schema, keys (its
    faces' too) in its order. Returns it parsed."""
    record = json.loads(line)
    jsonschema.Draft202012Validator(SCHEMA).validate(record)
    assert list(record) == [k for k in SCHEMA["properties"] if k in record], line
    for face in record.get("faces", []):
        assert list(face) == list(SCHEMA["$defs"]["face"]["properties"]), line
    return record


def f32(x: float) -> float:
    """``x`` rounded to float32."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class _Number(str):
    """A JSON number's text, as written."""


def _compare(a: Any, b: Any, where: str) -> None:
    if isinstance(a, _Number) or isinstance(b, _Number):
        assert isinstance(a, _Number) and isinstance(b, _Number), where
        x, y = float(a), float(b)
        assert abs(x - y) < 1e-6, where
        if f32(x) == f32(y):
            assert a == b, f"{where}: the same float32 written as {a} and {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} and {list(b)}"
        for key in a:
            _compare(a[key], b[key], f"{where}.{key}")
    else:
        assert a == b, f"{where}: {a!r} and {b!r}"


def assert_same_records(ours: List[str], theirs: List[str]) -> None:
    """Two producers' lines for the same items are the same records: every
    line valid, the same ids, and per id the same keys in the same order
    and the same values, scores within 1e-6 and written alike wherever
    they are the same float32."""

    def by_id(lines: List[str]) -> Dict[str, dict]:
        for line in lines:
            assert_record(line)
        parsed = [json.loads(l, parse_float=_Number, parse_int=_Number) for l in lines]
        records = {r["id"]: r for r in parsed}
        assert len(records) == len(parsed), "an id twice"
        return records

    a, b = by_id(ours), by_id(theirs)
    assert sorted(a) == sorted(b)
    for id in a:
        _compare(a[id], b[id], id)
