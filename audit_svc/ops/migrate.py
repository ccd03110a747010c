"""Schema migrations of the audit database, from code, the CLI and `make migrate`."""

from __future__ import annotations

from pathlib import Path

from meshkit import migrations

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the audit database to `revision` (call from a thread inside a loop)."""
    migrations.upgrade(MIGRATIONS, database_url, revision)
