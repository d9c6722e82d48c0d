#!/usr/bin/env bash
# Run the main job: `orchestrator simulate` on the embedded scenario (no API key).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh >/dev/null
. .venv/bin/activate
orchestrator simulate "$@"
