"""Forwarders' dead letters: batches a forwarder gave up on, by seq range and ids.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The events stay in audit_events (and the archive): a row says which ones a
    # receiver never took, so an operator can send them again (export by seq range).
    op.execute(
        """
        CREATE TABLE forwarder_dead_letters (
            id          bigserial PRIMARY KEY,
            sink        text NOT NULL,
            chain_id    text NOT NULL,
            first_seq   bigint NOT NULL,
            last_seq    bigint NOT NULL,
            event_ids   uuid[] NOT NULL,
            attempts    integer NOT NULL,
            last_status integer NOT NULL DEFAULT 0,
            last_error  text NOT NULL DEFAULT '',
            create_time timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE forwarder_dead_letters")
