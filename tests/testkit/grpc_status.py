"""Reading the google.rpc.Status a failed call carries, as a client would."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def reason_and_fields(err: grpc.aio.AioRpcError) -> tuple[str, list[str]]:
    """The ErrorInfo reason and the BadRequest field names of a failed call."""
    status = rpc_status.from_call(err)
    assert status is not None, "the error carries a google.rpc.Status"
    reason, fields = "", []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return reason, fields


def error_metadata(err: grpc.aio.AioRpcError) -> dict[str, str]:
    """The ErrorInfo metadata of a failed call (e.g. which legal hold refused it)."""
    status = rpc_status.from_call(err)
    assert status is not None, "the error carries a google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


def retry_delay(err: grpc.aio.AioRpcError) -> float:
    """The RetryInfo delay of a failed call, in seconds (asserting it carries one)."""
    status = rpc_status.from_call(err)
    assert status is not None, "the error carries a google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("the error carries no RetryInfo")
