"""The cold tier: each archived range's Parquet object (key, version, SHA-256) and the
event times it spans, so `Query` finds the objects a time range needs. Ranges archived
before this revision have no Parquet (empty key) until the archiver adds it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE archived_ranges
            ADD COLUMN parquet_key text NOT NULL DEFAULT '',
            ADD COLUMN parquet_version_id text NOT NULL DEFAULT '',
            ADD COLUMN parquet_sha256 bytea,
            ADD COLUMN min_event_time timestamptz,
            ADD COLUMN max_event_time timestamptz
        """
    )
    op.execute(
        "CREATE INDEX archived_ranges_event_time ON archived_ranges (max_event_time DESC)"
        " WHERE parquet_key <> ''"
    )


def downgrade() -> None:
    op.execute("DROP INDEX archived_ranges_event_time")
    op.execute(
        """
        ALTER TABLE archived_ranges
            DROP COLUMN parquet_key, DROP COLUMN parquet_version_id,
            DROP COLUMN parquet_sha256, DROP COLUMN min_event_time,
            DROP COLUMN max_event_time
        """
    )
