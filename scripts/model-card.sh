#!/usr/bin/env bash
# Re-measures the figures of docs/model-card.md for a model file: validation
# metrics with intervals, operating points, calibration and body parts
# (fracd model evaluate), localisation against the outlines (fracd model
# localise, with example pictures), and training-step times per ResNet
# (fracd bench). Needs ../shared/fracatlas. Writes into $OUT only.
#
#   scripts/model-card.sh [MODEL.safetensors]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=$(realpath "${1:-models/fracd-resnet18-v2.safetensors}")
FRACD=$(realpath "${FRACD:-bin/fracd}")
ATLAS=$(realpath "${ATLAS:-../shared/fracatlas}")
OUT=${OUT:-/tmp/fracd-model-card}
BENCH=${BENCH:-1}
mkdir -p "$OUT"
cd "$OUT"
rm -f card.db card.db-wal card.db-shm
export FRACD_PATHS_MODELS="$OUT/models" FRACD_PATHS_DB="$OUT/card.db"
id=$("$FRACD" model add "$MODEL" | sed -n 's/^registered \([^ ]*\) .*/\1/p')
"$FRACD" model evaluate "$id" --images "$ATLAS/images" --labels "$ATLAS/split.csv" --split val \
	--out "$OUT/val" --predictions "$OUT/val/predictions.csv" > "$OUT/val.md"
"$FRACD" model localise "$MODEL" --images "$ATLAS/images" --labels "$ATLAS/split.csv" \
	--annotations "$ATLAS/annotations.json" --out "$OUT/localise" --examples 4 > "$OUT/localise.md"
if [ "$BENCH" = 1 ]; then
	for arch in resnet18 resnet34 resnet50 resnet101 resnet152; do
		"$FRACD" bench --arch "$arch" --batch 16 --train --iters 2
	done > "$OUT/bench.txt" 2>&1
fi
echo "wrote $OUT/val.md $OUT/localise.md ${BENCH:+$OUT/bench.txt} (model $id)"
