#!/usr/bin/env bash
# Install what is missing, and nothing else: the Debian packages of the real
# servers, the virtualenv, and the Python dependencies (pinned by constraints.txt).
# Fast when everything is there. Used by `make setup`, and so by `make test` and `make up`.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages: binary to look for -> package that provides it ---------
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # prometheus + promtool
# RabbitMQ (and Erlang's epmd): the message-queue ingest (devstack/rabbitmq.py).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
# A compose implementation whose `config` needs no engine (tests/deploy checks compose.yml).
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# Go and x/mod: the independent verifier of checkpoints and proofs (tests/audit_svc/gotlog).
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ] || missing+=(golang-golang-x-mod-dev)

if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  command -v apt-get >/dev/null 2>&1 \
    || die "missing ${missing[*]} and apt-get is not available; install them with your package manager"
  SUDO=
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 \
      || die "missing ${missing[*]}; installing them needs root: run 'sudo apt-get install ${missing[*]}'"
    SUDO=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null \
    || die "apt-get update failed, so ${missing[*]} could not be installed (is the package mirror reachable?)"
  for pkg in "${missing[@]}"; do
    $SUDO apt-get install -y -q --no-install-recommends "$pkg" >/dev/null \
      || die "apt-get install $pkg failed; it provides a server the tests and 'make up' run"
  done
  # Debian starts the packaged servers as system services; the mesh runs its
  # own instances on its own ports, so stop the packaged ones where possible.
  for svc in postgresql redis-server victoria-metrics prometheus rabbitmq-server; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

# --- virtualenv and Python dependencies --------------------------------------
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
stamp="$VENV/.auditmesh-installed"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python dependencies into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c constraints.txt -e '.[dev,test,bench]' \
    || die "pip install failed; see the messages above"
  echo "$want" >"$stamp"
fi
