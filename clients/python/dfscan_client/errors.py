"""Exceptions raised by the client, one per gRPC status the API documents.

Every error from the coordinator is a :class:`DfscanError` carrying the
gRPC ``code`` and the server's ``details``; the original ``grpc.RpcError`` is
its ``__cause__``.
"""

from __future__ import annotations

from typing import Optional

import grpc


class DfscanError(Exception):
    """Base class of the client's errors."""

    def __init__(self, message: str, code: Optional[grpc.StatusCode] = None, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidArgument(DfscanError):
    """INVALID_ARGUMENT: the request is malformed (bad job id, empty item id,
    oversized metadata, ...); retrying the same request cannot succeed."""


class JobNotFound(DfscanError):
    """NOT_FOUND: no job has this id."""


class QueueFull(DfscanError):
    """RESOURCE_EXHAUSTED: the model's queue is over its item or byte limit,
    or a message is over the coordinator's size limit. Back off and submit
    again (the refused upload left nothing behind)."""


class Unavailable(DfscanError):
    """UNAVAILABLE: the coordinator or its queue is down or stopping."""


class FailedPrecondition(DfscanError):
    """FAILED_PRECONDITION: the job is not in a state that allows this (e.g.
    cancelling a finished job)."""


class DeadlineExceeded(DfscanError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


class ProtocolError(DfscanError):
    """The server broke the API's promises (e.g. a gap in result cursors)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: JobNotFound,
    grpc.StatusCode.RESOURCE_EXHAUSTED: QueueFull,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(error: grpc.RpcError, what: str) -> DfscanError:
    """The client exception for a failed call; ``what`` names the call."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    name = code.name if code is not None else "error"
    cls = _BY_CODE.get(code, DfscanError) if code is not None else DfscanError
    return cls(f"{what}: {name}: {details}", code=code, details=details)
