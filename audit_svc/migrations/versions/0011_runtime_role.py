"""The database trusts no one: the audit-service runs as `audit_writer`, which may
INSERT audit events but never UPDATE, DELETE or TRUNCATE them, on the table or on any
of its partitions. Rows leave the table only through SECURITY DEFINER functions owned
by the schema owner, each of which checks the archive first:

- `audit_events_retire_partition` (revision 0009): retention drops a daily partition
  only when every row in it is archived and no legal hold covers it;
- `audit_drop_restored(chain, through, cutoff)`: rows restored from the archive for a
  read are deleted again, only within ranges already archived.

The archive's record itself is guarded: the writer may not write `archived_ranges`
(only add a range's Parquet object to it, revision 0010);
`audit_record_archived(...)` records a range only when it starts right after the
chain's last archived one, its first `prev_hash` and last `hash` are the stored rows',
and exactly `event_count` rows of it are stored. So the writer cannot declare events
archived to have them dropped. It may not delete checkpoints either (it adds their
cosignatures: UPDATE stays). Other tables keep SELECT, INSERT, UPDATE and DELETE.
Tables made later (partitions, other revisions' tables) get SELECT and INSERT by
default; a revision whose table the service updates or deletes from grants that
itself (`GRANT UPDATE, DELETE ON t TO audit_writer`).

The role is made NOLOGIN when missing (if the migrating role may create roles; else
create it first); devstack makes it a login role with its own password. Migrations
still run as the owner. Only audit_writer may call the functions (not PUBLIC).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ROLE = "audit_writer"

_RECORD_ARCHIVED = """
CREATE FUNCTION audit_record_archived(
    p_chain text, p_first bigint, p_last bigint, p_count bigint, p_prev_hash bytea,
    p_last_hash bytea, p_sha256 bytea, p_object_key text, p_version_id text,
    p_parquet_key text, p_parquet_version_id text, p_parquet_sha256 bytea,
    p_min_event_time timestamptz, p_max_event_time timestamptz
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    boundary bigint;
    stored bigint;
BEGIN
    SELECT coalesce(max(last_seq), 0) INTO boundary FROM archived_ranges
    WHERE chain_id = p_chain;
    IF p_first <> boundary + 1 OR p_last < p_first THEN
        RAISE EXCEPTION 'archive of % %..%: not the range after the archived %',
            p_chain, p_first, p_last, boundary USING ERRCODE = 'check_violation';
    END IF;
    IF (SELECT prev_hash FROM audit_events WHERE chain_id = p_chain AND seq = p_first)
           IS DISTINCT FROM p_prev_hash
       OR (SELECT hash FROM audit_events WHERE chain_id = p_chain AND seq = p_last)
           IS DISTINCT FROM p_last_hash THEN
        RAISE EXCEPTION 'archive of % %..%: its hashes are not the stored rows',
            p_chain, p_first, p_last USING ERRCODE = 'check_violation';
    END IF;
    SELECT count(*) INTO stored FROM audit_events
    WHERE chain_id = p_chain AND seq BETWEEN p_first AND p_last;
    IF stored <> p_count THEN
        RAISE EXCEPTION 'archive of % %..%: % rows stored, % archived; not recorded',
            p_chain, p_first, p_last, stored, p_count USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO archived_ranges (chain_id, first_seq, last_seq, event_count, prev_hash,
                                 last_hash, sha256, object_key, version_id, parquet_key,
                                 parquet_version_id, parquet_sha256, min_event_time,
                                 max_event_time)
    VALUES (p_chain, p_first, p_last, p_count, p_prev_hash, p_last_hash, p_sha256,
            p_object_key, p_version_id, p_parquet_key, p_parquet_version_id,
            p_parquet_sha256, p_min_event_time, p_max_event_time);
    RETURN p_count;
END
$fn$
"""

_DROP_RESTORED = """
CREATE FUNCTION audit_drop_restored(p_chain text, p_through bigint, p_cutoff timestamptz)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$
DECLARE
    deleted bigint;
BEGIN
    DELETE FROM audit_events
    WHERE chain_id = p_chain AND receive_time < p_cutoff
      AND seq <= least(p_through, (SELECT coalesce(max(last_seq), 0) FROM archived_ranges
                                   WHERE chain_id = p_chain));
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$fn$
"""

# Every function that changes what audit_events holds, with its argument types.
FUNCTIONS = {
    "audit_record_archived": "text, bigint, bigint, bigint, bytea, bytea, bytea, text, text, "
    "text, text, bytea, timestamptz, timestamptz",
    "audit_drop_restored": "text, bigint, timestamptz",
    "audit_events_retire_partition": "text, timestamptz",
    "audit_events_ensure_partition": "timestamptz",
}
_NO_CHANGE = "UPDATE, DELETE, TRUNCATE"
_PARQUET = "parquet_key, parquet_version_id, parquet_sha256, min_event_time, max_event_time"

# audit_events and each of its partitions (the default one too).
_EVENT_TABLES = """
SELECT 'audit_events' UNION ALL
SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'audit_events'::regclass
"""


def upgrade() -> None:
    op.execute(f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN
                CREATE ROLE {ROLE} NOLOGIN;
            END IF;
        END $$""")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO {ROLE}"
    )
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {ROLE}"
    )
    op.execute(f"""
        DO $$ DECLARE t text; BEGIN
            FOR t IN {_EVENT_TABLES} LOOP
                EXECUTE format('REVOKE {_NO_CHANGE} ON %I FROM {ROLE}', t);
            END LOOP;
        END $$""")
    op.execute(f"REVOKE INSERT, {_NO_CHANGE} ON archived_ranges FROM {ROLE}")
    # The archiver adds a range's Parquet object later (revision 0010): those columns only.
    op.execute(f"GRANT UPDATE ({_PARQUET}) ON archived_ranges TO {ROLE}")
    op.execute(f"REVOKE DELETE, TRUNCATE ON checkpoints FROM {ROLE}")
    op.execute(f"REVOKE INSERT, {_NO_CHANGE} ON alembic_version FROM {ROLE}")
    op.execute(_RECORD_ARCHIVED)
    op.execute(_DROP_RESTORED)
    for name, args in FUNCTIONS.items():
        op.execute(f"REVOKE ALL ON FUNCTION {name}({args}) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {name}({args}) TO {ROLE}")


def downgrade() -> None:
    for name, args in FUNCTIONS.items():
        op.execute(f"GRANT EXECUTE ON FUNCTION {name}({args}) TO PUBLIC")
    op.execute(f"DROP FUNCTION audit_record_archived({FUNCTIONS['audit_record_archived']})")
    op.execute(f"DROP FUNCTION audit_drop_restored({FUNCTIONS['audit_drop_restored']})")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {ROLE}")
