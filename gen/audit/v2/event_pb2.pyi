import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import code_pb2 as _code_pb2
from google.rpc import error_details_pb2 as _error_details_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_STORED: _ClassVar[Outcome]
    OUTCOME_DUPLICATE: _ClassVar[Outcome]
    OUTCOME_REJECTED: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_STORED: Outcome
OUTCOME_DUPLICATE: Outcome
OUTCOME_REJECTED: Outcome

class AuditEvent(_message.Message):
    __slots__ = ("event_id", "event_type", "user_id", "username", "ip_address", "user_agent", "service", "action", "result", "details", "compliance_tags", "data_classification", "event_time", "receive_time", "receipt", "principal")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_TAGS_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    user_id: str
    username: str
    ip_address: str
    user_agent: str
    service: str
    action: str
    result: str
    details: _struct_pb2.Struct
    compliance_tags: _containers.RepeatedScalarFieldContainer[str]
    data_classification: str
    event_time: _timestamp_pb2.Timestamp
    receive_time: _timestamp_pb2.Timestamp
    receipt: Receipt
    principal: str
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., service: _Optional[str] = ..., action: _Optional[str] = ..., result: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., compliance_tags: _Optional[_Iterable[str]] = ..., data_classification: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., principal: _Optional[str] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("chain_id", "seq", "hash", "prev_hash", "leaf_index", "tree_size")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    hash: str
    prev_hash: str
    leaf_index: int
    tree_size: int
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., hash: _Optional[str] = ..., prev_hash: _Optional[str] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("index", "event_id", "outcome", "receipt", "reason", "field_violations", "code")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    index: int
    event_id: str
    outcome: Outcome
    receipt: Receipt
    reason: str
    field_violations: _containers.RepeatedCompositeFieldContainer[_error_details_pb2.BadRequest.FieldViolation]
    code: _code_pb2.Code
    def __init__(self, index: _Optional[int] = ..., event_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., reason: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[_error_details_pb2.BadRequest.FieldViolation, _Mapping]]] = ..., code: _Optional[_Union[_code_pb2.Code, str]] = ...) -> None: ...
