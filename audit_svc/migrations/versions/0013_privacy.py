"""Privacy (audit_svc.privacy): per-subject data keys kept apart from the events, the
pseudonym columns Query matches personal fields by, legal holds, and the outbox of
audited admin actions (erasures, holds) that the running service records as events.

On a populated table: the new columns are NULL or a constant default (no rewrite);
the pseudonym indexes are partial (rows that have one). `audit_events_held`, which
partition retirement asks (0009's seam), now answers from the legal holds.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ROLE = "audit_writer"
# Whether an active legal hold covers events of `user_id` (NULL: any user) with
# lo <= event_time < hi: a hold on that user (for NULL: on a user with an event in the
# range), or a time-range hold overlapping it.
HELD = """
CREATE OR REPLACE FUNCTION audit_events_held(user_id text, lo timestamptz, hi timestamptz)
RETURNS boolean LANGUAGE sql STABLE
RETURN EXISTS (
    SELECT 1 FROM legal_holds h
    WHERE h.lift_time IS NULL AND (
        (h.subject IS NULL AND coalesce(h.start_time, '-infinity') < audit_events_held.hi
         AND audit_events_held.lo < coalesce(h.end_time, 'infinity'))
        OR h.subject = audit_events_held.user_id
        OR (audit_events_held.user_id IS NULL AND h.subject IS NOT NULL AND EXISTS (
            SELECT 1 FROM audit_events e WHERE e.user_id = h.subject
            AND e.event_time >= audit_events_held.lo AND e.event_time < audit_events_held.hi))))
"""


def upgrade() -> None:
    op.execute(
        "ALTER TABLE audit_events ADD COLUMN username_token bytea, ADD COLUMN ip_token bytea, "
        "ADD COLUMN ip_sealed text NOT NULL DEFAULT ''"
    )
    for name in ("username", "ip"):
        token = f"{name}_token"
        op.execute(
            f"CREATE INDEX audit_events_{token}_idx ON audit_events "
            f"({token}, event_time DESC, event_id DESC) WHERE {token} IS NOT NULL"
        )
    # One data key per subject (the pseudonym of a user_id; '' for events without
    # one), wrapped by the master key; the subject's clear id sealed with its own key.
    # Erasure clears both and keeps the row, so the subject stays erased.
    op.execute(
        """
        CREATE TABLE subject_keys (
            subject        text PRIMARY KEY,
            wrapped_key    bytea,
            sealed_subject text,
            create_time    timestamptz NOT NULL DEFAULT now(),
            erase_time     timestamptz,
            erasure_event  uuid,
            CHECK ((erase_time IS NULL) = (wrapped_key IS NOT NULL))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE legal_holds (
            hold_id     text PRIMARY KEY,
            subject     text,
            start_time  timestamptz,
            end_time    timestamptz,
            reason      text NOT NULL,
            placed_by   text NOT NULL,
            place_time  timestamptz NOT NULL DEFAULT now(),
            lifted_by   text,
            lift_time   timestamptz,
            CHECK ((subject IS NULL) <> (start_time IS NULL AND end_time IS NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX legal_holds_active_idx ON legal_holds (subject) WHERE lift_time IS NULL"
    )
    # Admin actions waiting to be recorded as audit events (a tool run without the
    # service writes here; the service commits them to its chain, event_id makes it once).
    op.execute(
        """
        CREATE TABLE admin_actions (
            event_id     uuid PRIMARY KEY,
            event_type   text NOT NULL,
            action       text NOT NULL,
            details      jsonb NOT NULL,
            requested_by text NOT NULL,
            request_time timestamptz NOT NULL DEFAULT now(),
            recorded     boolean NOT NULL DEFAULT false
        )
        """
    )
    op.execute(
        "CREATE INDEX admin_actions_pending_idx ON admin_actions (request_time) WHERE NOT recorded"
    )
    # The runtime role (0011) inserts (default privileges) and updates these: erasure
    # clears a key, a hold is lifted, an action marked recorded; it deletes nothing.
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE ON subject_keys, legal_holds, admin_actions TO {ROLE}"
    )
    op.execute(HELD)


def downgrade() -> None:
    op.execute(
        "CREATE OR REPLACE FUNCTION audit_events_held(user_id text, lo timestamptz, "
        "hi timestamptz) RETURNS boolean LANGUAGE sql STABLE RETURN false"
    )
    op.execute("DROP TABLE admin_actions")
    op.execute("DROP TABLE legal_holds")
    op.execute("DROP TABLE subject_keys")
    op.execute("DROP INDEX audit_events_username_token_idx")
    op.execute("DROP INDEX audit_events_ip_token_idx")
    op.execute(
        "ALTER TABLE audit_events DROP COLUMN username_token, DROP COLUMN ip_token, "
        "DROP COLUMN ip_sealed"
    )
