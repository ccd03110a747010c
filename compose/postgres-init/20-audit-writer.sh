#!/bin/sh
# Run once by the postgres image on an empty data volume: the audit-service's runtime
# role, which audit_svc migration 0011 grants INSERT-only rights on audit events (the
# migrate service runs as the owner). On a volume made before, create it by hand:
#   CREATE ROLE audit_writer LOGIN PASSWORD '<secrets/audit_writer_password>';
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$(cat /run/secrets/audit_writer_password)" <<'SQL'
CREATE ROLE audit_writer LOGIN PASSWORD :'password';
SQL
