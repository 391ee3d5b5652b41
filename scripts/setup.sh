#!/usr/bin/env bash
# Create .venv and install RadBridge into it (editable). With --test, also the test
# dependencies and, as root on Debian, the system packages the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv
    PY=python3
  else
    echo "setup: Python 3.11+ is required" >&2; exit 1
  fi
fi

if [[ $want_test -eq 1 && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  missing=()
  command -v findscu >/dev/null || missing+=(dcmtk)
  command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto)
  command -v mosquitto_sub >/dev/null || missing+=(mosquitto-clients)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v Orthanc >/dev/null || [[ -x /usr/sbin/Orthanc ]] || missing+=(orthanc)
  if (( ${#missing[@]} )); then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [[ $want_test -eq 1 ]]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
