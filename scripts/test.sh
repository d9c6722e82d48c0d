#!/usr/bin/env bash
# Build everything and run every check and test: Rust and Python.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate

echo "==> Rust: format, lint, tests"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test -p orchestrator-core

echo "==> Python: lint, format, types, stub"
ruff check python tests benches
ruff format --check python tests benches
mypy
python -m mypy.stubtest orchestrator._core

echo "==> Python: tests"
python -m pytest "$@"
