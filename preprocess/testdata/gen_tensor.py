"""Regenerate testdata/tensor_imagenet.f32: torchvision's model input for
every 8-bit value, ToTensor() + Normalize(ImageNet mean/std) on the plane
copied to 3 channels, as float32 little-endian [3][256].

usage (from preprocess/): /usr/bin/python3 testdata/gen_tensor.py
"""
import os

import numpy as np
import torchvision
from PIL import Image
from torchvision import transforms as T

a = np.arange(256, dtype=np.uint8).reshape(16, 16)
t = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
x = t(Image.fromarray(a).convert("RGB")).numpy().reshape(3, 256).astype("<f4")
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tensor_imagenet.f32")
x.tofile(out)
print("torchvision", torchvision.__version__, "->", out)
