#!/bin/sh
# Entrypoint of the auditmesh image: every variable NAME__FILE=/path (compose passes
# secret files so) becomes NAME=<the file's content>, then the command runs. Secrets
# stay out of `docker inspect` and of compose files. `alembic` goes through here too
# (docker/alembic), so `docker compose exec audit-service alembic upgrade head` works.
set -eu
for pair in $(env | sed -n 's/^\([A-Z0-9_]*\)__FILE=.*/\1/p'); do
  file=$(printenv "${pair}__FILE")
  [ -r "$file" ] || { echo "entrypoint: ${pair}__FILE=$file is not readable" >&2; exit 1; }
  value=$(cat "$file")
  export "$pair=$value"
  unset "${pair}__FILE"
done
exec "$@"
