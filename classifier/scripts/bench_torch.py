#!/usr/bin/python3
"""PyTorch baseline for `fracd bench`: same model shapes (one logit), same
work (eval forward, or forward+focal loss+backward+SGD step), median of
--iters timed runs after one warm-up, peak RSS from VmHWM.

    /usr/bin/python3 classifier/scripts/bench_torch.py --arch resnet18 --batch 1
"""
import argparse
import time

import torch
import torchvision
from torchvision.ops import sigmoid_focal_loss


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="inference under CPU autocast to bfloat16 (oneDNN bf16 convolutions)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    model = getattr(torchvision.models, a.arch)(num_classes=1)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = (torch.arange(a.batch) % 2).float()
    if a.train:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)

        def step():
            opt.zero_grad()
            loss = sigmoid_focal_loss(model(x)[:, 0], y, alpha=0.25, gamma=2.0, reduction="mean")
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                model(x)
    step()
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    med = sorted(times)[len(times) // 2]
    mode = "train-step" if a.train else "inference-bf16" if a.bf16 else "inference"
    print(f"pytorch {torch.__version__} {a.arch} {mode} batch={a.batch} size={a.size} threads={torch.get_num_threads()}: "
          f"median {med:.1f} ms/batch, {med / a.batch:.2f} ms/image, peak RSS {peak_rss_mib():.0f} MiB "
          f"(runs: {' '.join(f'{t:.1f}' for t in times)})")


if __name__ == "__main__":
    main()
