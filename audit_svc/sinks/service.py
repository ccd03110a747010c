"""The sinks of one replica's chain, built from settings: runners, lag, integrity.

`Sinks.open(settings, state, chain_id)` makes the enabled ones (InfluxDB when
AUDIT_INFLUX_URL is set; checkpoints and the archive when AUDIT_S3_ENDPOINT is set;
the syslog and webhook forwarders when AUDIT_SYSLOG_TARGET / AUDIT_WEBHOOK_URL are);
`run()` runs them all until `close()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from audit_svc.integrity.signer import Signer, Verifier, load_signer
from audit_svc.read.export import Present
from audit_svc.settings import Settings
from audit_svc.sinks import checkpoints as cps
from audit_svc.sinks import syslog, webhook
from audit_svc.sinks.archive import Archiver
from audit_svc.sinks.influx import NAME as INFLUX
from audit_svc.sinks.influx import InfluxSink
from audit_svc.sinks.objects import ObjectStore
from audit_svc.sinks.runner import SinkRunner, Step
from audit_svc.sinks.witnesses import Witnesses
from audit_svc.storage.protocols import Lag, SinkStore, TableCodec, TreeStore

log = logging.getLogger(__name__)
# Sinks whose lag is their cursor's distance from the head.
CURSOR_SINKS = frozenset({INFLUX, syslog.NAME, webhook.NAME})


@dataclass(frozen=True, slots=True)
class SinkState:
    """One sink's health: how far behind it is, and its last error.

    `lag_seconds` is how stale the sink is: the time since it last had nothing left
    to do, and at most the age (since receipt) of the oldest event it has not
    handled; 0 when it has handled every committed event."""

    name: str
    lag_events: int
    lag_seconds: float
    last_error: str


def object_store(settings: Settings, bucket: str) -> ObjectStore:
    """A store for one of the configured buckets."""
    s = settings
    return ObjectStore(
        s.s3_endpoint, s.s3_access_key, s.s3_secret_key, bucket, secure=s.s3_secure,
        region=s.s3_region, lock_mode=s.object_lock_mode, lock_days=s.object_lock_days,
    )  # fmt: skip


class Sinks:
    """Every enabled sink of one chain."""

    def __init__(self, state: SinkStore, chain_id: str) -> None:
        self._state = state
        self.chain_id = chain_id
        self.runners: dict[str, SinkRunner] = {}
        self.influx: InfluxSink | None = None
        self.checkpointer: cps.Checkpointer | None = None
        self.witnesses: Witnesses | None = None
        self.archiver: Archiver | None = None
        self.signer: Signer | None = None
        self.checkpoint_store: ObjectStore | None = None
        self.archive_store: ObjectStore | None = None
        self.syslog: syslog.SyslogSink | None = None
        self.webhook: webhook.WebhookSink | None = None

    @classmethod
    def open(
        cls,
        s: Settings,
        state: SinkStore,
        chain_id: str,
        tree: TreeStore | None = None,
        table: TableCodec | None = None,
        present: Present | None = None,
    ) -> Sinks:
        """The enabled sinks; `tree` (None when the Merkle tree is off) makes
        checkpoints C2SP notes of its root, sent to the witnesses; `table` is the
        Parquet form the archive writes next to its NDJSON (the cold tier reads it).
        `present` is what the forwarders (syslog, webhook) send of each event
        (audit_svc.read.disclosure: personal fields masked unless
        AUDIT_FORWARD_CLEAR_TEXT)."""
        sinks = cls(state, chain_id)

        def runner(name: str, step: Step, poll: float) -> None:
            sinks.runners[name] = SinkRunner(
                name, step, poll_seconds=poll, retry_max_seconds=s.sink_retry_max_seconds
            )

        if s.influx_url:
            sinks.influx = InfluxSink(
                state, chain_id, url=s.influx_url, org=s.influx_org, bucket=s.influx_bucket,
                token=s.influx_token, window_seconds=s.influx_window_seconds,
                batch_events=s.influx_batch_events,
            )  # fmt: skip
            runner(INFLUX, sinks.influx.step, s.sink_poll_seconds)
        if s.syslog_target:
            host, _, port = s.syslog_target.rpartition(":")
            tls = (
                syslog.tls_context(s.syslog_ca_file, s.syslog_cert_file, s.syslog_key_file)
                if s.syslog_tls
                else None
            )
            if tls is None:
                log.warning("syslog forwarding to %s without TLS (AUDIT_SYSLOG_TLS=false)",
                            s.syslog_target)  # fmt: skip
            target = syslog.SyslogTarget(host.strip("[]"), int(port), tls, s.syslog_facility,
                                         s.syslog_hostname)  # fmt: skip
            sinks.syslog = syslog.SyslogSink(
                state, chain_id, target, batch_events=s.syslog_batch_events,
                confirm_seconds=s.syslog_confirm_seconds, present=present,
            )  # fmt: skip
            runner(syslog.NAME, sinks.syslog.step, s.sink_poll_seconds)
        if s.webhook_url:
            hook = webhook.WebhookTarget(
                s.webhook_url, s.webhook_secret.encode(), s.webhook_body, s.webhook_event_format,
                s.webhook_ca_file, s.webhook_timeout_seconds,
            )  # fmt: skip
            sinks.webhook = webhook.WebhookSink(
                state, chain_id, hook, batch_events=s.webhook_batch_events,
                max_attempts=s.webhook_max_attempts, backoff_seconds=s.webhook_backoff_seconds,
                backoff_max_seconds=s.sink_retry_max_seconds, present=present,
            )  # fmt: skip
            runner(webhook.NAME, sinks.webhook.step, s.sink_poll_seconds)
        if s.s3_enabled:
            sinks.signer = load_signer(s.signing_key, s.signing_key_file)
            sinks.checkpoint_store = object_store(s, s.checkpoint_bucket)
            sinks.archive_store = object_store(s, s.archive_bucket)
            sinks.checkpointer = cps.Checkpointer(
                state, chain_id, sinks.checkpoint_store, sinks.signer,
                every_events=s.checkpoint_every_events,
                interval_seconds=s.checkpoint_interval_seconds,
                key_name=s.log_origin, tree=tree,
            )  # fmt: skip
            runner(cps.Checkpointer.NAME, sinks.checkpointer.step, s.sink_poll_seconds)
            if s.witnesses and tree is not None:
                sinks.witnesses = Witnesses(s.witnesses, tree, chain_id, sinks.checkpoint_store)
                sinks.checkpointer.after_checkpoint.append(sinks.witnesses.send)
            sinks.archiver = Archiver(
                state, chain_id, sinks.archive_store,
                retention=timedelta(days=s.hot_retention_days),
                object_events=s.archive_object_events, seal=sinks.checkpointer.seal,
                table=table,
            )  # fmt: skip
            if s.archive_interval_seconds > 0:
                runner(Archiver.NAME, sinks.archiver.step, s.archive_interval_seconds)
        return sinks

    def nudge(self, *_: object) -> None:
        """After a commit: wake the sinks that follow the head (not the archive)."""
        for name, r in self.runners.items():
            if name != Archiver.NAME:
                r.nudge()

    async def run(self) -> None:
        """Run every sink until `close`."""
        async with asyncio.TaskGroup() as tasks:
            for name, r in self.runners.items():
                tasks.create_task(r.run(), name=f"sink-{name}")

    async def close(self) -> None:
        """Stop the runners (their `run` returns), then release clients."""
        for r in self.runners.values():
            r.close()

    async def release(self) -> None:
        if self.influx is not None:
            await self.influx.close()
        for forwarder in (self.syslog, self.webhook):
            if forwarder is not None:
                await forwarder.close()
        for store in (self.checkpoint_store, self.archive_store):
            if store is not None:
                store.close()

    async def states(self) -> list[SinkState]:
        """Each sink's lag in events and seconds, and its last error. For checkpoints:
        the events after the newest checkpoint, and the time since it was made."""
        out = []
        for name, r in self.runners.items():
            if name in CURSOR_SINKS:
                lag = await self._state.lag(name, self.chain_id)
                seconds = lag.seconds if lag.events else 0.0
                if lag.events and r.caught_up_at is not None:
                    seconds = min(seconds, time.monotonic() - r.caught_up_at)
            elif name == cps.Checkpointer.NAME:
                last = await self._state.last_checkpoint(self.chain_id)
                lag = await self._state.lag_after(self.chain_id, last.seq if last else 0)
                seconds = lag.seconds
                if lag.events and last is not None:
                    seconds = (datetime.now(UTC) - last.checkpoint_time).total_seconds()
            else:  # the archive works by age, not by the head
                lag, seconds = Lag(0, 0.0), 0.0
            out.append(SinkState(name, lag.events, seconds, r.last_error))
        return out


async def bucket_checkpoints(
    store: ObjectStore | None, verifier: Verifier | None, chain_id: str, from_seq: int = 0
) -> dict[int, bytes] | None:
    """seq -> hash of a chain's signed checkpoints from the bucket with seq >= from_seq;
    None when S3 is off."""
    if store is None or verifier is None:
        return None
    found = await cps.load_checkpoints(store, chain_id, verifier, from_seq)
    return {c.seq: c.hash for c in found}
