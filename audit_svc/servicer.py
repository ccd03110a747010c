"""AuditService over gRPC: converts messages to domain calls and back, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc import convert
from audit_svc.errors import InvalidArgument
from audit_svc.ingest import Ingestor
from audit_svc.model import EventResult, FieldViolation, Outcome

# Batches of one stream being committed at once; more wait in the transport.
MAX_IN_FLIGHT = 64


class AuditServicer(pb_grpc.AuditServiceServicer):
    """The write RPCs; the read RPCs are added by `ReadServicer` mixins below."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def Ingest(
        self, request: pb.IngestRequest, context: grpc.aio.ServicerContext
    ) -> pb.IngestResponse:
        if not request.HasField("event"):
            raise InvalidArgument([FieldViolation("event", "is required")])
        result = await self._ingestor.ingest_one(convert.event_input(request.event))
        return pb.IngestResponse(result=convert.result_pb(result))

    async def IngestBatch(
        self, request: pb.IngestBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.IngestBatchResponse:
        results = await self._ingestor.ingest([convert.event_input(e) for e in request.events])
        return pb.IngestBatchResponse(results=[convert.result_pb(r) for r in results])

    async def StreamIngest(
        self,
        request_iterator: AsyncIterator[pb.StreamIngestRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamIngestResponse]:
        """Pipelined: batches are read and committed while earlier acks are sent,
        and acks leave in the order the batches came."""
        in_flight: asyncio.Queue[asyncio.Task[pb.StreamIngestResponse] | None] = asyncio.Queue(
            MAX_IN_FLIGHT
        )

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    await in_flight.put(asyncio.create_task(self._ack(batch)))
            finally:
                await in_flight.put(None)

        reader = asyncio.create_task(read())
        try:
            while (task := await in_flight.get()) is not None:
                yield await task
            await reader  # surfaces a read error, if any
        finally:
            reader.cancel()
            while not in_flight.empty():
                if (task := in_flight.get_nowait()) is not None:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _ack(self, batch: pb.StreamIngestRequest) -> pb.StreamIngestResponse:
        inputs = [convert.event_input(e) for e in batch.events]
        try:
            if not batch.batch_id:
                raise InvalidArgument([FieldViolation("batch_id", "is required")])
            results = await self._ingestor.ingest(inputs)
        except InvalidArgument as exc:
            # A malformed batch is rejected event by event; the stream goes on.
            results = [
                EventResult(i, raw.event_id, Outcome.REJECTED, None, exc.reason, exc.violations)
                for i, raw in enumerate(inputs)
            ]
        return pb.StreamIngestResponse(
            batch_id=batch.batch_id, results=[convert.result_pb(r) for r in results]
        )
