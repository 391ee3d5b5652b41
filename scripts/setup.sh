#!/usr/bin/env bash
# Create .venv and install RadBridge into it (editable). With --test, also the test
# dependencies and, as root on Debian, the system packages the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# The interpreter: $PYTHON if set; else the distribution's own build first (Debian's is
# built with profile-guided and link-time optimisation: the engine's ingest path runs
# ~20 % faster on it than on a plain source build such as pyenv's, see
# benchmarks/README.md), then whatever python3.x is on PATH. 3.11 or newer, with venv.
usable() {
  "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in /usr/bin/python3.13 /usr/bin/python3.12 /usr/bin/python3.11 /usr/bin/python3 \
              python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1 && usable "$cand"; then
      PY="$cand"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv
    PY=/usr/bin/python3
  else
    echo "setup: Python 3.11+ with the venv module is required" >&2; exit 1
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

# A .venv made from another interpreter (e.g. before the preference above) is made again.
want_home="$("$PY" -c 'import os, sys; print(os.path.dirname(os.path.abspath(sys._base_executable)))')"
if [[ -f .venv/pyvenv.cfg ]] && ! grep -qx "home = $want_home" .venv/pyvenv.cfg; then
  echo "setup: recreating .venv for $PY"
  rm -rf .venv
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
