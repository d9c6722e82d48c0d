#!/usr/bin/env bash
# The main job in one command: install what the demo needs (the library and its
# [cli] extra, nothing else) on the first run, then `orchestrator simulate` on the
# built-in scenario. No API key; the second run needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh cli
echo "==> orchestrator simulate $*"
exec .venv/bin/orchestrator simulate "$@"
