"""Alembic environment of the audit database (see meshkit.migrations)."""

from alembic import context

from audit_svc.settings import Settings
from meshkit.migrations import run_env

run_env(context, lambda: Settings.from_env().database_url)
