"""The one module that speaks gRPC: a channel to the audit-service and its StreamIngest
stream. Every gRPC failure becomes a TransportError here; nothing else imports grpc
(the RabbitMQ transport, audit_client.amqp_transport, has the same shape)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Protocol

import grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_client.errors import TransportError
from meshkit.tls import TlsFiles, aio_channel, warn_plaintext


class IngestStream(Protocol):
    """One StreamIngest call: batches up, acks down, in order."""

    async def send(self, request: pb.StreamIngestRequest) -> None: ...

    async def receive(self) -> pb.StreamIngestResponse: ...

    def cancel(self) -> None: ...


class Transport(Protocol):
    """Opens streams to the audit-service (GrpcTransport), or to its queue on a
    RabbitMQ broker (audit_client.amqp_transport)."""

    async def open(self) -> IngestStream: ...

    async def aclose(self) -> None: ...


@contextlib.contextmanager
def _map_grpc_errors(what: str) -> Iterator[None]:
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise TransportError(f"{what}: {exc.code().name} {exc.details()}") from exc
    except (grpc.aio.UsageError, asyncio.InvalidStateError, grpc.RpcError) as exc:
        raise TransportError(f"{what}: {exc!r}") from exc


class GrpcStream:
    """A StreamIngest call driven with write() and read()."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self._call = call

    async def send(self, request: pb.StreamIngestRequest) -> None:
        with _map_grpc_errors("send"):
            await self._call.write(request)

    async def receive(self) -> pb.StreamIngestResponse:
        with _map_grpc_errors("receive"):
            ack = await self._call.read()
        if ack is grpc.aio.EOF:
            raise TransportError("the audit-service ended the stream")
        assert isinstance(ack, pb.StreamIngestResponse)
        return ack

    def cancel(self) -> None:
        self._call.cancel()


class GrpcTransport:
    """A long-lived channel, replaced when a connection attempt finds it failed: the
    circuit breaker, not gRPC's reconnect backoff, paces the attempts."""

    def __init__(self, target: str, tls: TlsFiles | None, *, connect_timeout: float) -> None:
        self._target = target
        self._tls = tls
        if tls is None:
            warn_plaintext("the audit client's link to the audit-service", "AUDIT_CLIENT_TLS")
        self._connect_timeout = connect_timeout
        self._channel = self._new_channel()
        self._stub = pb_grpc.AuditServiceStub(self._channel)

    def __str__(self) -> str:
        return self._target

    def _new_channel(self) -> grpc.aio.Channel:
        return aio_channel(
            self._target,
            self._tls,
            options=[
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000),
                ("grpc.enable_retries", 0),
            ],
        )

    async def open(self) -> GrpcStream:
        """A new stream once the channel is connected; TransportError as soon as a
        connection attempt fails, or after the connect timeout."""
        try:
            await asyncio.wait_for(self._connected(), self._connect_timeout)
        except TimeoutError:
            raise TransportError(
                f"no connection to the audit-service within {self._connect_timeout} s"
            ) from None
        with _map_grpc_errors("open"):
            call = self._stub.StreamIngest(wait_for_ready=False)
        return GrpcStream(call)

    async def _connected(self) -> None:
        # A channel in TRANSIENT_FAILURE stays there while it retries on its own
        # schedule: a new channel makes this attempt a real, immediate one.
        state = self._channel.get_state(try_to_connect=True)
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN):
            old, self._channel = self._channel, self._new_channel()
            self._stub = pb_grpc.AuditServiceStub(self._channel)
            await old.close()
            state = self._channel.get_state(try_to_connect=True)
        while state is not grpc.ChannelConnectivity.READY:
            if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                raise TransportError("cannot connect to the audit-service")
            if state is grpc.ChannelConnectivity.SHUTDOWN:
                raise TransportError("the channel is closed")
            await self._channel.wait_for_state_change(state)
            state = self._channel.get_state(try_to_connect=True)

    async def checkpoint(self) -> bytes:
        """The serving replica's newest signed checkpoint note (GetCheckpoint)."""
        with _map_grpc_errors("GetCheckpoint"):
            body = await self._stub.GetCheckpoint(
                pb.GetCheckpointRequest(), timeout=self._connect_timeout
            )
        return bytes(body.data)

    async def consistency_proof(self, chain_id: str, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof between two tree sizes of a chain."""
        with _map_grpc_errors("GetConsistencyProof"):
            reply = await self._stub.GetConsistencyProof(
                pb.GetConsistencyProofRequest(
                    chain_id=chain_id, old_size=old_size, new_size=new_size
                ),
                timeout=self._connect_timeout,
            )
        return list(reply.hashes)

    async def aclose(self) -> None:
        await self._channel.close()
