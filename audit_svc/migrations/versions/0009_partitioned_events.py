"""audit_events partitioned by day of event_time, with fewer indexes (chosen by
`bench.schema`, see BENCHMARKS.md), and the functions that make and retire partitions.

The existing table is renamed, every column it has when this runs is carried over
(`CREATE TABLE ... (LIKE ...)`, so columns other revisions added come along), its rows
are copied into daily partitions, and the keys and indexes are built after the copy
(one pass per partition). seq, hashes, receipts and Merkle tiles are untouched: rows
keep every value. Grants and triggers of the old table are carried over too.

Keys: a partitioned table's unique keys must include the partition key, so the primary
key is (chain_id, seq, event_time) and event_id is unique with event_time. seq stays
unique per chain by the appender (it moves the chain's head with a compare-and-set in
the same transaction); an exact resend of an event (same id, same event_time) lands in
the same partition, so the unique key still catches it even in a race between replicas;
the appender's look-up before COPY (storage.event_writes.stored_receipts) finds earlier
copies of an id in the partitions from a day before the group's oldest event on.

Partitions are made by `audit_events_ensure_partition` (ahead of time by the service,
and on demand for a commit that touches a new day) and removed only by
`audit_events_retire_partition`, which checks the archive and legal holds first
(`audit_events_held`, a seam the legal-hold revision replaces). Both are SECURITY
DEFINER: the writer needs no DDL rights.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD = "audit_events_unpartitioned"

# Secondary indexes of the partitioned table (each partition gets its own): btrees for
# the sort key, the type (C collation: exact and prefix) and the user; one GIN over the
# terms of the other equality filters; GIN for the tags and for details containment.
INDEXES = {
    "time": "btree (event_time DESC, event_id DESC)",
    "user": "btree (user_id, event_time DESC, event_id DESC)",
    "type": "btree (event_type, event_time DESC, event_id DESC)",
    "terms": "gin (audit_terms(service, action, result, data_classification, username, "
    "ip_address))",
    "tags": "gin (compliance_tags)",
    "details": "gin (details jsonb_path_ops)",
}

FUNCTIONS = [
    r"""
-- The terms of the GIN index that serves the equality filters on low-cardinality
-- columns, the username and the address: a Query for service X asks
-- audit_terms(...) @> ARRAY['s:X']. One expression, so PostgreSQL inlines it in the
-- index and in queries alike (no function call per row).
CREATE FUNCTION audit_terms(service text, action text, result text,
                            data_classification text, username text, ip_address inet)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY['s:' || service, 'a:' || action, 'r:' || result, 'c:' || data_classification,
             'n:' || username, 'i:' || coalesce(host(ip_address), '')]
""",
    r"""

-- Whether a legal hold covers events of user_id (NULL: any user) with lo <= event_time
-- < hi. No holds exist yet: the legal-hold revision replaces this function.
CREATE FUNCTION audit_events_held(user_id text, lo timestamptz, hi timestamptz)
RETURNS boolean LANGUAGE sql STABLE RETURN false
""",
    r"""

CREATE FUNCTION audit_events_ensure_partition(t timestamptz) RETURNS text
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
""",
    r"""
-- The one door for removing events (retention): a daily partition is detached and
-- dropped in one transaction, only if each chain's rows in it are all archived
-- (seq <= the chain's last archived seq), it ends before `before`, and no legal hold
-- covers its day; the default partition loses only its archived, unheld rows with
-- event_time < before. Returns the number of events removed; refuses with an error.
CREATE FUNCTION audit_events_retire_partition(part text, before timestamptz) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    bound text;
    lo timestamptz;
    hi timestamptz;
    pending bigint;
    n bigint;
BEGIN
    SELECT pg_get_expr(c.relpartbound, c.oid) INTO bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'audit_events'::regclass AND c.relname = part;
    IF bound IS NULL THEN
        RAISE EXCEPTION 'no partition % of audit_events', part USING ERRCODE = 'undefined_table';
    END IF;
    IF part = 'audit_events_default' THEN
        DELETE FROM audit_events_default e
        WHERE e.event_time < before
          AND e.seq <= coalesce((SELECT max(a.last_seq) FROM archived_ranges a
                                 WHERE a.chain_id = e.chain_id), 0)
          AND NOT audit_events_held(e.user_id, e.event_time, e.event_time + interval '1 us');
        GET DIAGNOSTICS n = ROW_COUNT;
        RETURN n;
    END IF;
    lo := date_trunc('day', to_timestamp(right(part, 8), 'YYYYMMDD') AT TIME ZONE 'UTC', 'UTC');
    hi := lo + interval '1 day';
    IF hi > before THEN
        RAISE EXCEPTION 'partition % ends at %, after %', part, hi, before
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF audit_events_held(NULL, lo, hi) THEN
        RAISE EXCEPTION 'a legal hold covers partition %', part
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    -- No row comes in or goes while the archive is compared.
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
    EXECUTE format('SELECT count(*) FROM (SELECT chain_id, max(seq) AS last FROM %I '
                   'GROUP BY chain_id) p WHERE p.last > coalesce((SELECT max(a.last_seq) '
                   'FROM archived_ranges a WHERE a.chain_id = p.chain_id), 0)', part)
        INTO pending;
    IF pending > 0 THEN
        RAISE EXCEPTION 'partition % holds events of % chain(s) not archived yet', part, pending
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', part) INTO n;
    EXECUTE format('ALTER TABLE audit_events DETACH PARTITION %I', part);
    EXECUTE format('DROP TABLE %I', part);
    RETURN n;
END $$
""",
]


def _names(sql: str) -> list[str]:
    return [row[0] for row in op.get_bind().execute(sa.text(sql))]


def upgrade() -> None:
    op.execute(f"ALTER TABLE audit_events RENAME TO {OLD}")
    # Free the names of the old keys and indexes (they are rebuilt on the new table).
    for name in _names(
        f"SELECT conname FROM pg_constraint WHERE conrelid = '{OLD}'::regclass "
        "AND contype IN ('p', 'u', 'x')"
    ):
        op.execute(f'ALTER TABLE {OLD} DROP CONSTRAINT "{name}"')
    for name in _names(
        f"SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        f"WHERE i.indrelid = '{OLD}'::regclass"
    ):
        op.execute(f'DROP INDEX "{name}"')
    op.execute(
        f"CREATE TABLE audit_events (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING GENERATED INCLUDING COMMENTS) "
        "PARTITION BY RANGE (event_time)"
    )
    # C collation: the type's btree then also serves prefixes (auth.*) on any database.
    op.execute('ALTER TABLE audit_events ALTER COLUMN event_type TYPE text COLLATE "C"')
    for function in FUNCTIONS:
        op.execute(function)
    op.execute("CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT")
    # A partition for each day with rows in the last 400 days, and today and 3 ahead.
    op.execute(
        f"""
        SELECT audit_events_ensure_partition(d) FROM (
            SELECT DISTINCT date_trunc('day', event_time, 'UTC') AS d FROM {OLD}
            WHERE event_time >= now() - interval '400 days'
              AND event_time < now() + interval '4 days'
            UNION SELECT generate_series(now(), now() + interval '3 days', interval '1 day')
        ) days
        """
    )
    columns = ", ".join(
        f'"{c}"'
        for c in _names(
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{OLD}'::regclass "
            "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
        )
    )
    op.execute(f"INSERT INTO audit_events ({columns}) SELECT {columns} FROM {OLD}")
    _carry_grants_and_triggers()
    op.execute(f"DROP TABLE {OLD}")
    op.execute("ALTER TABLE audit_events ADD PRIMARY KEY (chain_id, seq, event_time)")
    op.execute(
        "ALTER TABLE audit_events ADD CONSTRAINT audit_events_event_id_key "
        "UNIQUE (event_id, event_time)"
    )
    for name, spec in INDEXES.items():
        method, columns = spec.split(" ", 1)
        op.execute(f"CREATE INDEX audit_events_{name}_idx ON audit_events USING {method} {columns}")
    op.execute("ANALYZE audit_events")


def _carry_grants_and_triggers() -> None:
    """The old table's grants and (non-internal) triggers, on the new table."""
    for grant in _names(
        f"""
        SELECT format('GRANT %s ON audit_events TO %s', a.privilege_type,
                      CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END)
        FROM pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = '{OLD}'::regclass AND a.grantee <> c.relowner
        """
    ):
        op.execute(grant)
    for trigger in _names(
        f"SELECT replace(pg_get_triggerdef(oid), ' ON public.{OLD} ', ' ON audit_events ') "
        f"FROM pg_trigger WHERE tgrelid = '{OLD}'::regclass AND NOT tgisinternal"
    ):
        op.execute(trigger)


def downgrade() -> None:
    op.execute("ALTER TABLE audit_events RENAME TO audit_events_partitioned")
    op.execute(
        "CREATE TABLE audit_events (LIKE audit_events_partitioned INCLUDING DEFAULTS "
        "INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)"
    )
    op.execute('ALTER TABLE audit_events ALTER COLUMN event_type TYPE text COLLATE "default"')
    op.execute("INSERT INTO audit_events SELECT * FROM audit_events_partitioned")
    op.execute("DROP TABLE audit_events_partitioned")
    op.execute(
        "DROP FUNCTION audit_events_retire_partition, audit_events_ensure_partition, "
        "audit_events_held, audit_terms"
    )
    op.execute("ALTER TABLE audit_events ADD PRIMARY KEY (chain_id, seq)")
    op.execute(
        "ALTER TABLE audit_events ADD CONSTRAINT audit_events_event_id_key UNIQUE (event_id)"
    )
    for name, columns in [
        ("time", "event_time DESC, event_id DESC"),
        ("user", "user_id, event_time DESC, event_id DESC"),
        ("username", "username, event_time DESC, event_id DESC"),
        ("type", "event_type, event_time DESC, event_id DESC"),
        ("service", "service, event_time DESC, event_id DESC"),
        ("ip", "ip_address, event_time DESC, event_id DESC"),
        ("action", "action, event_time DESC, event_id DESC"),
    ]:
        op.execute(f"CREATE INDEX audit_events_{name}_idx ON audit_events ({columns})")
    op.execute(
        "CREATE INDEX audit_events_type_prefix_idx ON audit_events (event_type text_pattern_ops)"
    )
    op.execute("CREATE INDEX audit_events_tags_idx ON audit_events USING gin (compliance_tags)")
    op.execute(
        "CREATE INDEX audit_events_details_idx ON audit_events USING gin (details jsonb_path_ops)"
    )
