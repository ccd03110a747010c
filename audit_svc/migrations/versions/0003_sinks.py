"""Sink cursors, signed checkpoints and archived ranges.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each sink's position per chain: every event with seq <= last_seq has been handled.
    op.execute(
        """
        CREATE TABLE sink_cursors (
            sink        text NOT NULL,
            chain_id    text NOT NULL REFERENCES chains (chain_id),
            last_seq    bigint NOT NULL DEFAULT 0,
            update_time timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (sink, chain_id)
        )
        """
    )
    # A copy of the signed checkpoints; the object-locked bucket holds the originals.
    op.execute(
        """
        CREATE TABLE checkpoints (
            chain_id        text NOT NULL REFERENCES chains (chain_id),
            seq             bigint NOT NULL,
            hash            bytea NOT NULL,
            checkpoint_time timestamptz NOT NULL,
            key_id          text NOT NULL,
            signature       bytea NOT NULL,
            object_key      text NOT NULL,
            PRIMARY KEY (chain_id, seq)
        )
        """
    )
    # Ranges whose rows were written to the archive bucket, read back, checked and
    # then deleted from audit_events.
    op.execute(
        """
        CREATE TABLE archived_ranges (
            chain_id     text NOT NULL REFERENCES chains (chain_id),
            first_seq    bigint NOT NULL,
            last_seq     bigint NOT NULL,
            event_count  bigint NOT NULL,
            prev_hash    bytea NOT NULL,
            last_hash    bytea NOT NULL,
            sha256       bytea NOT NULL,
            object_key   text NOT NULL,
            version_id   text NOT NULL DEFAULT '',
            archive_time timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (chain_id, first_seq)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE archived_ranges")
    op.execute("DROP TABLE checkpoints")
    op.execute("DROP TABLE sink_cursors")
