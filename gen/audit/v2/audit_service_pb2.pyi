import datetime

from audit.v2 import event_pb2 as _event_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EraseSubjectRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class EraseSubjectResponse(_message.Message):
    __slots__ = ("subject", "events", "archived_events", "fields", "erase_time", "erasure_event_id", "already_erased")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ERASE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERASURE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_ERASED_FIELD_NUMBER: _ClassVar[int]
    subject: str
    events: int
    archived_events: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    erase_time: _timestamp_pb2.Timestamp
    erasure_event_id: str
    already_erased: bool
    def __init__(self, subject: _Optional[str] = ..., events: _Optional[int] = ..., archived_events: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ..., erase_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., erasure_event_id: _Optional[str] = ..., already_erased: _Optional[bool] = ...) -> None: ...

class LegalHold(_message.Message):
    __slots__ = ("hold_id", "subject", "start_time", "end_time", "reason", "placed_by", "place_time", "lifted_by", "lift_time")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLACED_BY_FIELD_NUMBER: _ClassVar[int]
    PLACE_TIME_FIELD_NUMBER: _ClassVar[int]
    LIFTED_BY_FIELD_NUMBER: _ClassVar[int]
    LIFT_TIME_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    subject: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    reason: str
    placed_by: str
    place_time: _timestamp_pb2.Timestamp
    lifted_by: str
    lift_time: _timestamp_pb2.Timestamp
    def __init__(self, hold_id: _Optional[str] = ..., subject: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., placed_by: _Optional[str] = ..., place_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lifted_by: _Optional[str] = ..., lift_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlaceLegalHoldRequest(_message.Message):
    __slots__ = ("user_id", "start_time", "end_time", "reason")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, user_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class PlaceLegalHoldResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: LegalHold
    def __init__(self, hold: _Optional[_Union[LegalHold, _Mapping]] = ...) -> None: ...

class LiftLegalHoldRequest(_message.Message):
    __slots__ = ("hold_id",)
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    def __init__(self, hold_id: _Optional[str] = ...) -> None: ...

class LiftLegalHoldResponse(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: LegalHold
    def __init__(self, hold: _Optional[_Union[LegalHold, _Mapping]] = ...) -> None: ...

class ListLegalHoldsRequest(_message.Message):
    __slots__ = ("include_lifted",)
    INCLUDE_LIFTED_FIELD_NUMBER: _ClassVar[int]
    include_lifted: bool
    def __init__(self, include_lifted: _Optional[bool] = ...) -> None: ...

class ListLegalHoldsResponse(_message.Message):
    __slots__ = ("holds",)
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    holds: _containers.RepeatedCompositeFieldContainer[LegalHold]
    def __init__(self, holds: _Optional[_Iterable[_Union[LegalHold, _Mapping]]] = ...) -> None: ...

class ExportEventsRequest(_message.Message):
    __slots__ = ("event_type", "user_id", "username", "service", "action", "result", "compliance_tag", "data_classification", "ip_address", "start_time", "end_time", "details_contains", "format")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_TAG_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    user_id: str
    username: str
    service: str
    action: str
    result: str
    compliance_tag: str
    data_classification: str
    ip_address: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    details_contains: str
    format: str
    def __init__(self, event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ..., service: _Optional[str] = ..., action: _Optional[str] = ..., result: _Optional[str] = ..., compliance_tag: _Optional[str] = ..., data_classification: _Optional[str] = ..., ip_address: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., details_contains: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.AuditEvent
    def __init__(self, event: _Optional[_Union[_event_pb2.AuditEvent, _Mapping]] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _event_pb2.EventResult
    def __init__(self, result: _Optional[_Union[_event_pb2.EventResult, _Mapping]] = ...) -> None: ...

class IngestBatchRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ...) -> None: ...

class IngestBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_event_pb2.EventResult]
    def __init__(self, results: _Optional[_Iterable[_Union[_event_pb2.EventResult, _Mapping]]] = ...) -> None: ...

class StreamIngestRequest(_message.Message):
    __slots__ = ("batch_id", "events")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    def __init__(self, batch_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ...) -> None: ...

class StreamIngestResponse(_message.Message):
    __slots__ = ("batch_id", "results")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    results: _containers.RepeatedCompositeFieldContainer[_event_pb2.EventResult]
    def __init__(self, batch_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[_event_pb2.EventResult, _Mapping]]] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("event_type", "user_id", "username", "service", "action", "result", "compliance_tag", "data_classification", "ip_address", "start_time", "end_time", "details_contains", "page_size", "page_token", "limit", "include_archive")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    COMPLIANCE_TAG_FIELD_NUMBER: _ClassVar[int]
    DATA_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    user_id: str
    username: str
    service: str
    action: str
    result: str
    compliance_tag: str
    data_classification: str
    ip_address: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    details_contains: str
    page_size: int
    page_token: str
    limit: int
    include_archive: bool
    def __init__(self, event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ..., service: _Optional[str] = ..., action: _Optional[str] = ..., result: _Optional[str] = ..., compliance_tag: _Optional[str] = ..., data_classification: _Optional[str] = ..., ip_address: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., details_contains: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., limit: _Optional[int] = ..., include_archive: _Optional[bool] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("event_id",)
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    def __init__(self, event_id: _Optional[str] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.AuditEvent
    def __init__(self, event: _Optional[_Union[_event_pb2.AuditEvent, _Mapping]] = ...) -> None: ...

class GetStatisticsRequest(_message.Message):
    __slots__ = ("time_range", "start_time", "end_time")
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    time_range: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, time_range: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CountByKey(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TimeBucket(_message.Message):
    __slots__ = ("start_time", "count")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    count: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class GetStatisticsResponse(_message.Message):
    __slots__ = ("start_time", "end_time", "total_events", "by_event_type", "by_result", "by_service", "failed_logins", "top_users", "bucket_width", "buckets")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_EVENTS_FIELD_NUMBER: _ClassVar[int]
    BY_EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BY_RESULT_FIELD_NUMBER: _ClassVar[int]
    BY_SERVICE_FIELD_NUMBER: _ClassVar[int]
    FAILED_LOGINS_FIELD_NUMBER: _ClassVar[int]
    TOP_USERS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    total_events: int
    by_event_type: _containers.RepeatedCompositeFieldContainer[CountByKey]
    by_result: _containers.RepeatedCompositeFieldContainer[CountByKey]
    by_service: _containers.RepeatedCompositeFieldContainer[CountByKey]
    failed_logins: int
    top_users: _containers.RepeatedCompositeFieldContainer[CountByKey]
    bucket_width: _duration_pb2.Duration
    buckets: _containers.RepeatedCompositeFieldContainer[TimeBucket]
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_events: _Optional[int] = ..., by_event_type: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., by_result: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., by_service: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., failed_logins: _Optional[int] = ..., top_users: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., bucket_width: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[TimeBucket, _Mapping]]] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ComponentHealth(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "components", "appender_queue_depth", "appender_lag", "sinks", "notice")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    APPENDER_QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    APPENDER_LAG_FIELD_NUMBER: _ClassVar[int]
    SINKS_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    components: _containers.RepeatedCompositeFieldContainer[ComponentHealth]
    appender_queue_depth: int
    appender_lag: _duration_pb2.Duration
    sinks: _containers.RepeatedCompositeFieldContainer[SinkHealth]
    notice: str
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., components: _Optional[_Iterable[_Union[ComponentHealth, _Mapping]]] = ..., appender_queue_depth: _Optional[int] = ..., appender_lag: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., sinks: _Optional[_Iterable[_Union[SinkHealth, _Mapping]]] = ..., notice: _Optional[str] = ...) -> None: ...

class SinkHealth(_message.Message):
    __slots__ = ("name", "lag_events", "lag", "last_error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAG_EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    lag_events: int
    lag: _duration_pb2.Duration
    last_error: str
    def __init__(self, name: _Optional[str] = ..., lag_events: _Optional[int] = ..., lag: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_error: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("event_type", "user_id", "service", "result")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    user_id: str
    service: str
    result: str
    def __init__(self, event_type: _Optional[str] = ..., user_id: _Optional[str] = ..., service: _Optional[str] = ..., result: _Optional[str] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.AuditEvent
    def __init__(self, event: _Optional[_Union[_event_pb2.AuditEvent, _Mapping]] = ...) -> None: ...

class VerifyIntegrityRequest(_message.Message):
    __slots__ = ("chain_id", "from_seq", "to_seq")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    from_seq: int
    to_seq: int
    def __init__(self, chain_id: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ...) -> None: ...

class VerifyIntegrityResponse(_message.Message):
    __slots__ = ("ok", "chain_id", "from_seq", "to_seq", "events_checked", "first_bad_seq", "reason")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    chain_id: str
    from_seq: int
    to_seq: int
    events_checked: int
    first_bad_seq: int
    reason: str
    def __init__(self, ok: _Optional[bool] = ..., chain_id: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., events_checked: _Optional[int] = ..., first_bad_seq: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("chain_id", "page_size", "page_token")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    page_size: int
    page_token: str
    def __init__(self, chain_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("chain_id", "seq", "hash", "checkpoint_time", "key_id", "signature", "object_key", "root_hash", "note")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_TIME_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    hash: bytes
    checkpoint_time: _timestamp_pb2.Timestamp
    key_id: str
    signature: bytes
    object_key: str
    root_hash: bytes
    note: str
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., hash: _Optional[bytes] = ..., checkpoint_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., object_key: _Optional[str] = ..., root_hash: _Optional[bytes] = ..., note: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("chain_id",)
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    def __init__(self, chain_id: _Optional[str] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("chain_id", "event_id", "seq", "tree_size")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    event_id: str
    seq: int
    tree_size: int
    def __init__(self, chain_id: _Optional[str] = ..., event_id: _Optional[str] = ..., seq: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("chain_id", "leaf_index", "tree_size", "root_hash", "leaf_hash", "hashes", "checkpoint")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    leaf_index: int
    tree_size: int
    root_hash: bytes
    leaf_hash: bytes
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    checkpoint: str
    def __init__(self, chain_id: _Optional[str] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., leaf_hash: _Optional[bytes] = ..., hashes: _Optional[_Iterable[bytes]] = ..., checkpoint: _Optional[str] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("chain_id", "old_size", "new_size")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    old_size: int
    new_size: int
    def __init__(self, chain_id: _Optional[str] = ..., old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofResponse(_message.Message):
    __slots__ = ("chain_id", "old_size", "new_size", "hashes")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    old_size: int
    new_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, chain_id: _Optional[str] = ..., old_size: _Optional[int] = ..., new_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetPublicKeyResponse(_message.Message):
    __slots__ = ("algorithm", "key_id", "public_key_pem", "checkpoint_bucket")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_BUCKET_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    key_id: str
    public_key_pem: str
    checkpoint_bucket: str
    def __init__(self, algorithm: _Optional[str] = ..., key_id: _Optional[str] = ..., public_key_pem: _Optional[str] = ..., checkpoint_bucket: _Optional[str] = ...) -> None: ...
