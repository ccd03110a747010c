"""Schema migrations of the users database, from code and the CLI."""

from __future__ import annotations

from pathlib import Path

from meshkit import migrations

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the users database to `revision` (call from a thread inside a loop)."""
    migrations.upgrade(MIGRATIONS, database_url, revision)
