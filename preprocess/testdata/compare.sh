#!/bin/sh
# Interleaved timing of the Go chain (BenchmarkPlane) and the same chain in
# OpenCV 4.6 + Pillow 9.4 on the same images, so that load from other
# processes hits both alike. Run from preprocess/:  sh testdata/compare.sh [rounds]
# Prints per-round medians and the median of the per-round Go/Python ratios.
set -e
rounds=${1:-8}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/pp.test" .
FRACD_PREPROCESS_BENCH_DIR=$dir "$dir/pp.test" -test.run TestWriteBenchImages >/dev/null
i=0
while [ $i -lt "$rounds" ]; do
	"$dir/pp.test" -test.run xxx -test.bench Plane -test.benchtime 15x -test.count 3 | grep '^BenchmarkPlane' >>"$dir/go.txt"
	for img in 2880x2304 454x373; do
		/usr/bin/python3 testdata/bench_opencv_pillow.py "$dir/bench_$img.png" 45 >>"$dir/py.txt"
	done
	echo "round $i" >>"$dir/go.txt"
	echo "round $i" >>"$dir/py.txt"
	i=$((i + 1))
done
/usr/bin/python3 - "$dir" <<'PY'
import re, statistics, sys
d = sys.argv[1]
def rounds(path, parse):
    out, cur = [], {}
    for line in open(path):
        if line.startswith("round"):
            out.append(cur); cur = {}
            continue
        k, wall, cpu = parse(line)
        cur.setdefault(k, []).append((wall, cpu))
    return out
def go(line):
    f = line.split()
    return f[0].split("/")[1].split("-")[0], float(f[2]) / 1e6, float(f[f.index("cpu-ms/op") - 1])
def py(line):
    m = re.search(r"(\d+x\d+) .* median ([\d.]+) ms .* cpu ([\d.]+) ms/run", line)
    return m.group(1), float(m.group(2)), float(m.group(3))
G, P = rounds(d + "/go.txt", go), rounds(d + "/py.txt", py)
for k in ("2880x2304", "454x373"):
    gw = [statistics.median(w for w, _ in r[k]) for r in G]
    gc = [statistics.median(c for _, c in r[k]) for r in G]
    pw = [statistics.median(w for w, _ in r[k]) for r in P]
    pc = [statistics.median(c for _, c in r[k]) for r in P]
    ratio = [a / b for a, b in zip(gw, pw)]
    print("%-10s Go wall median %.3f ms (cpu %.3f) | OpenCV+Pillow wall median %.3f ms (cpu %.3f) | Go/Py wall ratio: median %.2f, range %.2f-%.2f over %d rounds" % (
        k, statistics.median(gw), statistics.median(gc), statistics.median(pw), statistics.median(pc),
        statistics.median(ratio), min(ratio), max(ratio), len(ratio)))
PY
