#!/usr/bin/env bash
# Create (or reuse) .venv at the repo root and install GPT Desk into it.
#   bash tools/setup.sh          the app (with the fast engine where a C++ compiler is present),
#                                and its entry in the desktop's application menu
#   bash tools/setup.sh --dev    the app plus the test, lint and type-check tools
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1
extras="fast"
[ $dev = 1 ] && extras="fast,dev"

# Shared libraries Qt needs (offscreen, X11 and Wayland), and the test tools; only root can add them.
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
# Without a C++ compiler the app installs without it and runs on transformers (it says how to add it).
if [ $dev = 0 ] && ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 \
  && ! command -v clang++ >/dev/null 2>&1; then
  echo "No C++ compiler: installing without the fast engine (llama.cpp); GPT Desk runs on transformers." >&2
  extras=""
fi
pip_install() {
  CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    .venv/bin/python -m pip install -q -e ".${1:+[$1]}" 2> >(grep -v "is ignored: it is neither" >&2)
}
if ! pip_install "$extras"; then
  [ $dev = 1 ] || [ -z "$extras" ] && exit 1
  echo "The fast engine (llama-cpp-python) did not build: installing without it; GPT Desk runs on transformers." >&2
  pip_install ""
fi

# The app's entry and icon in the desktop's application menu (this user only; `gptdesk desktop-entry remove`).
if [ $dev = 0 ] && [ "$(uname -s)" = Linux ]; then
  .venv/bin/gptdesk desktop-entry install || echo "Could not add GPT Desk to the application menu (see above)." >&2
fi
