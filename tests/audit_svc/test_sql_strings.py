"""Every string a caller can put in an audit-service request, fuzzed with NUL and
control characters: the answer is a result or INVALID_ARGUMENT naming the field, never
INTERNAL (a string PostgreSQL refuses reaching the driver). The request fields are
read from the descriptors, so a field added later is fuzzed too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from audit.v1 import audit_service_pb2 as v1
from audit.v1 import audit_service_pb2_grpc as v1_grpc
from audit.v2 import audit_service_pb2 as v2
from audit.v2 import audit_service_pb2_grpc as v2_grpc
from audit_svc.app import AuditApp
from devstack.events import guide_event
from tests.testkit import tls
from tests.testkit.grpc_status import reason_and_fields

HOSTILE = ("a\x00b", "\x00", "a\x01\x1f\x7fb", "a\u2028b\u0085")
SKIPPED = {"StreamIngest"}  # the same validation as IngestBatch (tests/audit_svc/test_ingest.py)


def string_fields(message: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the string fields of a message type (one level of nesting)."""
    out = []
    for f in message.DESCRIPTOR.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            out.append(prefix + f.name)
        elif (
            f.type == FieldDescriptor.TYPE_MESSAGE
            and not f.is_repeated
            and not prefix
            and f.message_type.full_name.startswith("audit.")
        ):
            out += string_fields(getattr(message, f.name), f"{f.name}.")
    return out


def request_with(method: MethodDescriptor, module: Any, path: str, value: str) -> Any:
    request = getattr(module, method.input_type.name)()
    if method.input_type.name in ("IngestRequest",):
        request.event.CopyFrom(guide_event())
    target, name = request, path
    if "." in path:
        outer, name = path.split(".", 1)
        target = getattr(request, outer)
    field = target.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        getattr(target, name).append(value)
    else:
        setattr(target, name, value)
    return request


CASES = [
    (service, method, module, path)
    for service, module in ((v2.DESCRIPTOR.services_by_name["AuditService"], v2),
                            (v1.DESCRIPTOR.services_by_name["AuditLogService"], v1))
    for method in service.methods
    if method.name not in SKIPPED
    for path in string_fields(getattr(module, method.input_type.name)())
]  # fmt: skip


@pytest.fixture
async def stubs(app: AuditApp) -> AsyncIterator[dict[str, Any]]:
    async with tls.channel(f"127.0.0.1:{app.port}") as channel:
        await v2_grpc.AuditServiceStub(channel).IngestBatch(
            v2.IngestBatchRequest(events=[guide_event() for _ in range(3)])
        )
        yield {
            "AuditService": v2_grpc.AuditServiceStub(channel),
            "AuditLogService": v1_grpc.AuditLogServiceStub(channel),
        }


async def failure(call: Any) -> grpc.aio.AioRpcError | None:
    """The error a call ends with (a streaming one: before its first message, or
    while it stays open 0.3 s); None when it answers."""
    try:
        if isinstance(call, grpc.aio.UnaryStreamCall):
            try:
                await asyncio.wait_for(call.read(), timeout=0.3)
            except TimeoutError:
                call.cancel()
            return None
        await call
    except grpc.aio.AioRpcError as err:
        return err
    return None


async def test_no_string_in_any_request_reaches_the_database_unchecked(
    stubs: dict[str, Any],
) -> None:
    internal, unnamed = [], []
    for service, method, module, path in CASES:
        stub = stubs[service.name]
        for value in HOSTILE:
            err = await failure(
                getattr(stub, method.name)(request_with(method, module, path, value))
            )
            where = f"{method.name}.{path}={value!r}"
            if err is None:
                continue
            if err.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                internal.append(where)
            elif err.code() == grpc.StatusCode.INVALID_ARGUMENT and not reason_and_fields(err)[1]:
                unnamed.append(where)
    assert internal == []
    assert unnamed == []  # INVALID_ARGUMENT names the field


@pytest.mark.parametrize("field", ["user_id", "username", "compliance_tags"])
async def test_control_characters_in_who_an_event_names_are_refused_naming_the_field(
    stubs: dict[str, Any], field: str
) -> None:
    event = guide_event()
    if field == "compliance_tags":
        event.compliance_tags.append("SOX\nforged: line")
    else:
        setattr(event, field, "johndoe\r\nforged: line")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs["AuditService"].Ingest(v2.IngestRequest(event=event))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, fields = reason_and_fields(caught.value)
    assert reason == "INVALID_EVENT"
    assert [f.split("[")[0] for f in fields] == [field]
