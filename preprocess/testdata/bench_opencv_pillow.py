"""Time the seed's chain through OpenCV 4.6 + Pillow 9.4 for comparison with
BenchmarkPlane: decoded image in memory -> (RGB2GRAY if 3 channels) -> CLAHE
2.0/8x8 -> Image.thumbnail((224, 224), LANCZOS) -> centred paste on black
224x224 -> numpy plane. Prints the median and quartiles over the runs.

usage: /usr/bin/python3 bench_opencv_pillow.py IMAGE.png [runs]
"""
import sys
import time

import cv2
import numpy as np
import PIL
from PIL import Image


def chain(a):
    g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a
    c = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(g)
    im = Image.fromarray(c)
    im.thumbnail((224, 224), Image.LANCZOS)
    canvas = Image.new("L", (224, 224), 0)
    canvas.paste(im, ((224 - im.size[0]) // 2, (224 - im.size[1]) // 2))
    return np.asarray(canvas)


def main():
    path = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    a = np.asarray(Image.open(path))
    if a.ndim == 3:
        a = np.ascontiguousarray(a[..., :3])
    chain(a)  # warm up
    ts, cs = [], []
    for _ in range(runs):
        c0 = time.process_time()  # CPU time of all the process' threads
        t0 = time.perf_counter()
        chain(a)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    q1, med, q3 = np.percentile(ts, [25, 50, 75])
    print("%s %dx%d opencv %s pillow %s threads %d: median %.3f ms (q1 %.3f, q3 %.3f, runs %d), cpu %.3f ms/run" % (
        path, a.shape[1], a.shape[0], cv2.__version__, PIL.__version__,
        cv2.getNumThreads(), med * 1e3, q1 * 1e3, q3 * 1e3, runs, np.sum(cs) / runs * 1e3))


if __name__ == "__main__":
    main()
