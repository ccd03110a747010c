"""The legacy audit.v1.AuditLogService: converts, then asks the same domain code as v2."""

from __future__ import annotations

from typing import TypeAlias

import grpc

from audit.v1 import audit_service_pb2 as pb
from audit.v1 import audit_service_pb2_grpc as pb_grpc
from audit_svc.access import READER
from audit_svc.api import convert
from audit_svc.api.guard import Guard
from audit_svc.model import StoredEvent
from audit_svc.read import legacy
from audit_svc.read.reader import Reader

Context: TypeAlias = grpc.aio.ServicerContext


class AuditLogServicer(pb_grpc.AuditLogServiceServicer):
    """audit.v1.AuditLogService."""

    def __init__(self, reader: Reader, guard: Guard) -> None:
        self._reader = reader
        self._guard = guard

    async def SearchLogs(
        self, request: pb.SearchLogsRequest, context: Context
    ) -> pb.SearchLogsResponse:
        principal = self._guard.reader(context, READER)
        page = await self._reader.search_logs(
            convert.query_filters(request),
            principal,
            limit=request.limit,
            page_token=request.page_token,
        )
        self._guard.record(principal, "SearchLogs", request, len(page.events))
        return pb.SearchLogsResponse(
            logs=[_log(e) for e in page.events], next_page_token=page.next_page_token
        )

    async def GetDashboardStatistics(
        self, request: pb.GetDashboardStatisticsRequest, context: Context
    ) -> pb.GetDashboardStatisticsResponse:
        principal = self._guard.reader(context, READER)
        board = await self._reader.dashboard(request.time_range)
        self._guard.record(principal, "GetDashboardStatistics", request, board.total_events)
        return pb.GetDashboardStatisticsResponse(
            time_range=board.time_range,
            total_events=board.total_events,
            successful_logins=board.successful_logins,
            failed_logins=board.failed_logins,
            unique_users=board.unique_users,
            events_by_type=board.events_by_type,
            events_by_result=board.events_by_result,
        )


def _log(stored: StoredEvent) -> pb.AuditLog:
    v2 = convert.event_pb(stored)
    log = pb.AuditLog(
        id=v2.event_id,
        event_type=legacy.to_v1(v2.event_type),
        user_id=v2.user_id,
        username=v2.username,
        ip_address=v2.ip_address,
        user_agent=v2.user_agent,
        service=v2.service,
        action=v2.action,
        result=v2.result,
        timestamp=v2.event_time,
    )
    log.details.CopyFrom(v2.details)
    return log
