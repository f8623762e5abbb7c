"""Turning what submit() is given into upload messages, lazily: files are
read one at a time as the upload reaches them, and items are grouped into
messages of bounded size, so memory holds about one message however large
the job is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

from ._proto.dfscan.v1 import scoring_pb2 as pb

#: Files a folder is searched for (case-insensitive), as ``dfscan`` does.
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff"})

PathLike = Union[str, "os.PathLike[str]"]
#: A folder, or an iterable of: file paths (folders among them are searched
#: too), ``(id, bytes)`` pairs, or ``Item`` messages (see :func:`item`).
Source = Union[PathLike, Iterable[Union[PathLike, Tuple[str, bytes], pb.Item]]]
#: Called with the item id and the error for a file that cannot be read.
OnUnreadable = Callable[[str, Exception], None]


def item(id: str, data: Optional[bytes] = None, *, uri: Optional[str] = None, **fields: object) -> pb.Item:
    """An upload item: encoded image ``data``, or a ``uri`` the workers can
    read (``file://`` or an absolute path under their URI roots). Further
    keyword arguments are set on the ``Item`` message as they are."""
    if (data is None) == (uri is None):
        raise ValueError("an item needs exactly one of data and uri")
    if data is not None:
        return pb.Item(id=id, data=bytes(data), **fields)
    return pb.Item(id=id, uri=uri, **fields)


def images_under(folder: PathLike) -> Iterator[Path]:
    """Image files under ``folder``, recursively, skipping hidden entries, in
    a stable order (entries sorted by name, depth first), like ``dfscan``."""
    root = Path(folder)
    seen = set()

    def walk(directory: Path) -> Iterator[Path]:
        stat = directory.stat()
        key = (stat.st_dev, stat.st_ino)
        if key in seen:  # a symlink loop
            return
        seen.add(key)
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                yield from walk(path)
            elif entry.is_file() and path.suffix[1:].lower() in IMAGE_EXTENSIONS:
                yield path
        seen.discard(key)

    yield from walk(root)


def read_file(path: Path, max_bytes: int) -> bytes:
    """The file's bytes; OSError when unreadable or over ``max_bytes``."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(f"{path}: larger than {max_bytes} bytes, the most one upload message carries")
    return data


def iter_items(source: Source, max_file_bytes: int, on_unreadable: Optional[OnUnreadable] = None) -> Iterator[pb.Item]:
    """The items of ``source``, read as they are reached.

    A file's id is its path as given; a folder (given alone or among the
    paths) is searched, its images getting the folder as given joined with
    their path under it (``photos/sub/a.png`` for ``"photos/"``), the ids
    ``dfscan submit`` gives the same paths. Unreadable files raise OSError,
    or are passed to ``on_unreadable`` and skipped.
    """

    def from_file(path: Path, id: str) -> Iterator[pb.Item]:
        try:
            data = read_file(path, max_file_bytes)
        except OSError as e:
            if on_unreadable is None:
                raise
            on_unreadable(id, e)
            return
        yield pb.Item(id=id, data=data)

    def from_path(given: PathLike) -> Iterator[pb.Item]:
        # The name as given, not as pathlib normalises it ("./a" stays
        # "./a"), joined as Rust's Path::join does.
        name = os.fspath(given)
        path = Path(name)
        if path.is_dir():
            for file in images_under(path):
                yield from from_file(file, os.path.join(name, file.relative_to(path).as_posix()))
        else:
            # Named explicitly: sent whatever its extension (a missing file
            # is unreadable, reported like any other).
            yield from from_file(path, name)

    if isinstance(source, (str, os.PathLike)):
        yield from from_path(source)
        return
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise TypeError("submit() takes an iterable of (id, bytes) pairs, not bytes")
    for entry in source:
        if isinstance(entry, pb.Item):
            yield entry
        elif isinstance(entry, (str, os.PathLike)):
            yield from from_path(entry)
        elif isinstance(entry, tuple) and len(entry) == 2:
            id, data = entry
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"item {id!r}: expected (id, bytes), got data of type {type(data).__name__}")
            yield pb.Item(id=str(id), data=bytes(data))
        else:
            raise TypeError(f"cannot submit {type(entry).__name__}: expected a path, (id, bytes) or an Item")


def batches(items: Iterable[pb.Item], max_items: int, max_bytes: int) -> Iterator[List[pb.Item]]:
    """Groups items into messages, each sent once it has ``max_items`` items
    or ``max_bytes`` bytes (the Rust client's rule)."""
    batch: List[pb.Item] = []
    size = 0
    for it in items:
        batch.append(it)
        size += it.ByteSize()
        if len(batch) >= max(max_items, 1) or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
