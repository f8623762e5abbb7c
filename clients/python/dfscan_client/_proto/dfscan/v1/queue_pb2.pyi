from dfscan_client._proto.dfscan.v1 import scoring_pb2 as _scoring_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskPayload(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[_scoring_pb2.Item]
    def __init__(self, items: _Optional[_Iterable[_Union[_scoring_pb2.Item, _Mapping]]] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_scoring_pb2.ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_scoring_pb2.ItemResult, _Mapping]]] = ...) -> None: ...
