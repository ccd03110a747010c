"""Syslog forwarder: each event as an RFC 5424 message with a CEF payload
(audit_svc.formats.syslog), octet-counted over one TCP connection (TLS by default),
from its own cursor (`sink_cursors`, sink `syslog`).

At least once: TCP syslog has no acknowledgement, and bytes a receiver never read are
lost with its connection. So the cursor moves past written events only once the
connection has stayed up `confirm_seconds` after they were written; when the
receiver closes or resets it, the forwarder reconnects (with the runner's back-off)
and sends again from the cursor. A receiver then sees some events twice, each with
the same event id (in the structured data and the CEF `externalId`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass

from audit_svc import metrics
from audit_svc.formats.syslog import octet_counted, rfc5424
from audit_svc.read.export import Present, as_is
from audit_svc.storage.protocols import SinkStore

log = logging.getLogger(__name__)

NAME = "syslog"


@dataclass(frozen=True, slots=True)
class SyslogTarget:
    """Where and how to connect."""

    host: str
    port: int
    tls: ssl.SSLContext | None = None
    facility: int = 13
    hostname: str = ""


def tls_context(ca_file: str, cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A client context verifying the receiver (against `ca_file`, or the system CAs)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class ConnectionLost(ConnectionError):
    """The receiver closed or reset the connection; unconfirmed events are resent."""


class SyslogSink:
    """Forwards one chain's events to a syslog receiver, `batch_events` per step."""

    def __init__(
        self, state: SinkStore, chain_id: str, target: SyslogTarget, *,
        batch_events: int = 1000, confirm_seconds: float = 1.0, present: Present | None = None,
    ) -> None:  # fmt: skip
        self._present = present or as_is  # what a reader may see (audit_svc.read.disclosure)
        self._state = state
        self.chain_id = chain_id
        self._target = target
        self._hostname = target.hostname or socket.gethostname()
        self._batch = batch_events
        self._confirm = confirm_seconds
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._sent = 0  # the last seq written on this connection
        self._pending: deque[tuple[int, float]] = deque()  # (last seq, when written)
        self.events_sent = 0

    async def step(self) -> bool:
        """Send the next events, confirm older ones; True while work is waiting."""
        await self._connect()
        if self._lost():
            await self._drop()
            raise ConnectionLost(f"{self._where}: the receiver closed the connection")
        events = await self._state.events_after(self.chain_id, self._sent, self._batch)
        if events:
            shown = await self._present(events)
            data = b"".join(
                octet_counted(rfc5424(s, facility=self._target.facility, hostname=self._hostname))
                for s in shown
            )
            assert self._writer is not None
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                await self._drop()
                raise ConnectionLost(f"{self._where}: {exc}") from exc
            self._sent = events[-1].receipt.seq
            self._pending.append((self._sent, time.monotonic()))
            self.events_sent += len(events)
            metrics.FORWARDED.labels(NAME, "sent").inc(len(events))
        elif self._pending:
            await self._wait_for_confirmation()
        await self._confirm_pending()
        return bool(events) or bool(self._pending)

    async def close(self) -> None:
        await self._drop()

    @property
    def _where(self) -> str:
        return f"syslog {self._target.host}:{self._target.port}"

    async def _connect(self) -> None:
        if self._writer is not None:
            return
        t = self._target
        self._reader, self._writer = await asyncio.open_connection(
            t.host, t.port, ssl=t.tls, server_hostname=t.host if t.tls else None
        )
        self._sent = await self._state.cursor(NAME, self.chain_id)
        self._pending.clear()
        log.info("%s connected; sending from seq %d", self._where, self._sent + 1)

    def _lost(self) -> bool:
        """True once the receiver has closed or reset the connection (it never sends
        anything, so end of stream is all its side can say)."""
        reader, writer = self._reader, self._writer
        return reader is None or writer is None or reader.at_eof() or writer.is_closing()

    async def _wait_for_confirmation(self) -> None:
        """Wait until the oldest written batch is due, or the receiver goes away."""
        assert self._reader is not None
        due = self._pending[0][1] + self._confirm - time.monotonic()
        if due > 0:
            try:
                async with asyncio.timeout(due):
                    await self._reader.read(1024)  # returns b"" at end of stream
            except TimeoutError:
                pass
            except (ConnectionError, OSError):
                pass  # seen as lost below

    async def _confirm_pending(self) -> None:
        """Move the cursor past batches the connection has outlived by confirm_seconds."""
        if self._lost():
            return
        now, upto = time.monotonic(), 0
        while self._pending and self._pending[0][1] + self._confirm <= now:
            upto = self._pending.popleft()[0]
        if upto:
            await self._state.set_cursor(NAME, self.chain_id, upto)

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._pending.clear()
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError, ssl.SSLError):
                pass
