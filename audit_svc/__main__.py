"""`python -m audit_svc [serve|migrate|verify|archive|restore|witness|export|audit|
export-events]`: run the audit-service or its tools."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys

from audit_svc.access import PolicyError
from audit_svc.app import AuditApp
from audit_svc.errors import Unavailable
from audit_svc.ops.migrate import upgrade
from audit_svc.settings import Settings, SettingsError
from audit_svc.sinks import SigningKeyError
from meshkit import configure_logging
from meshkit.server import serve_until_signal
from meshkit.tls import PLAINTEXT

log = logging.getLogger("audit_svc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit_svc", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (the default)")
    sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    verify = sub.add_parser("verify", help="recompute a hash chain and report the first bad event")
    verify.add_argument("--chain", default="", help="chain id (default: every chain)")
    verify.add_argument("--from-seq", type=int, default=1, help="first seq to check")
    verify.add_argument("--to-seq", type=int, default=0, help="last seq to check (0: the head)")
    verify.add_argument(
        "--public-key", default="", help="PEM file to check checkpoint signatures with"
    )
    verify.add_argument(
        "--database-only", action="store_true",
        help="without S3 settings, accept a check of the rows against themselves (exit 0)",
    )  # fmt: skip
    archive = sub.add_parser("archive", help="archive events older than the hot retention, once")
    archive.add_argument("--chain", default="", help="chain id (default: every chain)")
    restore = sub.add_parser("restore", help="bring an archived range back for querying")
    restore.add_argument("--chain", required=True, help="chain id")
    restore.add_argument("--from-seq", type=int, default=1, help="first seq to restore")
    restore.add_argument("--to-seq", type=int, default=0, help="last seq (0: the last archived)")
    restore.add_argument(
        "--release", action="store_true", help="delete restored rows again instead"
    )
    witness = sub.add_parser("witness", help="run a C2SP tlog-witness (WITNESS_* settings)")
    witness.add_argument(
        "--print-key", action="store_true", help="print the witness's verifier key and exit"
    )
    export = sub.add_parser("export", help="write an auditor's bundle of a chain's range")
    export.add_argument("bundle", help="folder to write the bundle into")
    export.add_argument("--chain", default="", help="chain id (needed when there are several)")
    export.add_argument("--from", dest="from_seq", type=int, default=1, help="first seq")
    export.add_argument("--to", dest="to_seq", type=int, default=0, help="last seq (0: the head)")
    export.add_argument(
        "--trusted-size", type=int, action="append", default=[],
        help="add a consistency proof from this tree size (the auditor's last checkpoint)",
    )  # fmt: skip
    export.add_argument("--public-key", default="", help="PEM file to check checkpoints with")
    audit = sub.add_parser("audit", help="verify a bundle offline; prints a JSON report")
    audit.add_argument("bundle", help="the bundle folder")
    audit.add_argument("--public-key", required=True, help="the log's key: PEM or verifier key")
    audit.add_argument(
        "--witness-key", action="append", default=[], help="a witness's verifier key (repeat)"
    )
    audit.add_argument(
        "--quorum", type=int, default=None, help="cosignatures needed (default: every witness)"
    )
    audit.add_argument(
        "--trusted-checkpoint", default="", help="your last trusted checkpoint note (a file)"
    )
    events = sub.add_parser(
        "export-events", help="stream events matching filters as ndjson, ocsf, ecs, cef or csv"
    )
    from audit_svc.ops.export_events import add_arguments

    add_arguments(events)
    from audit_svc.ops import privacy as privacy_tools

    privacy_tools.add_arguments(sub)
    args = parser.parse_args(argv)
    if args.command == "audit":  # no settings: an auditor has no database
        from audit_svc.ops.export import run_audit

        return run_audit(
            args.bundle, args.public_key, args.witness_key, args.quorum, args.trusted_checkpoint
        )
    if args.command == "witness":
        from audit_svc.ops.witness import run_witness

        return run_witness(args.print_key)

    try:
        # The tools talk to PostgreSQL and S3 only: no certificate needed for them.
        serving = args.command in (None, "serve")
        settings = Settings.from_env(None, **({} if serving else {"tls": PLAINTEXT}))
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        upgrade(settings.database_url)
        return 0
    if args.command == "verify":
        from audit_svc.ops.verify import run_verify

        code: int = run_verify(
            settings.database_url, args.chain, args.from_seq, args.to_seq,
            settings=settings, public_key_file=args.public_key, database_only=args.database_only,
        )  # fmt: skip
        return code
    if args.command == "export":
        from audit_svc.ops.export import run_export

        return run_export(
            settings, args.bundle, args.chain, args.from_seq, args.to_seq,
            tuple(args.trusted_size), args.public_key,
        )  # fmt: skip
    if args.command == "export-events":
        from audit_svc.ops.export_events import run_export_events

        return run_export_events(settings, args)
    if args.command in ("erase", "hold"):
        return privacy_tools.run_privacy(settings, args)
    if args.command in ("archive", "restore"):
        from audit_svc.ops import archive as commands

        if args.command == "archive":
            return commands.run_archive(settings, args.chain)
        return commands.run_restore(settings, args.chain, args.from_seq, args.to_seq, args.release)
    # Ingest makes and drops several small objects per event, nearly all freed by
    # reference counting. Fewer cyclic collections, none of which walk the objects
    # made at startup (frozen), cut the server's CPU per event (BENCHMARKS.md).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    try:
        settings.check_secrets(log)  # production secrets, not dev values (AUDIT_DEV_MODE)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_until_signal(AuditApp(settings)))
    except (OSError, Unavailable, SigningKeyError, PolicyError) as exc:
        log.error("audit-service cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
