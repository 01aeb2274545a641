#!/usr/bin/env bash
# Prints the model card's Table 1 rows (the seed study's setting, one run
# directory of `fracd train --recipe seed` per architecture): training
# accuracy of the last completed epoch, minutes per epoch, and for the best
# epoch so far (by val ROC-AUC) the validation accuracy, F1, precision and
# recall at its threshold, and its ROC-AUC with the 95% bootstrap interval
# from `fracd model evaluate` on best.safetensors. Needs ../shared/fracatlas.
#
#   scripts/table1.sh RUN_DIR...      (e.g. /work/runs/t1-r18 /work/runs/t1-r34)
set -euo pipefail
cd "$(dirname "$0")/.."
FRACD=$(realpath "${FRACD:-bin/fracd}")
ATLAS=$(realpath "${ATLAS:-../shared/fracatlas}")
OUT=${OUT:-/tmp/fracd-table1}
mkdir -p "$OUT"
rm -f "$OUT/t1.db" "$OUT/t1.db-wal" "$OUT/t1.db-shm"
export FRACD_PATHS_MODELS="$OUT/models" FRACD_PATHS_DB="$OUT/t1.db"
echo "| arch | epochs | min/epoch | train acc | val acc | F1 | precision | recall | val ROC-AUC [95% CI] |"
echo "|---|---|---|---|---|---|---|---|---|"
for dir in "$@"; do
	name=$(basename "$dir")
	id=$("$FRACD" model add "$dir/best.safetensors" --id "t1-$name" | sed -n 's/^registered \([^ ]*\) .*/\1/p')
	"$FRACD" model evaluate "$id" --images "$ATLAS/images" --labels "$ATLAS/split.csv" --split val \
		--out "$OUT/$name" > /dev/null 2>"$OUT/$name.log"
	python3 - "$dir/state.json" "$OUT/$name/report.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
rep = json.load(open(sys.argv[2]))
h = st["history"]
best = h[st["best_epoch"] - 1]
last = h[-1]
mins = sum(e["seconds"] for e in h) / len(h) / 60
lo, hi = rep["roc_auc_ci"]["lower"], rep["roc_auc_ci"]["upper"]
ta = f'{last["train_accuracy"]:.3f}' if last.get("train_accuracy") else "—"
print(f'| {st["params"]["arch"]} | {st["epochs_done"]} of {st["params"]["epochs"]} (best {st["best_epoch"]}) | {mins:.1f} | {ta} | '
      f'{best["val_accuracy"]:.3f} | {best["val_f1"]:.3f} | {best["val_precision"]:.3f} | {best["val_recall"]:.3f} | '
      f'{rep["roc_auc"]:.3f} [{lo:.3f}, {hi:.3f}] |')
PY
done
