#!/usr/bin/python3
"""Decode time per transfer syntax: dicomio (go test -bench BenchmarkDecodeXray: read,
parse with the file's sha256, decode frame 0) against GDCM's in-process C++ decode
(python3-gdcm: gdcm.ImageReader, Read, GetBuffer) of the same files, the 24 of
../shared/xray-dicom/files, in interleaved rounds on the same machine. Medians of
ms/file and their ratio per syntax.

usage (from the repository root): /usr/bin/python3 dicomio/scripts/decode_compare.py [--rounds 5]
"""
import argparse, glob, os, re, statistics, subprocess, time
import gdcm

ap = argparse.ArgumentParser()
ap.add_argument("--rounds", type=int, default=5)
ap.add_argument("--dir", default="../shared/xray-dicom/files")
args = ap.parse_args()

groups = {}
for p in sorted(glob.glob(os.path.join(args.dir, "*.dcm"))):
    r = gdcm.Reader(); r.SetFileName(p); assert r.Read(), p
    ts = str(r.GetFile().GetHeader().GetDataSetTransferSyntax().GetString()).strip("\0 ")
    groups.setdefault(ts, []).append(p)

def gdcm_ms(paths, reps=5):
    t = time.perf_counter()
    for _ in range(reps):
        for p in paths:
            r = gdcm.ImageReader(); r.SetFileName(p)
            if not r.Read():
                raise SystemExit(f"gdcm: cannot read {p}")
            buf = r.GetImage().GetBuffer()
            assert len(buf) > 0
    return (time.perf_counter() - t) * 1000 / (reps * len(paths))

def go_ms():
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", "BenchmarkDecodeXray", "-benchtime", "1s", "./dicomio"],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for m in re.finditer(r"BenchmarkDecodeXray/(\S+?)(?:-\d+)?\s+\d+\s+\d+ ns/op\s+([\d.]+) ms/file", out):
        res[m.group(1)] = float(m.group(2))
    return res

go_r, gd_r = {ts: [] for ts in groups}, {ts: [] for ts in groups}
for rnd in range(args.rounds):
    g = go_ms()
    for ts in groups:
        go_r[ts].append(g[ts])
        gd_r[ts].append(gdcm_ms(groups[ts]))
print(f"| transfer syntax | files | dicomio ms/file | GDCM ms/file | ratio (per-round) |")
print("|---|---|---|---|---|")
for ts in groups:
    a, b = statistics.median(go_r[ts]), statistics.median(gd_r[ts])
    per = " ".join(f"{x/y:.2f}" for x, y in zip(go_r[ts], gd_r[ts]))
    print(f"| {ts} | {len(groups[ts])} | {a:.2f} | {b:.2f} | {a/b:.2f}x ({per}) |")
