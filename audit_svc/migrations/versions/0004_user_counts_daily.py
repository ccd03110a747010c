"""Exact per-day user counts, so statistics over days read one bucket per day.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Kept in the same transaction as the events, like user_counts_hourly; `day` is a
    # UTC midnight. Filled here from the hourly rollup, which holds the same counts.
    op.execute(
        """
        CREATE TABLE user_counts_daily (
            day     timestamptz NOT NULL,
            user_id text NOT NULL,
            count   bigint NOT NULL,
            PRIMARY KEY (day, user_id)
        )
        """
    )
    op.execute(
        """
        INSERT INTO user_counts_daily (day, user_id, count)
        SELECT date_trunc('day', hour, 'UTC'), user_id, sum(count)
        FROM user_counts_hourly GROUP BY 1, 2
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE user_counts_daily")
