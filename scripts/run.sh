#!/usr/bin/env bash
# Set up (first time) and run the engine on the shipped channels.yaml with SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/radbridge -c "${RADBRIDGE_CONFIG:-channels.yaml}" run
