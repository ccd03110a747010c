"""Drop the foreign key from audit_events to chains.

PostgreSQL checks a foreign key with a query per inserted row; measured with
COPY into audit_events it was about a quarter of the server's time per row (see
BENCHMARKS.md). The appender already guarantees it: it writes a chain's events only
while holding that chain's head row (SELECT ... FOR UPDATE), which exists before the
first event, and chain rows are never deleted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_id_fkey")


def downgrade() -> None:
    op.execute(
        "ALTER TABLE audit_events ADD CONSTRAINT audit_events_chain_id_fkey "
        "FOREIGN KEY (chain_id) REFERENCES chains (chain_id)"
    )
