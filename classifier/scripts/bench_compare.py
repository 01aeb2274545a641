#!/usr/bin/python3
"""Runs `fracd bench` and the PyTorch baseline back to back, several rounds,
and prints per-round medians, the median over rounds and the ratio. Other
users share the machine, so pairs run adjacent and rounds alternate order.

    /usr/bin/python3 classifier/scripts/bench_compare.py --fracd /tmp/fracd --rounds 5 \
        --case "resnet18 1" --case "resnet50 1" --case "resnet18 16 train" --case "resnet50 16 train"

A case is "arch batch [train | bf16 | bf16/f32]": bf16 runs both at bfloat16
inference (fracd --precision bf16, PyTorch under CPU autocast); bf16/f32
compares fracd's bf16 with PyTorch's default float32.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

LINE = re.compile(r"median ([\d.]+) ms/batch.*?peak RSS (\d+) MiB")


def cpu_idle(seconds=0.5):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return v[3] + v[4], sum(v)
    i0, t0 = snap()
    time.sleep(seconds)
    i1, t1 = snap()
    return (i1 - i0) / max(1, t1 - t0)


def wait_quiet(limit):
    """Waits (up to limit seconds) until the machine is >= 90% idle."""
    end = time.time() + limit
    while time.time() < end:
        if cpu_idle() >= 0.9:
            return True
    return False


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = LINE.search(out)
    if not m:
        sys.exit(f"unparsable output of {cmd}: {out}")
    return float(m.group(1)), int(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fracd", default="fracd")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--case", action="append", required=True, help='"arch batch [train]"')
    ap.add_argument("--quiet-wait", type=float, default=0, help="seconds to wait for an idle machine before each run")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    for case in a.case:
        parts = case.split()
        arch, batch, mode = parts[0], parts[1], parts[2] if len(parts) > 2 else ""
        if mode not in ("", "train", "bf16", "bf16/f32"):
            sys.exit(f"case {case!r}: want arch batch [train|bf16|bf16/f32]")
        train = mode == "train"
        iters = "3" if train else "9"
        go = [a.fracd, "bench", "--arch", arch, "--batch", batch, "--iters", iters] + (["--train"] if train else [])
        py = ["/usr/bin/python3", os.path.join(here, "bench_torch.py"), "--arch", arch, "--batch", batch,
              "--iters", iters, "--threads", "2"] + (["--train"] if train else [])
        if mode.startswith("bf16"):
            go += ["--precision", "bf16"]
        if mode == "bf16":
            py += ["--bf16"]
        gt, pt, grss, prss = [], [], [], []
        for r in range(a.rounds):
            order = [(go, gt, grss), (py, pt, prss)]
            if r % 2:
                order.reverse()
            for cmd, ts, rs in order:
                if a.quiet_wait and not wait_quiet(a.quiet_wait):
                    print("  (machine busy)", flush=True)
                t, rss = run(cmd)
                ts.append(t)
                rs.append(rss)
            print(f"  {case} round {r}: gorgonia {gt[-1]:.1f} ms  pytorch {pt[-1]:.1f} ms", flush=True)
        g, p = statistics.median(gt), statistics.median(pt)
        print(f"{case}: gorgonia {g:.1f} ms/batch ({g / int(batch):.1f} ms/image, peak RSS {max(grss)} MiB) | "
              f"pytorch {p:.1f} ms/batch ({p / int(batch):.1f} ms/image, peak RSS {max(prss)} MiB) | "
              f"time ratio {g / p:.2f}, RSS ratio {max(grss) / max(prss):.2f}", flush=True)


if __name__ == "__main__":
    main()
