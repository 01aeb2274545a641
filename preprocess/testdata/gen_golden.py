"""Regenerate testdata/golden: small synthetic edge cases run through the
seed's reference chain (OpenCV 4.6.0 + Pillow 9.4.0). Layout as
../shared/golden/preprocess: input.png, gray.png, clahe.png, thumb.png,
final.png per case (gray.png only for colour input: otherwise it is
input.png).

usage (from preprocess/): /usr/bin/python3 testdata/gen_golden.py
"""
import json
import os

import cv2
import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def smooth(h, w, rng, noise):
    yy, xx = np.mgrid[0:h, 0:w]
    a = 128 + 90 * np.sin(xx / 17.0 + 1.3) * np.cos(yy / 23.0) + rng.randn(h, w) * noise
    return np.clip(a, 0, 255).astype(np.uint8)


def cases():
    rng = np.random.RandomState(5)
    # colour noise, no resize, CLAHE border on both axes
    yield "rgb_61x47", rng.randint(0, 256, (47, 61, 3)).astype(np.uint8)
    # Lanczos only (no box reduction), CLAHE border on the width only
    yield "gray_500x40", smooth(40, 500, rng, 8)
    # 2x2 box reduction with partial right column and bottom row
    yield "gray_1001x121", smooth(121, 1001, rng, 3)
    # 6x4 reduction to a 224x1 thumbnail
    yield "gray_3000x9", smooth(9, 3000, rng, 6)
    # one column, reduction factor above 257 rows (column-sum lane flush)
    col = ((np.arange(120000) // 7) % 256).astype(np.uint8).reshape(120000, 1)
    yield "gray_1x120000", col
    # colour, exactly divisible by the tiles, no resize needed in width
    yield "rgb_224x400", np.stack([smooth(400, 224, rng, 1) for _ in range(3)], -1)


def main():
    for name, a in cases():
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        g = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) if a.ndim == 3 else a
        c = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(g)
        im = Image.fromarray(c)
        im.thumbnail((224, 224), Image.LANCZOS)
        canvas = Image.new("L", (224, 224), 0)
        off = ((224 - im.size[0]) // 2, (224 - im.size[1]) // 2)
        canvas.paste(im, off)
        Image.fromarray(a).save(os.path.join(d, "input.png"))
        if a.ndim == 3:  # for gray input gray.png would equal input.png
            Image.fromarray(g).save(os.path.join(d, "gray.png"))
        Image.fromarray(c).save(os.path.join(d, "clahe.png"))
        im.save(os.path.join(d, "thumb.png"))
        canvas.save(os.path.join(d, "final.png"))
        with open(os.path.join(d, "case.json"), "w") as f:
            json.dump({"input_shape": list(a.shape), "thumb_size_wh": list(im.size),
                       "pad_offset_xy": list(off), "opencv": cv2.__version__,
                       "pillow": Image.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
