"""AuditService over gRPC: converts messages to domain calls and back, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc
from google.api import httpbody_pb2
from google.protobuf import duration_pb2

from audit.v2 import audit_service_pb2 as pb
from audit.v2 import audit_service_pb2_grpc as pb_grpc
from audit_svc.access import ADMIN, READER
from audit_svc.api import convert
from audit_svc.api.guard import Guard
from audit_svc.errors import InvalidArgument
from audit_svc.ingest.ingestor import Ingestor
from audit_svc.ingest.stream import ingest_stream
from audit_svc.model import FieldViolation
from audit_svc.privacy.admin import PrivacyAdmin
from audit_svc.read.live_tail import LiveTail, WatchFilter
from audit_svc.read.reader import Reader

Context: TypeAlias = grpc.aio.ServicerContext


class AuditServicer(pb_grpc.AuditServiceServicer):
    """audit.v2.AuditService."""

    def __init__(
        self,
        ingestor: Ingestor,
        reader: Reader,
        tail: LiveTail,
        guard: Guard,
        privacy: PrivacyAdmin,
    ) -> None:
        self._privacy = privacy
        self._ingestor = ingestor
        self._reader = reader
        self._tail = tail
        self._guard = guard

    async def Ingest(self, request: pb.IngestRequest, context: Context) -> pb.IngestResponse:
        principal = self._guard.principal(context)
        if not request.HasField("event"):
            raise InvalidArgument([FieldViolation("event", "is required")])
        result = await self._ingestor.ingest_one(
            request.event, principal, size=request.ByteSize(), wire=convert.MESSAGES
        )
        return pb.IngestResponse(result=convert.result_pb(result))

    async def IngestBatch(
        self, request: pb.IngestBatchRequest, context: Context
    ) -> pb.IngestBatchResponse:
        principal = self._guard.principal(context)
        results = await self._ingestor.ingest(
            request.events, principal, size=request.ByteSize(), wire=convert.MESSAGES
        )
        response = pb.IngestBatchResponse()
        convert.add_results(response.results, results)
        return response

    async def StreamIngest(
        self, request_iterator: AsyncIterator[pb.StreamIngestRequest], context: Context
    ) -> AsyncIterator[pb.StreamIngestResponse]:
        principal = self._guard.principal(context)
        batches = ingest_stream(self._ingestor, principal, request_iterator, convert.stream_batch)
        async for ack in batches:
            response = pb.StreamIngestResponse(batch_id=ack.batch_id)
            convert.add_results(response.results, ack.results)
            yield response

    async def Query(self, request: pb.QueryRequest, context: Context) -> pb.QueryResponse:
        principal = self._guard.reader(context, READER)
        page = await self._reader.query(
            convert.query_filters(request),
            principal,
            page_size=request.page_size,
            limit=request.limit,
            page_token=request.page_token,
            include_archive=request.include_archive,
        )
        response = pb.QueryResponse(next_page_token=page.next_page_token)
        convert.add_events(response.events, page.events)
        self._guard.record(principal, "Query", request, len(page.events))
        return response

    async def GetEvent(self, request: pb.GetEventRequest, context: Context) -> pb.GetEventResponse:
        principal = self._guard.reader(context, READER)
        stored = await self._reader.get_event(request.event_id, principal)
        self._guard.record(principal, "GetEvent", request, 1)
        return pb.GetEventResponse(event=convert.event_pb(stored))

    async def GetStatistics(
        self, request: pb.GetStatisticsRequest, context: Context
    ) -> pb.GetStatisticsResponse:
        principal = self._guard.reader(context, READER)
        stats = await self._reader.statistics(
            request.time_range,
            convert.optional_time(request, "start_time"),
            convert.optional_time(request, "end_time"),
            principal,
        )
        response = convert.statistics_pb(stats)
        self._guard.record(principal, "GetStatistics", request, response.total_events)
        return response

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
            notice=self._guard.notice,
        )

    async def Watch(
        self, request: pb.WatchRequest, context: Context
    ) -> AsyncIterator[pb.WatchResponse]:
        principal = self._guard.reader(context, READER)
        self._guard.record(principal, "Watch", request, 0)  # a tail has no count up front
        where = WatchFilter(
            event_type=request.event_type,
            user_id=request.user_id,
            service=request.service,
            result=request.result,
        )
        with self._tail.subscribe(self._reader.watch_filter(where), principal.name) as events:
            async for stored in events:
                (shown,) = await self._reader.reveal([stored], principal)
                yield pb.WatchResponse(event=convert.event_pb(shown))

    async def VerifyIntegrity(
        self, request: pb.VerifyIntegrityRequest, context: Context
    ) -> pb.VerifyIntegrityResponse:
        principal = self._guard.reader(context, ADMIN)
        result = await self._reader.verify(request.chain_id, request.from_seq, request.to_seq)
        self._guard.record(principal, "VerifyIntegrity", request, result.events_checked)
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
        principal = self._guard.reader(context, ADMIN)
        page = await self._reader.list_checkpoints(
            request.chain_id, request.page_size, request.page_token
        )
        self._guard.record(principal, "ListCheckpoints", request, len(page.checkpoints))
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

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        text = await self._reader.checkpoint_note(request.chain_id)
        return httpbody_pb2.HttpBody(content_type="text/plain; charset=utf-8", data=text.encode())

    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: Context
    ) -> pb.GetInclusionProofResponse:
        # A leaf hash lets its holder confirm a guess of the event's content, so this
        # proof is a read; checkpoints and consistency proofs (sizes, roots) are public.
        principal = self._guard.reader(context, READER)
        p = await self._reader.inclusion_proof(
            request.chain_id, request.event_id, request.seq, request.tree_size
        )
        self._guard.record(principal, "GetInclusionProof", request, 1)
        return pb.GetInclusionProofResponse(
            chain_id=p.chain_id, leaf_index=p.leaf_index, tree_size=p.tree_size,
            root_hash=p.root_hash, leaf_hash=p.leaf_hash, hashes=p.hashes, checkpoint=p.checkpoint,
        )  # fmt: skip

    async def ExportEvents(
        self, request: pb.ExportEventsRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        principal = self._guard.reader(context, READER)
        export = self._reader.export(convert.query_filters(request), request.format, principal)
        try:
            async for chunk in export.chunks():
                yield httpbody_pb2.HttpBody(content_type=export.content_type, data=chunk)
        finally:  # recorded however it ended, with what was sent
            self._guard.record(principal, "ExportEvents", request, export.count)

    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: Context
    ) -> pb.GetConsistencyProofResponse:
        p = await self._reader.consistency_proof(
            request.chain_id, request.old_size, request.new_size
        )
        return pb.GetConsistencyProofResponse(
            chain_id=p.chain_id, old_size=p.old_size, new_size=p.new_size, hashes=p.hashes
        )

    async def EraseSubject(
        self, request: pb.EraseSubjectRequest, context: Context
    ) -> pb.EraseSubjectResponse:
        principal = self._guard.reader(context, ADMIN)
        r = await self._privacy.erase(request.user_id, principal.name)
        return pb.EraseSubjectResponse(
            subject=r.subject, events=r.events, archived_events=r.archived_events,
            fields=r.fields, erase_time=convert.timestamp(r.erase_time),
            erasure_event_id=r.erasure_event_id, already_erased=r.already_erased,
        )  # fmt: skip

    async def PlaceLegalHold(
        self, request: pb.PlaceLegalHoldRequest, context: Context
    ) -> pb.PlaceLegalHoldResponse:
        principal = self._guard.reader(context, ADMIN)
        hold = await self._privacy.place_hold(
            principal.name,
            request.reason,
            user_id=request.user_id,
            start=convert.optional_time(request, "start_time"),
            end=convert.optional_time(request, "end_time"),
        )
        return pb.PlaceLegalHoldResponse(hold=convert.hold_pb(hold))

    async def LiftLegalHold(
        self, request: pb.LiftLegalHoldRequest, context: Context
    ) -> pb.LiftLegalHoldResponse:
        principal = self._guard.reader(context, ADMIN)
        hold = await self._privacy.lift_hold(request.hold_id, principal.name)
        return pb.LiftLegalHoldResponse(hold=convert.hold_pb(hold))

    async def ListLegalHolds(
        self, request: pb.ListLegalHoldsRequest, context: Context
    ) -> pb.ListLegalHoldsResponse:
        principal = self._guard.reader(context, ADMIN)
        holds = await self._privacy.holds(include_lifted=request.include_lifted)
        self._guard.record(principal, "ListLegalHolds", request, len(holds))
        return pb.ListLegalHoldsResponse(holds=[convert.hold_pb(h) for h in holds])
