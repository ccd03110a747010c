"""Alembic environment of the users database, separate from the audit database
(see meshkit.migrations)."""

from alembic import context

from meshkit.migrations import run_env
from user_svc.settings import Settings

run_env(context, lambda: Settings.from_env().database_url)
