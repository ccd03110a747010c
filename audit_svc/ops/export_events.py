"""`python -m audit_svc export-events`: the events matching Query's filters, in a SIEM
format (ndjson, ocsf, ecs, cef, csv), streamed from PostgreSQL to stdout or a file,
gzip on request. The same export as `GET /api/v2/events:export`
(audit_svc.read.export), run by an operator with the database's credentials.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from audit_svc.errors import AuditError, InvalidArgument
from audit_svc.model import FieldViolation
from audit_svc.ops.privacy import open_privacy
from audit_svc.privacy import MasterKeyError
from audit_svc.read.disclosure import CLEAR_VIEWER, MASKED_VIEWER
from audit_svc.read.export import new_export
from audit_svc.read.filters import FILTER_FIELDS, TIME_FILTERS, QueryFilters
from audit_svc.settings import Settings
from audit_svc.storage.event_reads import PgEventReader
from audit_svc.storage.postgres import create_pool

EXIT_OK, EXIT_ERROR = 0, 2


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's flags: --format, --out, --gzip and one per Query filter."""
    parser.add_argument("--format", default="ndjson", help="ndjson, ocsf, ecs, cef or csv")
    parser.add_argument("--out", default="-", help="file to write (default: stdout)")
    parser.add_argument("--gzip", action="store_true", help="gzip the output")
    parser.add_argument(
        "--clear", action="store_true",
        help="personal fields in clear text (as to audit.pii_reader); default: masked",
    )  # fmt: skip
    for name, _ in FILTER_FIELDS:
        kind = "an ISO 8601 time" if name in TIME_FILTERS else "as in Query"
        parser.add_argument(f"--{name.replace('_', '-')}", default="", help=f"filter ({kind})")


def filters_of(args: argparse.Namespace) -> QueryFilters:
    """The filters the flags set; a time that does not parse is INVALID_ARGUMENT."""
    values: dict[str, Any] = {}
    bad = []
    for name, _ in FILTER_FIELDS:
        text = getattr(args, name)
        if name in TIME_FILTERS:
            try:
                values[name] = datetime.fromisoformat(text).astimezone(UTC) if text else None
            except ValueError:
                bad.append(name)
        else:
            values[name] = text
    if bad:
        raise InvalidArgument([FieldViolation(n, "is not an ISO 8601 time") for n in bad])
    return QueryFilters(**values)


async def export_events(settings: Settings, args: argparse.Namespace, out: Writer) -> int:
    """Write the export to `out`; the number of events written."""
    filters = filters_of(args)
    # Two: the export holds one (its snapshot) while the keys are read on the other.
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        _, disclosure = open_privacy(settings, pool)
        present = disclosure.presenter(CLEAR_VIEWER if args.clear else MASKED_VIEWER)
        export = new_export(
            PgEventReader(pool), filters, args.format, settings.page_token_secret, present,
            disclosure.pseudonymize,
        )  # fmt: skip
        async for chunk in export.chunks():
            out.write(chunk)
        return export.count
    finally:
        await pool.close()


def run_export_events(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point: exit 0 with the count on stderr, 2 naming a bad flag."""
    with ExitStack() as stack:
        raw: IO[bytes] = (
            sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
        )
        out: Writer = raw
        if args.gzip:
            out = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="wb"))
        try:
            count = asyncio.run(export_events(settings, args, out))
        except InvalidArgument as exc:
            for v in exc.violations:
                print(f"error: --{v.field.replace('_', '-')} {v.description}", file=sys.stderr)
            return EXIT_ERROR
        except (AuditError, OSError, MasterKeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_ERROR
    print(f"{count} events exported", file=sys.stderr)
    return EXIT_OK
