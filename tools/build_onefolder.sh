#!/usr/bin/env bash
# One-folder build of GPT Desk (PyInstaller): dist/onefolder/gptdesk/ runs without Python installed.
#   bash tools/build_onefolder.sh           build (about 5-10 minutes on 2 cores), then check it
#   bash tools/build_onefolder.sh --check   only check an existing build
# Needs the app's environment with the fast engine and the `bundle` extra:
#   bash tools/setup.sh --dev && .venv/bin/pip install -e ".[bundle]"
# The check starts the built app on a real X server (Xvfb) and generates with the embedded model on
# both engines; it prints the folder's size and the start times.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT=dist/onefolder
APP="$OUT/gptdesk/gptdesk"

if [ "${1:-}" != "--check" ]; then
  "$PY" -c "import PyInstaller, llama_cpp" || {
    echo "Needs PyInstaller and llama-cpp-python: .venv/bin/pip install -e '.[fast,bundle]'" >&2
    exit 1
  }
  rm -rf "$OUT" build/onefolder
  start=$(date +%s)
  # --collect-all: data files and lazily imported submodules PyInstaller cannot see (transformers imports
  # model classes by name; llama_cpp loads its shared libraries with ctypes). --copy-metadata: packages
  # that read their own or others' versions (transformers checks torch, tokenizers, safetensors...).
  "$PY" -m PyInstaller --noconfirm --clean --onedir --name gptdesk \
    --distpath "$OUT" --workpath build/onefolder --specpath build/onefolder \
    --icon "$PWD/src/gptdesk/ui/desktop/data/icons/org.gptdesk.GptDesk-256.png" \
    --collect-all gptdesk \
    --collect-all llama_cpp \
    --collect-submodules transformers.models.gpt2 \
    --collect-submodules transformers.generation \
    --collect-data transformers \
    --copy-metadata gptdesk \
    --copy-metadata transformers --copy-metadata torch --copy-metadata tokenizers --copy-metadata safetensors \
    --copy-metadata huggingface-hub --copy-metadata numpy --copy-metadata tqdm --copy-metadata regex \
    --copy-metadata requests --copy-metadata packaging --copy-metadata filelock --copy-metadata pyyaml \
    --copy-metadata llama-cpp-python --copy-metadata pydantic --copy-metadata fastapi --copy-metadata uvicorn \
    --copy-metadata PySide6-Essentials --copy-metadata shiboken6 \
    --exclude-module tkinter --exclude-module matplotlib --exclude-module IPython --exclude-module pytest \
    --exclude-module torch.utils.tensorboard --exclude-module torch._inductor.codecache \
    tools/onefolder/launcher.py
  echo "Built in $(( $(date +%s) - start )) s: $OUT/gptdesk"
fi

[ -x "$APP" ] || { echo "No build at $APP" >&2; exit 1; }
ms_since() { echo "$(( ($(date +%s%N) - $1) / 1000000 )) ms"; }
tmp=$(mktemp -d)
trap 'kill "${xvfb_pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Nothing from this checkout or its environment: the folder must carry everything.
export GPTDESK_DATA_DIR="$tmp/data" GPTDESK_CACHE_DIR="$tmp/cache" HF_HOME="$tmp/hf" HF_HUB_OFFLINE=1
unset PYTHONPATH VIRTUAL_ENV PYTHONHOME
echo "Size: $(du -sh "$OUT/gptdesk" | cut -f1) ($(find "$OUT/gptdesk" -type f | wc -l) files)"

t0=$(date +%s%N)
"$APP" --version
echo "Start to --version: $(ms_since "$t0")"

for engine in transformers llamacpp; do
  t0=$(date +%s%N)
  "$APP" generate "Жили-были старик со старухой" --engine "$engine" --max-new-tokens 20 --seed 1 \
    >"$tmp/$engine.out" 2>"$tmp/$engine.err" || { cat "$tmp/$engine.err" >&2; exit 1; }
  cat "$tmp/$engine.out"
  tail -1 "$tmp/$engine.err"
  grep -q "on $engine" "$tmp/$engine.err" || { echo "generate did not run on $engine" >&2; exit 1; }
  echo "generate on $engine, start to exit: $(ms_since "$t0")"
done

# The window on a real X server: time until it is mapped, then a clean close.
Xvfb :93 -screen 0 1400x900x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1
export DISPLAY=:93 QT_QPA_PLATFORM=xcb
t0=$(date +%s%N)
"$APP" >"$tmp/gui.out" 2>"$tmp/gui.err" &
app_pid=$!
timeout 180 xdotool search --sync --onlyvisible --name "^GPT Desk$" >/dev/null || {
  cat "$tmp/gui.err" >&2; exit 1; }
echo "Window mapped after: $(ms_since "$t0")"
sleep 8  # the model loads (and converts to GGUF on first use) in the background
kill -TERM "$app_pid"
wait "$app_pid" || { echo "the window did not close cleanly" >&2; cat "$tmp/gui.err" >&2; exit 1; }
echo "One-folder build OK: starts under Xvfb, generates on transformers and llama.cpp."
