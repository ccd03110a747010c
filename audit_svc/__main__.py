"""`python -m audit_svc [serve|migrate|verify|archive|restore]`: run the audit-service
or its tools."""

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
    archive = sub.add_parser("archive", help="archive events older than the hot retention, once")
    archive.add_argument("--chain", default="", help="chain id (default: every chain)")
    restore = sub.add_parser("restore", help="bring an archived range back for querying")
    restore.add_argument("--chain", required=True, help="chain id")
    restore.add_argument("--from-seq", type=int, default=1, help="first seq to restore")
    restore.add_argument("--to-seq", type=int, default=0, help="last seq (0: the last archived)")
    restore.add_argument(
        "--release", action="store_true", help="delete restored rows again instead"
    )
    args = parser.parse_args(argv)

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
            settings=settings, public_key_file=args.public_key,
        )  # fmt: skip
        return code
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
        asyncio.run(serve_until_signal(AuditApp(settings)))
    except (OSError, Unavailable, SigningKeyError, PolicyError) as exc:
        log.error("audit-service cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
