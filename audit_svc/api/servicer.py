"""AuditService over gRPC: converts messages to domain calls and back, nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from google.protobuf import duration_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.api import convert
from audit_svc.errors import InvalidArgument
from audit_svc.ingest.ingestor import EventBudget, Ingestor
from audit_svc.model import EventResult, FieldViolation, Outcome
from audit_svc.read.live_tail import LiveTail, WatchFilter
from audit_svc.read.reader import Reader

# Batches of one stream being committed at once; more wait in the transport.
MAX_IN_FLIGHT = 64
Context: TypeAlias = grpc.aio.ServicerContext


def _give_back(budget: EventBudget, events: int, _: object) -> None:
    budget.give(events)


class AuditServicer(pb_grpc.AuditServiceServicer):
    """audit.v2.AuditService."""

    def __init__(self, ingestor: Ingestor, reader: Reader, tail: LiveTail) -> None:
        self._ingestor = ingestor
        self._reader = reader
        self._tail = tail

    async def Ingest(self, request: pb.IngestRequest, context: Context) -> pb.IngestResponse:
        if not request.HasField("event"):
            raise InvalidArgument([FieldViolation("event", "is required")])
        result = await self._ingestor.ingest_one(convert.event_input(request.event))
        return pb.IngestResponse(result=convert.result_pb(result))

    async def IngestBatch(
        self, request: pb.IngestBatchRequest, context: Context
    ) -> pb.IngestBatchResponse:
        results = await self._ingestor.ingest([convert.event_input(e) for e in request.events])
        response = pb.IngestBatchResponse()
        convert.add_results(response.results, results)
        return response

    async def StreamIngest(
        self, request_iterator: AsyncIterator[pb.StreamIngestRequest], context: Context
    ) -> AsyncIterator[pb.StreamIngestResponse]:
        """Pipelined: batches are read and committed while earlier acks are sent,
        and acks leave in the order the batches came."""
        in_flight: asyncio.Queue[asyncio.Task[pb.StreamIngestResponse] | None] = asyncio.Queue(
            MAX_IN_FLIGHT
        )

        budget = self._ingestor.budget

        async def read() -> None:
            try:
                async for batch in request_iterator:
                    size = len(batch.events)
                    await budget.take(size)
                    task = asyncio.create_task(self._ack(batch))
                    task.add_done_callback(functools.partial(_give_back, budget, size))
                    await in_flight.put(task)
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
        response = pb.StreamIngestResponse(batch_id=batch.batch_id)
        convert.add_results(response.results, results)
        return response

    async def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        page = await self._reader.query(
            event_type=request.event_type,
            user_id=request.user_id,
            username=request.username,
            service=request.service,
            action=request.action,
            result=request.result,
            compliance_tag=request.compliance_tag,
            data_classification=request.data_classification,
            ip_address=request.ip_address,
            start_time=convert.optional_time(request, "start_time"),
            end_time=convert.optional_time(request, "end_time"),
            details_contains=request.details_contains,
            page_size=request.page_size,
            limit=request.limit,
            page_token=request.page_token,
        )
        response = pb.QueryResponse(next_page_token=page.next_page_token)
        convert.add_events(response.events, page.events)
        return response

    async def GetEvent(self, request: pb.GetEventRequest, context: Context) -> pb.GetEventResponse:
        stored = await self._reader.get_event(request.event_id)
        return pb.GetEventResponse(event=convert.event_pb(stored))

    async def GetStatistics(
        self, request: pb.GetStatisticsRequest, context: Context
    ) -> pb.GetStatisticsResponse:
        stats = await self._reader.statistics(
            request.time_range,
            convert.optional_time(request, "start_time"),
            convert.optional_time(request, "end_time"),
        )
        return convert.statistics_pb(stats)

    async def Health(self, request: pb.HealthRequest, context: Context) -> pb.HealthResponse:
        report = await self._reader.health()
        lag = duration_pb2.Duration()
        lag.FromTimedelta(convert.seconds(report.lag_seconds))
        return pb.HealthResponse(
            status="SERVING" if report.serving else "NOT_SERVING",
            version=report.version,
            components=[
                pb.ComponentHealth(name=c.name, ok=c.ok, detail=c.detail) for c in report.components
            ],
            appender_queue_depth=report.queue_depth,
            appender_lag=lag,
            sinks=[
                pb.SinkHealth(
                    name=k.name,
                    lag_events=k.lag_events,
                    lag=convert.duration(k.lag_seconds),
                    last_error=k.last_error,
                )
                for k in report.sinks
            ],
        )

    async def Watch(
        self, request: pb.WatchRequest, context: Context
    ) -> AsyncIterator[pb.WatchResponse]:
        where = WatchFilter(
            event_type=request.event_type,
            user_id=request.user_id,
            service=request.service,
            result=request.result,
        )
        with self._tail.subscribe(where) as events:
            async for stored in events:
                yield pb.WatchResponse(event=convert.event_pb(stored))

    async def VerifyIntegrity(
        self, request: pb.VerifyIntegrityRequest, context: Context
    ) -> pb.VerifyIntegrityResponse:
        if request.from_seq < 0 or request.to_seq < 0:
            field = "from_seq" if request.from_seq < 0 else "to_seq"
            raise InvalidArgument([FieldViolation(field, "must not be negative")])
        result = await self._reader.verify(request.chain_id, request.from_seq, request.to_seq)
        return pb.VerifyIntegrityResponse(
            ok=result.ok,
            chain_id=result.chain_id,
            from_seq=result.from_seq,
            to_seq=result.to_seq,
            events_checked=result.events_checked,
            first_bad_seq=result.first_bad_seq,
            reason=result.reason,
        )

    async def ListCheckpoints(
        self, request: pb.ListCheckpointsRequest, context: Context
    ) -> pb.ListCheckpointsResponse:
        page = await self._reader.list_checkpoints(
            request.chain_id, request.page_size, request.page_token
        )
        return pb.ListCheckpointsResponse(
            checkpoints=[convert.checkpoint_pb(c) for c in page.checkpoints],
            next_page_token=page.next_page_token,
        )

    async def GetPublicKey(
        self, request: pb.GetPublicKeyRequest, context: Context
    ) -> pb.GetPublicKeyResponse:
        key = self._reader.public_key()
        return pb.GetPublicKeyResponse(
            algorithm=key.algorithm,
            key_id=key.key_id,
            public_key_pem=key.public_key_pem,
            checkpoint_bucket=key.checkpoint_bucket,
        )
