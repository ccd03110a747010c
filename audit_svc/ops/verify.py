"""`python -m audit_svc verify`: verify a chain range from a terminal or a cron job.

Each chain is compared with its signed checkpoints in the object-locked bucket (S3
settings as the service has them: `make verify` passes `make up`'s), and its archived
objects are recomputed and must meet the live rows; `--public-key` checks signatures
with a published key. Without S3 settings the rows can only be checked against
themselves, which cannot catch deleted newest events or a consistent rewrite: that is
said loudly, and the exit code is 2 unless `--database-only` asks for just that.

Exit codes: 0 the range verifies (on every chain, when none is named), 1 it does not
(the first bad seq and the reason are printed), 2 it could not be verified (unknown
chain, bad range, database unreachable, no S3 settings without --database-only).
Progress goes to stderr as a bar with events/s, redrawn a few times a second, when
stderr is a terminal; as a line every few seconds when it is not but the range is long.
A final summary line is always written to stderr and the result to stdout.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from audit_svc.errors import AuditError, InvalidArgument
from audit_svc.integrity.verify import CHECKPOINT_INVALID, VerifyResult, verify_chain
from audit_svc.settings import Settings
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.postgres import create_pool
from audit_svc.storage.sink_state import PgSinkState

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_ERROR = 2
LONG_RANGE = 100_000
TTY_INTERVAL = 0.25
LOG_INTERVAL = 5.0
BAR_WIDTH = 30


class ProgressBar:
    """Draws verify progress on a stream, throttled; silent for short non-TTY runs."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown = self.started
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        """Called after each batch; draws at most every TTY_INTERVAL (LOG_INTERVAL)."""
        if not self.tty and total < LONG_RANGE:
            return
        now = time.monotonic()
        if now - self.shown < (TTY_INTERVAL if self.tty else LOG_INTERVAL):
            return
        self.shown = now
        line = self._line(done, total, now)
        if self.tty:
            self.stream.write("\r" + line)
            self.drawn = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, result: VerifyResult) -> None:
        """The summary line: always written."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if self.drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(
            f"checked {result.events_checked} events of chain {result.chain_id} "
            f"in {elapsed:.1f} s ({result.events_checked / elapsed:,.0f} events/s)\n"
        )
        self.stream.flush()

    def _line(self, done: int, total: int, now: float) -> str:
        share = done / total if total else 1.0
        filled = int(share * BAR_WIDTH)
        rate = done / max(now - self.started, 1e-9)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"[{bar}] {share:6.1%} {done}/{total} events, {rate:,.0f} events/s"


def describe(result: VerifyResult) -> str:
    """The result as one line for people and scripts."""
    where = f"chain {result.chain_id} seq {result.from_seq}..{result.to_seq}"
    if result.ok:
        return f"OK {where}: {result.events_checked} events verified"
    return (
        f"FAILED {where}: first bad seq {result.first_bad_seq} ({result.reason}); "
        f"{result.events_checked} events verified before it"
    )


async def verify_command(
    database_url: str,
    chain_id: str = "",
    from_seq: int = 0,
    to_seq: int = 0,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    settings: Settings | None = None,
    public_key_file: str = "",
    database_only: bool = False,
) -> int:
    """Verify the range of one chain (every chain when `chain_id` is empty) against the
    database at `database_url`, and against the bucket's checkpoints and archive when
    `settings` configure S3; return the exit code."""
    from audit_svc.ops import archive as commands
    from audit_svc.sinks import BadCheckpoint

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        pool = await create_pool(database_url, min_size=1, max_size=1)
        try:
            events = PgEventReader(pool)
            chains = [chain_id] if chain_id else await events.chain_ids()
            code = EXIT_OK
            key = None
            if settings is not None and settings.s3_enabled:
                key = commands.verifier(settings, public_key_file)
            for chain in chains:
                marks = None
                if settings is not None and key is not None:
                    try:
                        marks, archived = await commands.bucket_checks(
                            settings, PgSinkState(pool), chain, key
                        )
                    except BadCheckpoint as exc:
                        err.write(f"error: {exc}\n")
                        bad = VerifyResult(False, chain, 0, 0, 0, 0, CHECKPOINT_INVALID)
                        out.write(describe(bad) + "\n")
                        code = EXIT_MISMATCH
                        continue
                    if archived is not None:
                        out.write("archive: " + describe(archived) + "\n")
                        if not archived.ok:
                            code = EXIT_MISMATCH
                bar = ProgressBar(err)
                result = await verify_chain(
                    events, chain, from_seq, to_seq, checkpoints=marks, progress=bar.update
                )
                bar.finish(result)
                out.write(describe(result) + "\n")
                code = max(code, EXIT_OK if result.ok else EXIT_MISMATCH)
        finally:
            await pool.close()
    except InvalidArgument as exc:
        for violation in exc.violations:
            err.write(f"error: {violation.field} {violation.description}\n")
        return EXIT_ERROR
    except AuditError as exc:
        err.write(f"error: {exc.message}\n")
        return EXIT_ERROR
    except (OSError, ValueError) as exc:  # S3 unreachable, key missing or unreadable
        err.write(f"error: {exc}\n")
        return EXIT_ERROR
    if not chains:
        err.write("no chains to verify: nothing has been stored yet\n")
    if key is None and not database_only:
        err.write(NO_BUCKET_WARNING)
        code = code or EXIT_ERROR  # a mismatch found in the rows stays 1
    return code


NO_BUCKET_WARNING = """\
WARNING: no S3 settings (AUDIT_S3_ENDPOINT): the rows were checked against themselves
only. Deleted newest events, or a chain rewritten with recomputed hashes, CANNOT be
detected this way. Give the service's S3 settings (`make verify` does, after `make up`)
to compare with the signed checkpoints, or pass --database-only to accept this check.
"""


def run_verify(
    database_url: str,
    chain_id: str = "",
    from_seq: int = 0,
    to_seq: int = 0,
    settings: Settings | None = None,
    public_key_file: str = "",
    database_only: bool = False,
) -> int:
    """Entry point of `python -m audit_svc verify`: runs the check, returns the exit code.

    An empty `chain_id` verifies every chain, each over the same range."""
    return asyncio.run(
        verify_command(
            database_url,
            chain_id,
            from_seq,
            to_seq,
            settings=settings,
            public_key_file=public_key_file,
            database_only=database_only,
        )  # fmt: skip
    )
