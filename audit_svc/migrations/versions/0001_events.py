"""Events with their hash chain, chain heads, and exact hourly counts.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE chains (
            chain_id   text PRIMARY KEY,
            head_seq   bigint NOT NULL DEFAULT 0,
            head_hash  bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
            update_time timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE audit_events (
            chain_id            text NOT NULL REFERENCES chains (chain_id),
            seq                 bigint NOT NULL,
            event_id            uuid NOT NULL,
            event_type          text NOT NULL,
            user_id             text NOT NULL DEFAULT '',
            username            text NOT NULL DEFAULT '',
            ip_address          inet,
            user_agent          text NOT NULL DEFAULT '',
            service             text NOT NULL,
            action              text NOT NULL,
            result              text NOT NULL,
            details             jsonb NOT NULL DEFAULT '{}',
            compliance_tags     text[] NOT NULL DEFAULT '{}',
            data_classification text NOT NULL,
            event_time          timestamptz NOT NULL,
            receive_time        timestamptz NOT NULL,
            prev_hash           bytea NOT NULL,
            hash                bytea NOT NULL,
            PRIMARY KEY (chain_id, seq),
            CONSTRAINT audit_events_event_id_key UNIQUE (event_id)
        )
        """
    )
    # One index per Query filter; each ends with the sort key (event_time, event_id)
    # so a filtered, newest-first page is an index range scan.
    for name, columns in [
        ("time", "event_time DESC, event_id DESC"),
        ("user", "user_id, event_time DESC, event_id DESC"),
        ("username", "username, event_time DESC, event_id DESC"),
        ("type", "event_type, event_time DESC, event_id DESC"),
        ("service", "service, event_time DESC, event_id DESC"),
        ("ip", "ip_address, event_time DESC, event_id DESC"),
    ]:
        op.execute(f"CREATE INDEX audit_events_{name}_idx ON audit_events ({columns})")
    # Prefix filters such as `auth.*` need pattern ops under any collation.
    op.execute(
        "CREATE INDEX audit_events_type_prefix_idx ON audit_events (event_type text_pattern_ops)"
    )
    op.execute("CREATE INDEX audit_events_tags_idx ON audit_events USING gin (compliance_tags)")
    op.execute(
        "CREATE INDEX audit_events_details_idx ON audit_events USING gin (details jsonb_path_ops)"
    )
    # Exact per-hour counts, kept in the same transaction as the events, so
    # statistics over long ranges read hours, not rows.
    op.execute(
        """
        CREATE TABLE event_counts_hourly (
            hour       timestamptz NOT NULL,
            event_type text NOT NULL,
            result     text NOT NULL,
            service    text NOT NULL,
            count      bigint NOT NULL,
            PRIMARY KEY (hour, event_type, result, service)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE user_counts_hourly (
            hour    timestamptz NOT NULL,
            user_id text NOT NULL,
            count   bigint NOT NULL,
            PRIMARY KEY (hour, user_id)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE user_counts_hourly")
    op.execute("DROP TABLE event_counts_hourly")
    op.execute("DROP TABLE audit_events")
    op.execute("DROP TABLE chains")
