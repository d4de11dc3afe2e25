"""A phone-sized JPEG for the end-to-end tests (tests/e2e/photo_memory.mjs): a photo upscaled
(bicubic) to WIDTHxHEIGHT with a little deterministic noise (up to 6 levels, as a sensor leaves),
written as a phone writes it: quality 90, 4:2:0, EXIF orientation 6 (shown turned a quarter
clockwise), baseline or progressive.

    python3 tests/e2e/phone_photo.py SOURCE OUT WIDTH HEIGHT baseline|progressive
"""
import sys

import numpy as np
from PIL import Image

source, out, width, height, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
pixels = np.asarray(Image.open(source).convert("RGB").resize((width, height), Image.BICUBIC), dtype=np.int16)
noise = np.random.default_rng(20261207).integers(-6, 7, size=pixels.shape, dtype=np.int16)
photo = Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))
exif = Image.Exif()
exif[0x0112] = 6  # Orientation
photo.save(out, "JPEG", quality=90, subsampling=2, progressive=kind == "progressive", exif=exif.tobytes())
