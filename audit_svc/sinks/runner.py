"""The loop every sink runs in: work from its cursor until caught up, then sleep until
nudged (after a commit) or polled; on any failure wait with back-off and try again.

A sink's `step` does one bounded piece of work and says whether more is waiting.
Nothing here is on the ingest path: the appender only sets an event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[bool]]


class SinkRunner:
    """Runs one sink's `step` until `close`."""

    def __init__(
        self, name: str, step: Step, *, poll_seconds: float, retry_max_seconds: float
    ) -> None:
        self.name = name
        self._step = step
        self._poll = poll_seconds
        self._retry_max = retry_max_seconds
        self._nudged = asyncio.Event()
        self._closing = asyncio.Event()
        self.failures = 0
        self.last_error = ""
        # monotonic time the sink last had nothing left to do; None before that
        self.caught_up_at: float | None = None

    def nudge(self, *_: object) -> None:
        """Wake the sink now (the appender calls this after a commit)."""
        self._nudged.set()

    def close(self) -> None:
        self._closing.set()
        self._nudged.set()

    async def run(self) -> None:
        """Until `close`: step while there is work, else wait for a nudge or the poll."""
        backoff = min(0.1, self._retry_max)
        while not self._closing.is_set():
            self._nudged.clear()
            try:
                more = await self._step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("sink %s failed (retry in %.1f s): %s", self.name, backoff, exc)
                await self._sleep(backoff, wake_on_nudge=False)
                backoff = min(backoff * 2, self._retry_max)
                continue
            backoff = min(0.1, self._retry_max)
            self.last_error = ""
            if not more:
                self.caught_up_at = time.monotonic()
                await self._sleep(self._poll, wake_on_nudge=True)

    async def _sleep(self, seconds: float, *, wake_on_nudge: bool) -> None:
        waiter = self._nudged if wake_on_nudge else self._closing
        try:
            async with asyncio.timeout(seconds):
                await waiter.wait()
        except TimeoutError:
            pass
