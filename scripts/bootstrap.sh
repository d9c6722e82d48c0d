#!/usr/bin/env bash
# Set up .venv with the package (built from source, the Rust extension in release
# mode) and the extras named in $1 (comma-separated, e.g. "cli" or "dev,bench").
# Installs only what is missing: a stamp in .venv records the hash of pyproject.toml,
# the Rust sources and the extras installed, so a second run does nothing and
# needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-cli}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
step() { echo "==> $*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo (the Rust toolchain) is needed to build from source; install it with rustup" >&2
  exit 1
fi

# The hash of everything the build depends on.
SOURCE_HASH=$( { cat pyproject.toml Cargo.toml Cargo.lock; find rust -name '*.rs' -o -name Cargo.toml | LC_ALL=C sort | xargs cat; } | sha256sum | cut -c1-16)
STAMP=.venv/.orchestrator-installed

installed_extras() {
  # The extras the stamp records, if it is for these sources.
  [ -f "$STAMP" ] || return 0
  read -r hash extras <"$STAMP" || return 0
  [ "$hash" = "$SOURCE_HASH" ] && echo "$extras"
  return 0
}

covered() {
  # Whether every extra in $1 is in the comma-separated list $2.
  local want have
  have=",$2,"
  for want in ${1//,/ }; do
    [[ "$have" == *",$want,"* ]] || return 1
  done
}

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi

have=$(installed_extras)
if [ -n "$have" ] && covered "$EXTRAS" "$have"; then
  step "already installed (orchestrator-router[$have], sources unchanged): skipping pip"
  exit 0
fi

all=$EXTRAS
[ -n "$have" ] && all="$have,$EXTRAS"
# uv installs from PyPI as pip does, but fetches in parallel: the test extras'
# torch and its CUDA wheels (about 3 GB) take half a minute instead of minutes.
if [ ! -x .venv/bin/uv ]; then
  step "installing uv (the installer) into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on "uv>=0.5"
fi
step "installing orchestrator-router[$all] and building the Rust extension (release)"
.venv/bin/uv pip install --python .venv/bin/python -e ".[$all]"
echo "$SOURCE_HASH $all" >"$STAMP"
step "ready: $(.venv/bin/python -c 'import orchestrator; print("orchestrator-router", orchestrator.__version__)')"
