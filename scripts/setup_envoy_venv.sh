#!/usr/bin/env bash
# Create or update .venv-envoy/: the virtualenv in which tests parse envoy/envoy.yaml
# into Envoy's Bootstrap message (xds-protos). It is separate from .venv because
# xds-protos overwrites googleapis-common-protos' google/api files. Installs only
# what is missing; about a second when nothing is. Used by `make setup` and by
# tests/gateway/test_envoy_config.py.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${ENVOY_VENV:-.venv-envoy}
PYTHON=${PYTHON:-python3}
REQUIREMENTS=envoy/check-requirements.txt

say() { printf 'setup-envoy-venv: %s\n' "$*"; }
die() { printf 'setup-envoy-venv: error: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
stamp="$VENV/.auditmesh-installed"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing xds-protos into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" \
    || die "pip install failed; see the messages above"
  echo "$want" >"$stamp"
fi
