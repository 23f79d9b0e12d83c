#!/usr/bin/env bash
# Pack what tools/device_train.sh needs into .devcarry/ (git-ignored), to carry to a lent GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared}
mkdir -p .devcarry/rugpt3_tokenizer
tar -C build -cf - corpus/train.txt corpus/heldout.txt | xz -T2 -6 > .devcarry/corpus.tar.xz
cp -r build/tokenizer16k .devcarry/
cp "$shared"/data/rugpt3_tokenizer/vocab.json "$shared"/data/rugpt3_tokenizer/merges.txt .devcarry/rugpt3_tokenizer/
du -sh .devcarry
