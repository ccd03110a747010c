"""`python -m user_svc [serve|migrate|create-admin|token|public-key]`: run the
user-service or its tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from audit_client import ClientSettings
from audit_client import SettingsError as ClientSettingsError
from meshkit import configure_logging
from meshkit.server import serve_until_signal
from meshkit.tls import PLAINTEXT
from user_svc.admin_cli import create_admin, describe_error, print_error, read_password
from user_svc.app import UserApp
from user_svc.errors import Unavailable, UserError
from user_svc.migrate import upgrade
from user_svc.settings import Settings, SettingsError
from user_svc.token_cli import ROLE_PERMISSIONS, mint, public_key

log = logging.getLogger("user_svc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m user_svc", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gRPC server (the default)")
    sub.add_parser("migrate", help="apply the users database migrations (alembic upgrade head)")
    admin = sub.add_parser(
        "create-admin", help="create an account with the admin role (the first admin)"
    )
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    admin.add_argument("--display-name", default="")
    admin.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    token = sub.add_parser("token", help="print an access token for reading audit logs")
    token.add_argument("--role", choices=sorted(ROLE_PERMISSIONS), default="audit.reader")
    token.add_argument("--subject", default="operator", help="who the token names")
    token.add_argument("--ttl-seconds", type=int, default=3600)
    sub.add_parser("public-key", help="print the PEM public key access tokens verify with")
    args = parser.parse_args(argv)

    try:
        # These talk to PostgreSQL only: no certificate needed for them.
        offline = args.command in ("migrate", "token", "public-key")
        plain = {"tls": PLAINTEXT, "audit_tls": PLAINTEXT}
        settings = Settings.from_env(None, **(plain if offline else {}))
        # Batching and spool knobs come from AUDIT_CLIENT_*; where to send and with which
        # identity, from USER_AUDIT_* and USER_TLS_*.
        files = settings.identity_files
        audit_settings = ClientSettings.from_env(
            target=settings.audit_target,
            redis_url=settings.spool_redis_url,
            spool_key=settings.audit_spool_key,
            failure_policy=settings.audit_failure_policy,
            tls=PLAINTEXT if offline else settings.audit_tls,
            tls_ca_file=files.ca_file,
            tls_cert_file=files.cert_file,
            tls_key_file=files.key_file,
        )
    except (SettingsError, ClientSettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "migrate":
        upgrade(settings.database_url)
        return 0
    if args.command == "token":
        print(asyncio.run(mint(settings, args.role, args.subject, args.ttl_seconds)))
        return 0
    if args.command == "public-key":
        print(asyncio.run(public_key(settings)), end="")
        return 0
    if args.command == "create-admin":
        try:
            password = read_password(sys.stdin, args.password_stdin)
            user_id = asyncio.run(
                create_admin(
                    settings, audit_settings, args.username, args.email, password, args.display_name
                )
            )
        except ValueError as exc:
            print_error(str(exc))
            return 2
        except UserError as exc:
            print_error(describe_error(exc))
            return 1
        print(user_id)
        return 0
    try:
        settings.check_secrets(log)  # production secrets, not dev values (USER_DEV_MODE)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_until_signal(UserApp(settings, audit_settings)))
    except (OSError, Unavailable) as exc:
        log.error("user-service cannot start: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
