#!/usr/bin/env bash
# Build everything and run every check and test: Rust and Python. Installs the
# [dev] extra (tests, type checking, release tools) and the optional providers'
# extras on top of what the demo installed; pytest options pass through.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# Debian's packages the tests drive for real: redis-server (tests start their own
# instances) and chromium (renders the gateway's status page and screenshots it).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (Debian's packages)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
scripts/bootstrap.sh cli,dev,huggingface,bench
. .venv/bin/activate

echo "==> Rust: format, lint, tests"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test -p orchestrator-core

echo "==> Python: lint, format, types, stub"
ruff check python tests benches scripts
ruff format --check python tests benches scripts
mypy
python -m mypy.stubtest orchestrator._core

# Two processes (pytest-xdist): most tests wait on subprocesses, Redis outages and
# time windows rather than on the CPU, so two halve the run on two cores.
# ORCHESTRATOR_TEST_PROCESSES=0 (or -n 0 among the arguments) runs them in this one.
echo "==> Python: tests"
python -m pytest -n "${ORCHESTRATOR_TEST_PROCESSES:-2}" "$@"
