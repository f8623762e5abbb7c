"""Python client of dfscan, the deepfake image scoring cluster.

    from dfscan_client import Client

    with Client("127.0.0.1:50051") as client:
        job = client.submit("photos/")
        for result in client.results(job.job_id):
            print(result.id, result.label, result.fake_score, result.error)

The generated stubs are ``dfscan_client.pb`` (messages) and
``dfscan_client.pb_grpc`` (``ScoringStub``); ``Client.stub`` is a ready stub.
"""

from ._proto.dfscan.v1 import scoring_pb2 as pb
from ._proto.dfscan.v1 import scoring_pb2_grpc as pb_grpc
from .client import TRANSIENT, Client
from .errors import (
    DeadlineExceeded,
    DfscanError,
    FailedPrecondition,
    InvalidArgument,
    JobNotFound,
    ProtocolError,
    QueueFull,
    Unavailable,
)
from .records import FaceOptions, FaceResult, ItemResult, Job, Model, ModelIdentity, Worker
from .sources import IMAGE_EXTENSIONS, images_under, item

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DeadlineExceeded",
    "DfscanError",
    "FaceOptions",
    "FaceResult",
    "FailedPrecondition",
    "IMAGE_EXTENSIONS",
    "InvalidArgument",
    "ItemResult",
    "Job",
    "JobNotFound",
    "Model",
    "ModelIdentity",
    "ProtocolError",
    "QueueFull",
    "TRANSIENT",
    "Unavailable",
    "Worker",
    "images_under",
    "item",
    "pb",
    "pb_grpc",
]
