"""Keeps grpc.health.v1 truthful: NOT_SERVING while this replica cannot commit (its
database does not answer, or it lost its chain's lock), SERVING again once it can.

The verdict comes from the same report as the REST health (`Reader.health`), so a
load balancer probing gRPC and an operator curling `/api/v2/events/health` never see
two different answers for long (at most one `interval`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthWatch:
    """`run` polls `can_commit` every `interval` seconds and sets every name's status."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        names: Sequence[str],
        can_commit: Callable[[], Awaitable[tuple[bool, str]]],
        *,
        interval: float,
    ) -> None:
        self._servicer = servicer
        self._names = ("", *names)
        self._can_commit = can_commit
        self._interval = interval
        self.serving: bool | None = None
        self._stopped = False

    async def set(self, serving: bool, why: str = "") -> None:
        """Publish a verdict (once per change, logged)."""
        if self._stopped or serving == self.serving:
            return
        if self.serving is not None:
            log.log(
                logging.INFO if serving else logging.WARNING,
                "health %s%s",
                "SERVING again" if serving else "NOT_SERVING: cannot commit",
                f" ({why})" if why else "",
            )
        self.serving = serving
        for name in self._names:
            await self._servicer.set(name, SERVING if serving else NOT_SERVING)

    def stop(self) -> None:
        """Shutting down: the servicer's own graceful-shutdown state stays in force."""
        self._stopped = True

    async def run(self) -> None:
        while not self._stopped:
            try:
                ok, why = await self._can_commit()
            except Exception as exc:  # a check that fails in a new way still says "no"
                log.exception("health check failed")
                ok, why = False, repr(exc)
            await self.set(ok, why)
            await asyncio.sleep(self._interval)
