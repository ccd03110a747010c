"""Hypothesis-made requests for every unary RPC of the audit-service (v2 and v1) and the
user-service, over real gRPC: no call may end INTERNAL, UNKNOWN (an exception the
servicer did not map) or DATA_LOSS.

Requests are built from the descriptors: any value of each field's type, plus strings
shaped like what the services parse (ids, times, event types, page tokens). A fixed
seed (`derandomize`) and FUZZ_EXAMPLES examples per method keep it repeatable.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor, message_factory
from google.protobuf.descriptor import FieldDescriptor as FD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.v1 import audit_service_pb2 as v1_pb
from audit.v2 import audit_service_pb2 as v2_pb
from meshkit.tls import channel_credentials
from tests.fuzz.conftest import FuzzMesh
from tests.testkit import tls
from user.v1 import user_service_pb2 as user_pb

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8")) * 3
FAILING = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
SHAPED = st.sampled_from(
    [
        "",
        "auth.login_success",
        "auth.*",
        "*",
        "user123",
        "0192f5e0-0000-7000-8000-000000000000",
        "not-a-uuid",
        "2026-12-02T10:00:00Z",
        "24h",
        "-1",
        "9" * 30,
        "chain-1",
        "AAAA",
        "%00",
        "\x00",
        "a" * 5000,
        "192.168.1.100",
        "SOX",
    ]
)
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FD.TYPE_STRING: st.one_of(SHAPED, st.text(max_size=40)),
    FD.TYPE_BYTES: st.binary(max_size=64),
    FD.TYPE_BOOL: st.booleans(),
    FD.TYPE_DOUBLE: st.floats(allow_nan=True),
    FD.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    **{
        t: st.integers(-(2**31), 2**31 - 1)
        for t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32)
    },
    **{t: st.integers(0, 2**32 - 1) for t in (FD.TYPE_UINT32, FD.TYPE_FIXED32)},
    **{
        t: st.integers(-(2**63), 2**63 - 1)
        for t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64)
    },
    **{t: st.integers(0, 2**64 - 1) for t in (FD.TYPE_UINT64, FD.TYPE_FIXED64)},
}


def message_of(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of type `desc` with any subset of fields set to values of their type."""
    cls = message_factory.GetMessageClass(desc)
    fields = [f for f in desc.fields if depth < 3 or f.type != FD.TYPE_MESSAGE]

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        msg = cls()
        for field in draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []:
            values = value_of(field, depth)
            if field.is_repeated:
                if field.message_type is not None and field.message_type.GetOptions().map_entry:
                    key_f, value_f = field.message_type.fields
                    items = draw(
                        st.dictionaries(
                            value_of(key_f, depth), value_of(value_f, depth), max_size=3
                        )
                    )
                    target = getattr(msg, field.name)
                    for key, value in items.items():
                        if value_f.type == FD.TYPE_MESSAGE:
                            target[key].CopyFrom(value)
                        else:
                            target[key] = value
                    continue
                for value in draw(st.lists(values, max_size=3)):
                    if field.type == FD.TYPE_MESSAGE:
                        getattr(msg, field.name).add().CopyFrom(value)
                    else:
                        getattr(msg, field.name).append(value)
            elif field.type == FD.TYPE_MESSAGE:
                getattr(msg, field.name).CopyFrom(draw(values))
            else:
                setattr(msg, field.name, draw(values))
        return msg

    return build()


def value_of(field: FD, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        nested = field.message_type
        return st.deferred(lambda: message_of(nested, depth + 1))
    if field.enum_type is not None:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-5, 100))
    return SCALARS[field.type]


def unary_methods(service: descriptor.ServiceDescriptor) -> list[descriptor.MethodDescriptor]:
    return [m for m in service.methods if not m.client_streaming and not m.server_streaming]


def fuzz_service(target: str, service: descriptor.ServiceDescriptor) -> None:
    """Every unary method of `service` at `target` (blocking: run it in a thread)."""
    credentials = channel_credentials(tls.files())
    with grpc.secure_channel(target, credentials) as channel:
        for method in unary_methods(service):
            output = message_factory.GetMessageClass(method.output_type)
            call = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=output.FromString,
            )
            check_method(method, call)


def check_method(method: descriptor.MethodDescriptor, call: Callable[..., Any]) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=message_of(method.input_type))
    def no_internal_error(request: Any) -> None:
        try:
            call(request, timeout=20)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            assert code not in FAILING, f"{method.full_name}({request}) -> {code} {details}"

    no_internal_error()


async def test_no_audit_service_call_ends_internal(fuzz_mesh: FuzzMesh) -> None:
    target = f"127.0.0.1:{fuzz_mesh.audit_grpc}"
    for pb in (v2_pb, v1_pb):
        for service in pb.DESCRIPTOR.services_by_name.values():
            await asyncio.to_thread(fuzz_service, target, service)


async def test_no_user_service_call_ends_internal(fuzz_mesh: FuzzMesh) -> None:
    target = f"127.0.0.1:{fuzz_mesh.user_grpc}"
    for service in user_pb.DESCRIPTOR.services_by_name.values():
        await asyncio.to_thread(fuzz_service, target, service)
