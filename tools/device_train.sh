#!/usr/bin/env bash
# Train both embedded-model candidates side by side on a lent GPU and return the better one.
# Usage (on the device machine, from the repo root): bash tools/device_train.sh SECONDS
# Expects .devcarry/{corpus.tar.xz,tokenizer16k,rugpt3_tokenizer} (made by tools/pack_for_device.sh).
set -u
budget=${1:-380}
out=${OUT:-build/device_out}
mkdir -p "$out" build
tar -C build -xJf .devcarry/corpus.tar.xz
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c 'import torch, transformers, tokenizers; print(torch.__version__, transformers.__version__, tokenizers.__version__)' | tee -a "$out/gpu.txt"
export PYTHONUNBUFFERED=1
# A: our own 16k BPE, 384 wide, 7 layers.  B: ruGPT-3's 50k BPE, 256 wide, 6 layers.  Both ~38 MB in fp16.
python3 tools/train_embedded.py --tokenizer .devcarry/tokenizer16k --work build/trainA --out build/modelA \
  --n-embd 384 --n-layer 7 --n-head 6 --time-budget "$budget" --eval-every 20 --batch-size "${BATCH:-64}" > "$out/logA.txt" 2>&1 &
python3 tools/train_embedded.py --tokenizer .devcarry/rugpt3_tokenizer --work build/trainB --out build/modelB \
  --n-embd 256 --n-layer 6 --n-head 4 --time-budget "$budget" --eval-every 20 --batch-size "${BATCH:-64}" > "$out/logB.txt" 2>&1 &
wait
python3 - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
res = {}
for k in "AB":
    p = pathlib.Path(f"build/model{k}/training.json")
    res[k] = json.loads(p.read_text()).get("heldout_bits_per_char", 99.0) if p.exists() else 99.0
# ruGPT-3's tokenizer makes the model a drop-in sibling of the real ones: it wins a near tie.
best = "B" if res["B"] <= res["A"] + 0.02 else "A"
print("bpc", res, "best", best)
(out / "choice.json").write_text(json.dumps({"bpc": res, "best": best}))
pathlib.Path("build/best").write_text(best)
PY
best=$(cat build/best)
cp "build/model$best/training.json" "$out/training_best.json" 2>/dev/null
other=$([ "$best" = A ] && echo B || echo A)
cp "build/model$other/training.json" "$out/training_other.json" 2>/dev/null
tar -C build -cf - "model$best" | split -b 15M - "$out/model.tar.part-"
ls -la "$out"
