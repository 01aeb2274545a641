#!/usr/bin/env bash
# End-to-end throughput against the Python peer (../shared/bench/peer_pipeline.py),
# interleaved rounds on the same files, same machine: each round runs
# `fracd bench --e2e` once (a fresh daemon: claim, decode, de-identify,
# fsync'd archive, classify, audited record) and the peer once, and prints
# both rates and their ratio; then the medians. Needs ../shared and the
# peer's Debian packages (python3-pydicom python3-gdcm python3-opencv
# python3-pil python3-torch python3-torchvision).
#
#   scripts/bench-e2e.sh [DIR] [-- extra fracd bench flags, e.g. --model FILE]
#
# Without DIR: 120 hospital-like files, the 24 of ../shared/xray-dicom/files
# (8 encodings) and 4 copies of each with a new SOP Instance UID (dcmodify
# -gin), so that none is a duplicate of another.
set -euo pipefail
cd "$(dirname "$0")/.."
FRACD=$(realpath "${FRACD:-bin/fracd}")
ROUNDS=${ROUNDS:-5}
# WARMUP=1: each fracd round is measured after an unmeasured one in the
# same process (grown heap, oneDNN's kernel cache: a daemon that has run a
# while); 0, the default, measures a freshly started process.
WARMUP=${WARMUP:-0}
PEER=$(realpath ../shared/bench/peer_pipeline.py)
dir=""
if [[ $# -gt 0 && $1 != -- ]]; then dir=$1; shift; fi
[[ ${1:-} == -- ]] && shift
if [[ -z $dir ]]; then
	dir=${TMPDIR:-/tmp}/fracd-e2e-corpus
	if [[ $(ls "$dir" 2>/dev/null | wc -l) -ne 120 ]]; then
		rm -rf "$dir" && mkdir -p "$dir"
		for k in 0 1 2 3 4; do
			for f in ../shared/xray-dicom/files/*.dcm; do
				out="$dir/$(basename "$f" .dcm)_$k.dcm"
				cp "$f" "$out"
				if [[ $k -gt 0 ]]; then dcmodify -nb -q -gin "$out"; fi
			done
		done
	fi
fi
n=$(ls "$dir" | wc -l)
echo "files: $dir ($n), fracd: $FRACD $*, rounds: $ROUNDS, warm-up: $WARMUP, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
fr=() pr=() ratios=()
for r in $(seq "$ROUNDS"); do
	fout=$("$FRACD" bench --e2e "$dir" --rounds 1 --warmup "$WARMUP" "$@")
	f=$(sed -n 's/^median \([0-9.]*\) files\/s.*/\1/p' <<<"$fout")
	rss=$(sed -n 's/.*peak RSS \([0-9]*\) MiB$/\1/p' <<<"$fout" | tail -1)
	cpu=$(sed -n 's/^round 1: .*, \(cpu [0-9.]* ms\/file ([0-9.]* cores busy)\).*/\1/p' <<<"$fout")
	pout=$(/usr/bin/python3 "$PEER" "$dir")
	p=$(sed -n 's/.*files\/s \([0-9.]*\).*/\1/p' <<<"$pout")
	ratio=$(python3 -c "print(f'{$f/$p:.2f}')")
	echo "round $r: fracd $f files/s ($cpu, peak RSS $rss MiB), peer $p files/s, ratio ${ratio}x"
	[[ $r -eq 1 ]] && { echo "$fout" | sed -n '/^stage/,$p'; echo "peer: $pout"; }
	fr+=("$f") pr+=("$p") ratios+=("$ratio")
done
python3 - "${fr[*]}" "${pr[*]}" "${ratios[*]}" <<'PY'
import statistics, sys
f, p, r = ([float(x) for x in a.split()] for a in sys.argv[1:4])
print(f"median: fracd {statistics.median(f):.2f} files/s, peer {statistics.median(p):.2f} files/s, "
      f"ratio of medians {statistics.median(f)/statistics.median(p):.2f}x, per-round ratios {' '.join(f'{x:.2f}' for x in r)}")
PY
