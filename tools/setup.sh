#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root and install GPT Desk into it.
#   bash tools/setup.sh          the app (with the fast engine)
#   bash tools/setup.sh --dev    the app plus the test, lint and type-check tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="fast"
[ "${1:-}" = "--dev" ] && extras="fast,dev"

# Shared libraries Qt needs even on the offscreen platform; only root can add them.
if [ -f tools/apt-packages.txt ] && command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  while read -r pkg; do
    [ -z "$pkg" ] || [ "${pkg#\#}" != "$pkg" ] && continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < tools/apt-packages.txt
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "Installing system packages: ${missing[*]}"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      echo "Missing system packages (install them with sudo apt-get install): ${missing[*]}" >&2
    fi
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# llama-cpp-python has no wheels on PyPI: the first install compiles it (about 5 minutes on 2 cores).
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  .venv/bin/python -m pip install -q -e ".[$extras]" 2> >(grep -v "is ignored: it is neither" >&2)
