"""Shared fixtures. The tests in test_server.py need a running
``dfscan serve``, given by environment variables (tests/python_client.rs at
the repository root sets them all and runs this suite):

- DFSCAN_TEST_COORDINATOR: its address (``127.0.0.1:PORT``);
- DFSCAN_TEST_IMAGES: a folder of images;
- DFSCAN_TEST_REFERENCE: ``dfscan score --format jsonl`` of that folder;
- DFSCAN_TEST_PARKED_MODEL: a model the coordinator accepts but no worker
  serves (its jobs wait);
- DFSCAN_TEST_MAX_QUEUED_ITEMS: the coordinator's ``queue.max_queued_items``.

Without DFSCAN_TEST_COORDINATOR those tests are skipped.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Dict, Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the package, uninstalled

from dfscan_client import Client  # noqa: E402


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
def reference(images_dir: Path) -> Dict[str, dict]:
    """``dfscan score``'s lines by path relative to the images folder."""
    lines = [json.loads(l) for l in Path(_env("DFSCAN_TEST_REFERENCE")).read_text().splitlines()]
    by_id = {Path(l["path"]).relative_to(images_dir).as_posix(): l for l in lines}
    assert len(by_id) == len(lines) > 0
    return by_id


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
