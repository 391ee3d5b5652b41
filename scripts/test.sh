#!/usr/bin/env bash
# Set up (venv, Python packages; as root on Debian also dcmtk, mosquitto, orthanc) and run
# every check: lint, types, the mapping tests and the whole pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
echo "== ruff"
.venv/bin/ruff check engine channels transforms tests benchmarks
echo "== mypy (strict)"
.venv/bin/mypy
echo "== radbridge validate (shipped channels.yaml)"
RADBRIDGE_DATA="$(mktemp -d)" .venv/bin/radbridge -c channels.yaml validate
echo "== pytest"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
