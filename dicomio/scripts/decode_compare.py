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
    """(wall, CPU) ms per file."""
    t, c = time.perf_counter(), time.process_time()
    for _ in range(reps):
        for p in paths:
            r = gdcm.ImageReader(); r.SetFileName(p)
            if not r.Read():
                raise SystemExit(f"gdcm: cannot read {p}")
            buf = r.GetImage().GetBuffer()
            assert len(buf) > 0
    n = reps * len(paths)
    return (time.perf_counter() - t) * 1000 / n, (time.process_time() - c) * 1000 / n

def go_ms():
    out = subprocess.run(["go", "test", "-run", "^$", "-bench", "BenchmarkDecodeXray", "-benchtime", "1s", "./dicomio"],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for m in re.finditer(r"BenchmarkDecodeXray/(\S+?)(?:-\d+)?\s+\d+\s+\d+ ns/op\s+([\d.]+) cpu-ms/file\s+([\d.]+) ms/file", out):
        res[m.group(1)] = (float(m.group(3)), float(m.group(2)))
    return res

NAMES = {"1.2.840.10008.1.2": "implicit VR", "1.2.840.10008.1.2.1": "explicit VR (native)",
         "1.2.840.10008.1.2.1.99": "deflated", "1.2.840.10008.1.2.5": "RLE",
         "1.2.840.10008.1.2.4.70": "JPEG lossless SV1", "1.2.840.10008.1.2.4.51": "JPEG extended 12-bit",
         "1.2.840.10008.1.2.4.80": "JPEG-LS lossless", "1.2.840.10008.1.2.4.90": "JPEG 2000 lossless"}
for ts in groups:  # warm the caches and the codecs once
    gdcm_ms(groups[ts], reps=1)
go_r, gd_r = {ts: [] for ts in groups}, {ts: [] for ts in groups}
for rnd in range(args.rounds):
    g = go_ms()
    for ts in groups:
        go_r[ts].append(g[ts])
        gd_r[ts].append(gdcm_ms(groups[ts]))
print("Medians over rounds; wall ms/file, and CPU ms/file (less disturbed by other load).")
print("| encoding | files | dicomio wall / CPU | GDCM wall / CPU | ratio wall (per round) | ratio CPU |")
print("|---|---|---|---|---|---|")
for ts in groups:
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    aw, ac, bw, bc = med(go_r[ts], 0), med(go_r[ts], 1), med(gd_r[ts], 0), med(gd_r[ts], 1)
    per = " ".join(f"{x[0]/y[0]:.2f}" for x, y in zip(go_r[ts], gd_r[ts]))
    print(f"| {NAMES.get(ts, ts)} ({ts}) | {len(groups[ts])} | {aw:.2f} / {ac:.2f} | {bw:.2f} / {bc:.2f} | "
          f"{aw/bw:.2f}x ({per}) | {ac/bc:.2f}x |")
