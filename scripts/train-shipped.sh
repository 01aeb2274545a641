#!/usr/bin/env bash
# Trains the shipped model's recipe end to end (docs/model-card.md, "Recipe"):
# stage 1 = the `fracd train` defaults (fracd-resnet18-v1), stage 2 = 4 epochs
# of fine-tuning from stage 1's best weights with CAM supervision from the
# fracture outlines (fracd-resnet18-v2). Both stages checkpoint every epoch;
# run the script again to resume where it stopped. Then export as shipped
# (F16) after choosing the thresholds from `fracd model evaluate`'s operating
# points. Needs ../shared/fracatlas; about 2-3 hours on 2 cores.
#
#   scripts/train-shipped.sh RUN_ROOT      (e.g. /work/runs/shipped)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${1:?usage: scripts/train-shipped.sh RUN_ROOT}
FRACD=$(realpath "${FRACD:-bin/fracd}")
ATLAS=$(realpath "${ATLAS:-../shared/fracatlas}")
mkdir -p "$ROOT"
data=(--images "$ATLAS/images" --labels "$ATLAS/split.csv")
resume() { [[ -f $1/state.json ]] && echo --resume || true; }
"$FRACD" --db "$ROOT/runs.db" train "${data[@]}" --run-dir "$ROOT/stage1" $(resume "$ROOT/stage1")
"$FRACD" --db "$ROOT/runs.db" train "${data[@]}" --run-dir "$ROOT/stage2" $(resume "$ROOT/stage2") \
	--init "$ROOT/stage1/best.safetensors" --epochs 4 --lr 0.005 --warmup-epochs 0.3 --patience 0 \
	--annotations "$ATLAS/annotations.json" --cam-weight 0.5
echo "stage 2 weights: $ROOT/stage2/best.safetensors; next: fracd model evaluate it (--split val), then"
echo "fracd model export $ROOT/stage2/best.safetensors --f16 --id NAME --threshold T --suspected S --definite D -o models/NAME.safetensors"
