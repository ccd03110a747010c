"""`python -m audit_svc erase` and `python -m audit_svc hold`: erasure and legal holds
run by an operator with the database's credentials and the privacy master key. Each
is audited: the action is queued in its transaction and the running audit-service
records it on its chain (audit_svc.privacy.admin). Also the privacy objects other
tools need (`open_privacy`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

import asyncpg

from audit_svc.errors import AuditError
from audit_svc.privacy import DEFAULT_PATH as DEFAULT_PRIVACY
from audit_svc.privacy import KeyRing, load_privacy_policy, open_keys
from audit_svc.privacy.admin import PrivacyAdmin
from audit_svc.read.disclosure import Disclosure
from audit_svc.settings import Settings
from audit_svc.storage.postgres import create_pool
from audit_svc.storage.privacy_store import PgPrivacyStore
from audit_svc.storage.protocols import LegalHold

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2


def open_privacy(settings: Settings, pool: asyncpg.Pool) -> tuple[PrivacyAdmin, Disclosure]:
    """The admin actions (recorded later, by the service) and the read-side view."""
    policy = load_privacy_policy(settings.privacy_policy_file or DEFAULT_PRIVACY)
    keys = open_keys(settings.privacy_key_file, dev=settings.dev_mode or settings.dev_secrets)
    store = PgPrivacyStore(pool)
    ring = KeyRing(keys, store, ttl=0.0) if settings.privacy else None
    return PrivacyAdmin(store, keys, policy, ring=ring), Disclosure(policy, keys, ring)


def add_arguments(sub: Any) -> None:
    erase = sub.add_parser("erase", help="destroy a user's data key (GDPR erasure); audited")
    erase.add_argument("--user-id", required=True, help="the user id to erase")
    hold = sub.add_parser("hold", help="legal holds: place, lift, list; audited")
    hold_sub = hold.add_subparsers(dest="hold_command", required=True)
    place = hold_sub.add_parser("place", help="hold a user's events or a time range")
    place.add_argument("--user-id", default="", help="hold this user's events")
    place.add_argument("--start", default="", help="hold events from this ISO 8601 time")
    place.add_argument("--end", default="", help="hold events before this ISO 8601 time")
    place.add_argument("--reason", required=True, help="why (case number...)")
    lift = hold_sub.add_parser("lift", help="lift a hold")
    lift.add_argument("hold_id")
    listing = hold_sub.add_parser("list", help="the active holds (JSON lines)")
    listing.add_argument("--all", action="store_true", help="lifted ones too")


def _by() -> str:
    return f"cli:{getpass.getuser()}"


def _time(text: str) -> datetime | None:
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


def _hold_doc(h: LegalHold) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(h).items()}


async def privacy_command(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        admin, _ = open_privacy(settings, pool)
        if args.command == "erase":
            report = await admin.erase(args.user_id, _by())
            doc = asdict(report) | {"erase_time": report.erase_time.isoformat()}
            doc["note"] = (
                "the audit.erasure event is recorded by the running audit-service"
                if not report.already_erased
                else "this user was already erased"
            )
            out.write(json.dumps(doc, indent=1) + "\n")
        elif args.hold_command == "place":
            hold = await admin.place_hold(
                _by(), args.reason, user_id=args.user_id,
                start=_time(args.start), end=_time(args.end),
            )  # fmt: skip
            out.write(json.dumps(_hold_doc(hold)) + "\n")
        elif args.hold_command == "lift":
            out.write(json.dumps(_hold_doc(await admin.lift_hold(args.hold_id, _by()))) + "\n")
        else:
            for hold in await admin.holds(include_lifted=args.all):
                out.write(json.dumps(_hold_doc(hold)) + "\n")
    finally:
        await pool.close()
    return EXIT_OK


def run_privacy(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point: 0 done, 1 refused (a hold, not found, bad input), 2 broken."""
    try:
        return asyncio.run(privacy_command(settings, args, sys.stdout))
    except AuditError as exc:
        print(json.dumps({"error": exc.reason, "message": str(exc), **exc.metadata}),
              file=sys.stderr)  # fmt: skip
        return EXIT_REFUSED
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
