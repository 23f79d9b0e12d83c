#!/usr/bin/env bash
# Render the app icon's PNG sizes from its SVG (the PNGs are committed; run this after editing the SVG).
# Needs rsvg-convert (Debian: librsvg2-bin).
set -euo pipefail
cd "$(dirname "$0")/../src/gptdesk/ui/desktop/data/icons"
for size in 16 24 32 48 64 128 256 512; do
  rsvg-convert -w "$size" -h "$size" org.gptdesk.GptDesk.svg -o "org.gptdesk.GptDesk-$size.png"
done
ls -l ./*.png
