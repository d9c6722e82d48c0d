#!/usr/bin/env bash
# Set up a fresh machine: system packages, a virtual environment in .venv with
# every Python dependency, and the Rust extension built in release mode.
# Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1; then
  echo "==> installing redis-server (tests start their own instance)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo (the Rust toolchain) is needed to build from source; install it with rustup" >&2
  exit 1
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
echo "==> installing Python dependencies"
python -m pip install -q -e ".[test,dev,huggingface,bench]"
echo "==> ready: $(python -c 'import orchestrator._core as c; print("orchestrator._core", c.__version__)')"
