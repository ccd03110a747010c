"""Index for the `action` filter, which 0001 left to a sequential scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX audit_events_action_idx "
        "ON audit_events (action, event_time DESC, event_id DESC)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX audit_events_action_idx")
