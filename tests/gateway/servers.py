"""Real gRPC servers the gateway tests put behind the gateway.

`EverythingServer` serves the test-only gwtest.v1.EverythingService (compiled from
tests/gateway/protos into a temporary descriptor set) and records every request and
its metadata, so a test compares the exact gRPC request with the REST request.
`UserServer` is a small real user.v1.UserService for the 8001 listener. Both are
grpc.aio servers on free ports; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from grpc_tools import protoc

from gateway.descriptors import Descriptors
from tests.testkit import tls
from user.v1 import user_service_pb2 as user_pb
from user.v1 import user_service_pb2_grpc as user_grpc

ROOT = Path(__file__).resolve().parents[2]
TEST_PROTOS = Path(__file__).resolve().parent / "protos"
EVERYTHING = "gwtest.v1.EverythingService"


def compile_test_protos(out: Path) -> Path:
    """The descriptor set of the test protos (with imports and comments), as
    scripts/gen_protos.py builds gen/auditmesh.binpb."""
    target = out / "gwtest.binpb"
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "protoc",
        f"-I{TEST_PROTOS}",
        f"-I{ROOT / 'protos'}",
        f"-I{well_known}",
        f"--descriptor_set_out={target}",
        "--include_imports",
        "--include_source_info",
        "gwtest/v1/everything.proto",
    ]
    assert protoc.main(args) == 0, "protoc failed on the test protos"
    return target


@dataclass(frozen=True)
class Received:
    """One call as the upstream saw it."""

    method: str
    request: Any
    metadata: dict[str, str]


def _pack(msg: message.Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)
    return packed


def rich_status(code: int, reason: str) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="test.auditmesh.dev")
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="code", description="asked to fail")
        ]
    )
    return status_pb2.Status(
        code=code, message=f"failed with code {code}", details=[_pack(info), _pack(bad)]
    )


class EverythingServer:
    """gwtest.v1.EverythingService on a real grpc.aio server (mutual TLS)."""

    identity = "everything-service"

    def __init__(self, descriptors: Descriptors) -> None:
        self.descriptors = descriptors
        self.received: list[Received] = []
        self.holding = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    def message(self, name: str, **fields: Any) -> Any:
        """A message of the test protos, built from this server's descriptor pool."""
        desc = self.descriptors.pool.FindMessageTypeByName(f"gwtest.v1.{name}")
        return self.descriptors.message_class(desc)(**fields)

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def __aenter__(self) -> EverythingServer:
        service = self.descriptors.service(EVERYTHING)
        handlers = {}
        for method in service.methods:
            request = self.descriptors.message_class(method.input_type)
            response = self.descriptors.message_class(method.output_type)
            if method.server_streaming:
                handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                    self._count,
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
            else:
                handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                    functools.partial(self._unary, method.name, response),
                    request_deserializer=request.FromString,
                    response_serializer=response.SerializeToString,
                )
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(EVERYTHING, handlers),)
        )
        self.port = self._server.add_secure_port(
            "127.0.0.1:0", tls.server_credentials_of(self.identity)
        )
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.stop(None)

    def _record(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.received.append(Received(method, request, metadata))

    async def _unary(
        self, method: str, response: type[Any], request: Any, context: grpc.aio.ServicerContext
    ) -> Any:
        self._record(method, request, context)
        if method == "Fail":
            status = rich_status(request.code, f"TEST_CODE_{request.code}")
            await context.abort_with_status(rpc_status.to_status(status))
        if method in ("Echo", "Special"):
            return request
        return response(name=request.name, filter=method)

    async def _count(self, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        self._record("Count", request, context)
        item = self.descriptors.message_class(
            self.descriptors.pool.FindMessageTypeByName("gwtest.v1.Everything")
        )
        for i in range(request.count):
            yield item(int32_value=i + 1, int64_value=(i + 1) * 10)
        if request.fail_code:
            status = rich_status(request.fail_code, "TEST_STREAM_FAILURE")
            await context.abort_with_status(rpc_status.to_status(status))
        if request.hold:
            self.holding.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise


class UserServer(user_grpc.UserServiceServicer):
    """A small real user.v1.UserService: enough to serve the 8001 listener's paths."""

    identity = "user-service"

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def __aenter__(self) -> UserServer:
        self._server = grpc.aio.server()
        user_grpc.add_UserServiceServicer_to_server(self, self._server)
        self.port = self._server.add_secure_port(
            "127.0.0.1:0", tls.server_credentials_of(self.identity)
        )
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.stop(None)

    def _record(self, method: str, request: Any, context: grpc.aio.ServicerContext) -> None:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.received.append(Received(method, request, metadata))

    async def Health(
        self, request: user_pb.HealthRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.HealthResponse:
        self._record("Health", request, context)
        return user_pb.HealthResponse(status="SERVING", version="test")

    async def CreateUser(
        self, request: user_pb.CreateUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.CreateUserResponse:
        self._record("CreateUser", request, context)
        user = user_pb.User(user_id="u-1", username=request.username, email=request.email)
        return user_pb.CreateUserResponse(user=user)

    async def UpdateUser(
        self, request: user_pb.UpdateUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.UpdateUserResponse:
        self._record("UpdateUser", request, context)
        return user_pb.UpdateUserResponse(user=request.user)

    async def LockUser(
        self, request: user_pb.LockUserRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.LockUserResponse:
        self._record("LockUser", request, context)
        return user_pb.LockUserResponse(user=user_pb.User(user_id=request.user_id, locked=True))

    async def RemoveRole(
        self, request: user_pb.RemoveRoleRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.RemoveRoleResponse:
        self._record("RemoveRole", request, context)
        return user_pb.RemoveRoleResponse(user=user_pb.User(user_id=request.user_id))

    async def Login(
        self, request: user_pb.LoginRequest, context: grpc.aio.ServicerContext
    ) -> user_pb.LoginResponse:
        self._record("Login", request, context)
        status = rich_status(16, "INVALID_CREDENTIALS")
        await context.abort_with_status(rpc_status.to_status(status))
        raise AssertionError("abort_with_status returns only by raising")
