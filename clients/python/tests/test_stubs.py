"""The checked-in stubs are what generate.py makes from proto/ now: a proto
change without regenerating them fails here."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("dfscan_generate", PACKAGE_ROOT / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_are_current(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate the stubs")
    generate = _load_generator()
    fresh = tmp_path / "_proto"
    generate.generate(fresh)
    checked_in = generate.STUB_ROOT

    def files(root: Path) -> set:
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}

    hint = f"stale stubs: run `{Path(sys.executable).name} clients/python/generate.py`"
    assert files(fresh) == files(checked_in), hint
    for name in sorted(files(fresh)):
        assert filecmp.cmp(fresh / name, checked_in / name, shallow=False), f"{name}: {hint}"


def test_stubs_import_inside_the_package() -> None:
    from dfscan_client._proto.dfscan.v1 import queue_pb2, scoring_pb2, scoring_pb2_grpc

    assert scoring_pb2.DESCRIPTOR.name == "dfscan/v1/scoring.proto"
    assert scoring_pb2.Item.__module__ == "dfscan_client._proto.dfscan.v1.scoring_pb2"
    assert queue_pb2.TaskPayload.DESCRIPTOR.fields_by_name["items"].message_type.full_name == "dfscan.v1.Item"
    assert hasattr(scoring_pb2_grpc, "ScoringStub")
    # Nothing imports a top-level `dfscan` package.
    assert "dfscan" not in sys.modules
