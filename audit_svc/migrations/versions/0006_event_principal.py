"""Record who wrote each event: the authenticated principal (the SPIFFE id of the
writer's mTLS certificate; `anonymous@loopback (dev mode)` for an anonymous dev-mode
write). Events stored before this revision keep an empty principal.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.execute("ALTER TABLE audit_events ADD COLUMN principal text NOT NULL DEFAULT ''")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_events DROP COLUMN principal")
