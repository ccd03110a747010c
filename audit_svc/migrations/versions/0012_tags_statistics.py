"""A larger statistics sample for the tags, on every partition and on the ones made
later: a tag is one of a few values, so with the default sample a rare tag was missing
from the statistics, estimated at ~0.35% of a partition's rows, and a Query for it was
planned as a walk of the time index (seconds at 10,000,000 events, BENCHMARKS.md)
instead of a probe of the tags' GIN index.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# audit_events_ensure_partition (revision 0009) now also copies the parent's
# per-column statistics targets to the partition it makes.
ENSURE_PARTITION = r"""
CREATE OR REPLACE FUNCTION audit_events_ensure_partition(t timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    lo timestamptz := date_trunc('day', t, 'UTC');
    hi timestamptz := date_trunc('day', t, 'UTC') + interval '1 day';
    part text := 'audit_events_' || to_char(date_trunc('day', t, 'UTC') AT TIME ZONE 'UTC',
                                             'YYYYMMDD');
    col record;
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('audit_events partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', part);
    -- Rows of that day that went to the default partition move into their own.
    EXECUTE format('WITH moved AS (DELETE FROM audit_events_default WHERE event_time >= %L '
                   'AND event_time < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   lo, hi, part);
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    -- The parent's per-column statistics targets (LIKE does not copy them).
    FOR col IN SELECT attname, attstattarget FROM pg_attribute
               WHERE attrelid = 'audit_events'::regclass AND attnum > 0 AND NOT attisdropped
                 AND attstattarget > 0 LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I SET STATISTICS %s',
                       part, col.attname, col.attstattarget);
    END LOOP;
    RETURN part;
END $$
"""

ENSURE_PARTITION_0009 = r"""
CREATE OR REPLACE FUNCTION audit_events_ensure_partition(t timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    lo timestamptz := date_trunc('day', t, 'UTC');
    hi timestamptz := date_trunc('day', t, 'UTC') + interval '1 day';
    part text := 'audit_events_' || to_char(date_trunc('day', t, 'UTC') AT TIME ZONE 'UTC',
                                             'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('audit_events partitions'));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN part;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE audit_events INCLUDING DEFAULTS '
                   'INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', part);
    -- Rows of that day that went to the default partition move into their own.
    EXECUTE format('WITH moved AS (DELETE FROM audit_events_default WHERE event_time >= %L '
                   'AND event_time < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   lo, hi, part);
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN part;
END $$
"""


def upgrade() -> None:
    # On the parent and, recursively, every partition there is.
    op.execute("ALTER TABLE audit_events ALTER COLUMN compliance_tags SET STATISTICS 1000")
    op.execute(ENSURE_PARTITION)
    op.execute("ANALYZE audit_events (compliance_tags)")


def downgrade() -> None:
    op.execute(ENSURE_PARTITION_0009)
    op.execute("ALTER TABLE audit_events ALTER COLUMN compliance_tags SET STATISTICS -1")
