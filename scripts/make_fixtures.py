#!/usr/bin/env python3
"""Generate the reference fixtures that let clipmatch's Rust tests check themselves
against Hugging Face `transformers` without needing Python at test time.

Run once (``python3 scripts/make_fixtures.py``); the outputs under ``tests/fixtures/``
are committed. Everything is deterministic for a given --seed and set of library
versions (see scripts/requirements-fixtures.txt).

What is generated (paths relative to tests/fixtures/):

* ``tiny-clip/`` -- a tiny *random-weight* CLIP in Hugging Face layout
  (config.json, model.safetensors in f32, preprocessor_config.json). The config is
  the real openai/clip-vit-base-patch32 config (vocab 49408, 77 positions,
  quick_gelu, bos/eos ids, patch 32, image 224, ...) with only the widths/depths
  shrunk, so the Rust loader exercises the real tensor names and shapes pattern.
  No tokenizer files: the real tokenizer.json lives in the shared data folder and is
  not copied into the repository.
* ``tiny-clip-vision-f16/`` -- only the ``vision_model.*`` and
  ``visual_projection.*`` tensors of the same model, stored as float16 (names as in
  the full model), plus the same config.json / preprocessor_config.json.
* ``images/`` -- small synthetic, photo-like test images covering the decode paths
  that matter: JPEG, JPEG with EXIF orientation 6, RGBA PNG, grayscale PNG, 16-bit
  PNG, lossy and lossless WebP, animated GIF, extreme aspect ratios, upscaling, CMYK
  JPEG. Content is smooth gradients + hard-edged and soft shapes + 1-2 px detail +
  a little noise, placed asymmetrically, so resampling, cropping, rotation or
  channel-order mistakes change the result.
* ``reference/pixels/<name>_<ext>.png`` -- the exact 224x224 preprocessed input for each
  image, stored losslessly as 8-bit RGB (level = (pixel_value*std + mean)*255, which
  the script asserts is an integer to within 0.01, i.e. the normalisation is
  invertible and nothing is lost).
* ``reference/reference.json`` -- unnormalised projected image embeddings
  (``get_image_features``) from the f32 model and from the f16 vision weights
  upcast to f32 (computation in f32 in both cases), token ids and unpadded text
  embeddings (``get_text_features``), the padded batch of all texts, versions, seed.

Why it is built this way:

* Random weights: the real checkpoint is 600 MB and cannot be committed; matching
  a random model layer-for-layer tests the same code paths.
* transformers' *PIL* image processor: in transformers 5 the class called
  ``CLIPImageProcessor`` is the torchvision ("fast") backend; the PIL/NumPy path
  (what older versions called the slow processor, and what the published CLIP
  numbers were computed with) is ``CLIPImageProcessorPil``. This script
  instantiates that class explicitly and asserts it got the PIL backend.
  Its steps: convert to RGB (alpha composited onto white; P/L/CMYK via
  PIL ``convert("RGB")``), resize with PIL bicubic on uint8 so the short edge is 224
  (long edge = int(224 * long / short), truncated), centre crop 224 with offsets
  (size - 224) // 2, rescale by 1/255, normalise with the CLIP mean/std.
* ``ImageOps.exif_transpose`` is applied *before* the processor: browsers and
  our Rust code honour EXIF orientation, transformers does not, so the reference
  rotates first.
* Biases and LayerNorm parameters are randomised: transformers initialises every
  bias to 0 and every LayerNorm to weight=1/bias=0, which would hide bugs where the
  Rust side fails to load (or mixes up) those tensors. The vision class and
  position embeddings are also redrawn at a scale comparable to the patch
  embeddings so that a missing/mis-ordered position embedding is visible.

``--vit-b32 OUT_DIR`` instead writes a random-weight model with the *real* ViT-B/32
sizes (about 605 MB of f32) for demos and benchmarks; that output is not committed.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import PIL
import regex
import safetensors
import safetensors.torch
import tokenizers
import torch
import transformers
from PIL import ExifTags, Image, ImageDraw, ImageFilter, ImageOps
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer, CLIPTokenizerFast
from transformers.image_processing_backends import PilBackend
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ChannelDimension, PILImageResampling

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures"
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "clip-vit-base-patch32"
DEFAULT_SEED = 20240607

PAD_ID = 49407  # <|endoftext|>
BOS_ID = 49406  # <|startoftext|>
MAX_LEN = 77

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   patch_size=32, image_size=224)
TINY_TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
TINY_PROJECTION_DIM = 16


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------

def load_real_config_dict(shared_dir: Path) -> dict:
    with open(shared_dir / "config.json", encoding="utf-8") as f:
        return json.load(f)


def tiny_config(shared_dir: Path) -> CLIPConfig:
    d = load_real_config_dict(shared_dir)
    d["vision_config"].update(TINY_VISION)
    d["text_config"].update(TINY_TEXT)
    d["projection_dim"] = TINY_PROJECTION_DIM
    d["vision_config"]["projection_dim"] = TINY_PROJECTION_DIM
    d["text_config"]["projection_dim"] = TINY_PROJECTION_DIM
    return CLIPConfig.from_dict(d)


def real_config(shared_dir: Path) -> CLIPConfig:
    return CLIPConfig.from_dict(load_real_config_dict(shared_dir))


def randomise_(model: CLIPModel, seed: int) -> None:
    """Overwrite the parameters that transformers initialises to constants.

    * every LayerNorm: weight ~ 1 + N(0, 0.2), bias ~ N(0, 0.1)
    * every other bias (q/k/v/out_proj, fc1, fc2): ~ N(0, 0.1)
    * vision class_embedding ~ N(0, 0.5), vision position embeddings ~ N(0, 0.1)
      (default init: 0.02; the patch embeddings of a normalised image are O(1),
      and much larger position embeddings wash out the image content)
    * text position embeddings ~ N(0, 0.02) (same scale as the token embeddings)
    Parameters are visited in sorted name order with a dedicated generator, so the
    result does not depend on module registration order.
    """
    g = torch.Generator().manual_seed(seed + 1)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    ln_weights, ln_biases = set(), set()
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            ln_weights.add(f"{mname}.weight")
            ln_biases.add(f"{mname}.bias")
    params = dict(model.named_parameters())
    n_ln = n_bias = 0
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name in ln_weights:
                p.copy_(1.0 + 0.2 * randn(p.shape))
                n_ln += 1
            elif name in ln_biases or name.endswith(".bias"):
                p.copy_(0.1 * randn(p.shape))
                n_bias += 1
            elif name == "vision_model.embeddings.class_embedding":
                p.copy_(0.5 * randn(p.shape))
            elif name == "vision_model.embeddings.position_embedding.weight":
                p.copy_(0.1 * randn(p.shape))
            elif name == "text_model.embeddings.position_embedding.weight":
                p.copy_(0.02 * randn(p.shape))
    assert n_ln > 0 and n_bias > 0
    # Nothing may be left at a constant value.
    for name, p in model.named_parameters():
        if p.numel() > 1:
            assert float(p.detach().std()) > 0, f"{name} is constant"


def build_model(config: CLIPConfig, seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    model = CLIPModel(config)
    randomise_(model, seed)
    model = model.float().eval()
    return model


def write_preprocessor_config(proc: CLIPImageProcessorPil, out_dir: Path) -> None:
    proc.save_pretrained(out_dir)


def make_image_processor(shared_dir: Path) -> CLIPImageProcessorPil:
    """The PIL ("slow") CLIP image processor with the openai defaults, explicitly."""
    proc = CLIPImageProcessorPil(
        do_convert_rgb=True,
        do_resize=True,
        size={"shortest_edge": 224},
        resample=PILImageResampling.BICUBIC,
        do_center_crop=True,
        crop_size={"height": 224, "width": 224},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(OPENAI_CLIP_MEAN),
        image_std=list(OPENAI_CLIP_STD),
    )
    assert type(proc).__name__ == "CLIPImageProcessorPil", type(proc)
    assert isinstance(proc, PilBackend) and proc.backend == "pil", (type(proc).__mro__, proc.backend)
    # Must agree with the real checkpoint's preprocessor_config.json.
    real = transformers.AutoImageProcessor.from_pretrained(str(shared_dir), backend="pil")
    assert type(real).__name__ == "CLIPImageProcessorPil", type(real)
    for key in ("do_convert_rgb", "do_resize", "size", "resample", "do_center_crop", "crop_size",
                "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std"):
        a, b = getattr(proc, key), getattr(real, key)
        if isinstance(a, (list, tuple)):
            a, b = list(a), list(b)
        assert a == b, (key, a, b)
    return proc


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

def _mask(w: int, h: int, draw_fn, blur: float = 0.0) -> np.ndarray:
    m = Image.new("L", (w, h), 0)
    draw_fn(ImageDraw.Draw(m))
    if blur > 0:
        m = m.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(m, dtype=np.float64)[..., None] / 255.0


def scene(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """A photo-like float RGB image in [0, 255] (not yet quantised, no noise).

    Smooth gradients + a soft "sun" + a low-frequency wave, then hard-edged shapes
    (ellipse, rectangle, an arrow pointing right, an L shape), one blurred blob,
    thin 1 px lines and a patch of 1-2 px checkerboard/stripes in the top-right
    corner. Nothing is mirror- or rotation-symmetric.
    """
    s = min(w, h)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    xn, yn = x / w, y / h
    img = rng.uniform(50, 170, 3) + xn[..., None] * rng.uniform(-70, 70, 3) + yn[..., None] * rng.uniform(-70, 70, 3)
    gx, gy, r = rng.uniform(0.15, 0.4) * w, rng.uniform(0.1, 0.35) * h, 0.35 * s
    img = img + np.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * r * r))[..., None] * rng.uniform(30, 80, 3)
    wave = np.sin(2 * np.pi * (xn * rng.uniform(1, 3) + yn * rng.uniform(0.5, 2)) + rng.uniform(0, 2 * np.pi))
    img = img + 14 * wave[..., None] * rng.uniform(-1, 1, 3)

    def paste(mask: np.ndarray, color) -> None:
        nonlocal img
        img = img * (1 - mask) + np.asarray(color, dtype=np.float64) * mask

    def col():
        return rng.uniform(0, 255, 3)

    def jit():  # per-image layout jitter, +-4% of the size
        return rng.uniform(-0.04, 0.04)

    # extreme aspect ratios: extra objects along the long axis, so the centre crop
    # is not empty
    if max(w, h) > 2.5 * s:
        n = int(max(w, h) / s) + 1
        for i in range(n):
            t = (i + 0.5 + 0.3 * rng.uniform(-1, 1)) / n
            cx, cy = (t * w, (0.5 + jit()) * h) if w > h else ((0.5 + jit()) * w, t * h)
            rr = rng.uniform(0.15, 0.3) * s
            if i % 2:
                paste(_mask(w, h, lambda d: d.ellipse([cx - rr, cy - rr * 0.6, cx + rr, cy + rr * 0.6], fill=255)),
                      col())
            else:
                paste(_mask(w, h, lambda d: d.rectangle([cx - rr * 0.5, cy - rr, cx + rr * 0.7, cy + rr * 0.4],
                                                        fill=255)), col())

    # soft blob (out-of-focus object), lower left
    bx, by, br = (0.22 + jit()) * w, (0.72 + jit()) * h, 0.16 * s
    paste(_mask(w, h, lambda d: d.ellipse([bx - br, by - br * 0.7, bx + br, by + br * 0.7], fill=255),
                blur=max(1.0, s / 60)), col())
    # hard ellipse, upper left-of-centre
    ex, ey = (0.33 + jit()) * w, (0.32 + jit()) * h
    paste(_mask(w, h, lambda d: d.ellipse([ex - 0.14 * s, ey - 0.1 * s, ex + 0.14 * s, ey + 0.1 * s], fill=255)),
          col())
    # rectangle lower right, with a dark inset
    rx, ry = jit(), jit()
    paste(_mask(w, h, lambda d: d.rectangle([(0.6 + rx) * w, (0.58 + ry) * h, (0.9 + rx) * w, (0.86 + ry) * h],
                                            fill=255)), col())
    paste(_mask(w, h, lambda d: d.rectangle([(0.66 + rx) * w, (0.64 + ry) * h, (0.75 + rx) * w, (0.8 + ry) * h],
                                            fill=255)), [20, 20, 25])
    # arrow pointing right, middle
    ax, ay, a = (0.42 + jit()) * w, (0.55 + jit()) * h, 0.12 * s
    paste(_mask(w, h, lambda d: d.polygon([(ax - a, ay - a / 3), (ax, ay - a / 3), (ax, ay - a), (ax + a, ay),
                                           (ax, ay + a), (ax, ay + a / 3), (ax - a, ay + a / 3)], fill=255)),
          [250, 245, 235])
    # L shape, upper right of centre
    lx, ly, l = (0.62 + jit()) * w, (0.12 + jit()) * h, 0.22 * s
    paste(_mask(w, h, lambda d: d.polygon([(lx, ly), (lx + l * 0.25, ly), (lx + l * 0.25, ly + l * 0.75),
                                           (lx + l * 0.8, ly + l * 0.75), (lx + l * 0.8, ly + l), (lx, ly + l)],
                                          fill=255)), col())
    # thin lines at several angles
    line_col = col()

    def lines(d):
        d.line([(0.05 * w, 0.95 * h), (0.55 * w, 0.05 * h)], fill=255, width=1)
        d.line([(0.1 * w, 0.1 * h), (0.95 * w, 0.4 * h)], fill=255, width=1)
        d.line([(0.5 * w, 0.98 * h), (0.98 * w, 0.5 * h)], fill=255, width=2)
        for i in range(6):
            xx = 0.05 * w + i * max(2, s // 60)
            d.line([(xx, 0.3 * h), (xx, 0.5 * h)], fill=255, width=1)
    paste(_mask(w, h, lines), line_col)
    # fine-detail patch in the top-right corner: 1 px checkerboard and 2 px stripes
    pw = max(8, int(0.16 * s))
    x0, y0 = w - pw - max(2, int(0.03 * w)), max(2, int(0.04 * h))
    yy, xx = np.mgrid[0:pw, 0:pw]
    checker = ((xx + yy) % 2).astype(np.float64)
    stripes = ((xx // 2) % 2).astype(np.float64)
    patch = np.where((yy < pw // 2)[..., None], checker[..., None], stripes[..., None])
    c1, c2 = col(), col()
    img[y0:y0 + pw, x0:x0 + pw] = c1 * patch + c2 * (1 - patch)
    return np.clip(img, 0, 255)


def to_u8(img: np.ndarray, rng: np.random.Generator, noise: float = 1.5) -> np.ndarray:
    return np.clip(np.rint(img + rng.normal(0, noise, img.shape)), 0, 255).astype(np.uint8)


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """Write an (H, W, 3) uint16 array as a 48-bit truecolour PNG (Pillow cannot).

    Plain numpy + zlib; per row the PNG filter (None/Sub/Up/Average/Paeth) with the
    smallest sum of absolute residuals is used, like libpng's heuristic.
    """
    assert arr.dtype == np.uint16 and arr.ndim == 3 and arr.shape[2] == 3
    h, w, _ = arr.shape
    bpp = 6  # bytes per pixel
    rows = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int32)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    out = bytearray()
    prior = np.zeros(w * bpp, np.int32)
    for y in range(h):
        x = rows[y]
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        p = left + prior - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
        cands = [x, x - left, x - prior, x - (left + prior) // 2, x - paeth]
        cands = [(c % 256).astype(np.uint8) for c in cands]
        ftype = min(range(5), key=lambda i: int(np.abs(cands[i].astype(np.int8).astype(np.int32)).sum()))
        out.append(ftype)
        out += cands[ftype].tobytes()
        prior = x
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))  # depth 16, colour type 2 (RGB)
           + chunk(b"IDAT", zlib.compress(bytes(out), 9))
           + chunk(b"IEND", b""))
    path.write_bytes(png)


def make_images(img_dir: Path, seed: int) -> list[str]:
    img_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []

    def rng_for(i: int) -> np.random.Generator:
        return np.random.default_rng([seed, i])

    # photo.jpg: 640x480 RGB, q90
    r = rng_for(1)
    Image.fromarray(to_u8(scene(640, 480, r), r)).save(img_dir / "photo.jpg", quality=90)
    files.append("photo.jpg")

    # exif_rotated.jpg: upright content is 480x640; stored rotated 90 deg CCW as 640x480
    # with EXIF Orientation = 6 ("rotate 90 CW to display").
    r = rng_for(2)
    upright = Image.fromarray(to_u8(scene(480, 640, r), r))
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (640, 480)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    stored.save(img_dir / "exif_rotated.jpg", quality=90, exif=exif.tobytes())
    with Image.open(img_dir / "exif_rotated.jpg") as im:
        assert im.size == (640, 480) and im.getexif().get(ExifTags.Base.Orientation) == 6
        up = ImageOps.exif_transpose(im)
        assert up.size == (480, 640)
        # the transposed JPEG must look like the upright source (JPEG loss only)
        err = np.abs(np.asarray(up, dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
        assert err < 4, f"exif_transpose did not restore the upright image (mean abs err {err})"
    files.append("exif_rotated.jpg")

    # alpha.png: RGBA 300x200 with alpha 0 / partial / 255 regions. The colour under
    # transparent pixels is deliberately NOT white, so dropping alpha instead of
    # compositing onto white is detectable.
    r = rng_for(3)
    w, h = 300, 200
    rgb = to_u8(scene(w, h, r), r)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    alpha = np.full((h, w), 255.0)
    alpha[(x / w + 0.6 * y / h) > 1.05] = 0.0  # transparent wedge (lower right)
    ramp = (x < 0.45 * w) & (y > 0.35 * h)  # horizontal ramp 0..255 (lower left)
    alpha[ramp] = np.round(255 * x[ramp] / (0.45 * w))
    circ = (x - 0.7 * w) ** 2 + (y - 0.3 * h) ** 2 < (0.16 * h) ** 2  # half-transparent disc
    alpha[circ] = 128
    alpha[5:25, 5:60] = 1  # nearly transparent, and nearly opaque strips
    alpha[30:50, 5:60] = 254
    rgba = np.dstack([rgb, alpha.astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(img_dir / "alpha.png", optimize=True)
    a = np.asarray(Image.open(img_dir / "alpha.png"))[..., 3]
    assert (a == 0).mean() > 0.1 and (a == 255).mean() > 0.2 and ((a > 0) & (a < 255)).mean() > 0.1
    files.append("alpha.png")

    # gray.png: mode L, 256x320
    r = rng_for(4)
    rgb = to_u8(scene(256, 320, r), r)
    Image.fromarray(rgb).convert("L").save(img_dir / "gray.png", optimize=True)
    assert Image.open(img_dir / "gray.png").mode == "L"
    files.append("gray.png")

    # deep16.png: 48-bit RGB PNG, 320x240, all 16 bits used (noise in the low byte,
    # black and white regions reach 0 and 65535).
    r = rng_for(5)
    w, h = 320, 240
    f = scene(w, h, r) * 257.0
    f[h - 20:h - 5, 10:60] = 0.0
    f[h - 20:h - 5, 60:110] = 65535.0
    deep = np.clip(np.rint(f + r.normal(0, 6.0, f.shape)), 0, 65535).astype(np.uint16)
    write_png16_rgb(img_dir / "deep16.png", deep)
    assert ((deep & 0xFF) != 0).mean() > 0.9 and deep.min() == 0 and deep.max() == 65535
    # How Pillow reads it: mode "RGB" (8-bit) via rawmode "RGB;16B", i.e. it keeps the
    # HIGH byte of each big-endian sample (value >> 8, truncation, not round(v/257)).
    with Image.open(img_dir / "deep16.png") as im:
        assert im.mode == "RGB" and im.size == (w, h), im.mode
        assert np.array_equal(np.asarray(im), (deep >> 8).astype(np.uint8)), "Pillow no longer reads 16-bit as >>8"
    files.append("deep16.png")

    # photo.webp: lossy 400x300
    r = rng_for(6)
    Image.fromarray(to_u8(scene(400, 300, r), r)).save(img_dir / "photo.webp", quality=80, method=6)
    with Image.open(img_dir / "photo.webp") as im:
        assert im.mode == "RGB" and im.size == (400, 300), im.mode
    files.append("photo.webp")

    # lossless.webp: 200x150
    r = rng_for(7)
    src = to_u8(scene(200, 150, r), r)
    Image.fromarray(src).save(img_dir / "lossless.webp", lossless=True, quality=100, method=6)
    with Image.open(img_dir / "lossless.webp") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), src), "lossless WebP is not lossless"
    files.append("lossless.webp")

    # anim.gif: 2 different frames, 240x180, no transparency. Only frame 0 counts.
    r = rng_for(8)
    frames = []
    for _ in range(2):
        fr = Image.fromarray(to_u8(scene(240, 180, r), r, noise=0.0))
        frames.append(fr.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    frames[0].save(img_dir / "anim.gif", save_all=True, append_images=frames[1:], duration=400, loop=0,
                   optimize=False, disposal=1)
    with Image.open(img_dir / "anim.gif") as im:
        assert im.n_frames == 2 and im.size == (240, 180) and im.mode == "P", (im.n_frames, im.mode)
        assert "transparency" not in im.info, im.info
        f0 = np.asarray(im.convert("RGB"))
        assert np.array_equal(f0, np.asarray(frames[0].convert("RGB"))), "GIF frame 0 not preserved"
        im.seek(1)
        f1 = np.asarray(im.convert("RGB"))
        assert np.abs(f0.astype(int) - f1.astype(int)).mean() > 10, "GIF frames too similar"
    files.append("anim.gif")

    # wide.jpg 900x150, tall.png 120x700, small.png 60x45 (upscaled by the processor)
    r = rng_for(9)
    Image.fromarray(to_u8(scene(900, 150, r), r)).save(img_dir / "wide.jpg", quality=90)
    files.append("wide.jpg")
    r = rng_for(10)
    Image.fromarray(to_u8(scene(120, 700, r), r)).save(img_dir / "tall.png", optimize=True)
    files.append("tall.png")
    r = rng_for(11)
    Image.fromarray(to_u8(scene(60, 45, r), r)).save(img_dir / "small.png", optimize=True)
    files.append("small.png")

    # cmyk.jpg: 300x200 CMYK JPEG with real K (simple under-colour removal).
    r = rng_for(12)
    rgb = scene(300, 200, r)
    k = (255.0 - rgb.max(axis=2)) * 0.85
    denom = np.maximum(255.0 - k, 1e-6)[..., None]
    cmy = (255.0 - rgb - k[..., None]) / denom * 255.0
    cmyk = np.dstack([cmy, k[..., None]])
    cmyk = np.clip(np.rint(cmyk + r.normal(0, 1.5, cmyk.shape)), 0, 255).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(img_dir / "cmyk.jpg", quality=90)
    # How Pillow reads it: Pillow writes an Adobe APP14 marker (transform 0, no YCCK)
    # with inverted ("Adobe") CMYK samples, and reads it back as mode "CMYK" with the
    # inversion undone. convert("RGB") is Pillow's naive formula with no ICC:
    # R = round((255 - C) * (255 - K) / 255), likewise G from M and B from Y.
    with Image.open(img_dir / "cmyk.jpg") as im:
        assert im.mode == "CMYK" and im.info.get("adobe") is not None, (im.mode, im.info)
        c = np.asarray(im).astype(np.float64)
        want = np.rint((255 - c[..., :3]) * (255 - c[..., 3:4]) / 255)
        got = np.asarray(im.convert("RGB")).astype(np.float64)
        assert np.abs(want - got).max() <= 1, "Pillow CMYK->RGB formula changed"
    files.append("cmyk.jpg")
    return files


# --------------------------------------------------------------------------------------
# Tokenizer cross-check (pure-Python port of OpenAI's simple_tokenizer.py)
# --------------------------------------------------------------------------------------

def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ReferenceBPE:
    """OpenAI CLIP's reference BPE (simple_tokenizer.py) from vocab.json + merges.txt.

    transformers 5 no longer ships a slow Python CLIPTokenizer (CLIPTokenizer and
    CLIPTokenizerFast are the same tokenizers-backed class), so this independent
    implementation stands in for it. Cleaning: NFC (what ftfy.fix_text does for
    these inputs), whitespace collapse, strip, lower-case; no HTML unescaping is
    needed for the test strings.
    """

    PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                        regex.IGNORECASE)

    def __init__(self, shared_dir: Path):
        import unicodedata
        self._nfc = lambda s: unicodedata.normalize("NFC", s)
        with open(shared_dir / "vocab.json", encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(shared_dir / "merges.txt", encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [tuple(line.split()) for line in lines[1:] if line.strip()]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = _bytes_to_unicode()
        self.cache: dict[str, str] = {}

    def bpe(self, token: str) -> list[str]:
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            first, second = best
            new, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        return list(word)

    def encode(self, text: str, max_length: int = MAX_LEN) -> list[int]:
        text = regex.sub(r"\s+", " ", self._nfc(text)).strip().lower()
        ids = []
        for tok in self.PAT.findall(text):
            tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok))
        return [BOS_ID] + ids[: max_length - 2] + [PAD_ID]


# --------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------

def f32_list(t) -> list[float]:
    arr = np.asarray(t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t, dtype=np.float32).reshape(-1)
    assert np.isfinite(arr).all()
    out = []
    for v in arr:
        s = str(np.float32(v))  # shortest repr that round-trips as float32
        x = float(s)
        assert np.float32(x) == v, (s, v)
        out.append(x)
    return out


def to_json(obj, indent: int = 0) -> str:
    """JSON with lists of scalars on one line (keeps the file diff- and eye-friendly)."""
    pad, pad1 = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {to_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
        return "[\n" + ",\n".join(pad1 + to_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, ensure_ascii=False)


def make_readable(path: Path) -> None:
    """safetensors writes its files with mode 0600; give them the usual umask-based mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


# --------------------------------------------------------------------------------------
# Main modes
# --------------------------------------------------------------------------------------

TEXTS_FIXED = [
    "Absolut Citron",
    "Bravo Apple Juice",
    "Oatly Natural Oatghurt",
    "7up 330ml 2x 1.5L 2024",
    "Hello, world! (test) #1 -- ok? it's 50% off...",
    "Crème fraîche – Ärtsoppa, 日本語 🍋 naïve café",
    "",
]
TEXT_TAIL = [
    "  MiXeD   CaSe   spaces  ",
    "a photo of a carton of milk",
]


def long_text(seed: int, n_words: int = 200) -> str:
    words = ("milk oat juice apple orange citron lemon bottle carton can box jar organic fresh "
             "sparkling still water coffee tea chocolate vanilla strawberry banana yoghurt cheese butter "
             "bread rye wheat gluten-free low-fat 0.5% 1.5L 330ml 500g 12-pack family-size original "
             "classic zero sugar light extra strong mild swedish danish norwegian finnish ekologisk "
             "mjölk smör ost bröd kaffe naturell vanilj jordgubb the of and with without for, from. "
             "it's don't we'll you're #1 (new) best-before 2025-12-31 price: 24.90kr").split()
    rnd = random.Random(seed)
    return " ".join(rnd.choice(words) for _ in range(n_words))


def generate_fixtures(out: Path, shared_dir: Path, seed: int) -> None:
    t0 = time.time()
    torch.set_num_threads(1)  # bit-stable reductions across machines with different core counts
    out.mkdir(parents=True, exist_ok=True)
    model_dir, f16_dir = out / "tiny-clip", out / "tiny-clip-vision-f16"
    img_dir, ref_dir = out / "images", out / "reference"
    pix_dir = ref_dir / "pixels"
    for d in (model_dir, f16_dir, img_dir, pix_dir):
        d.mkdir(parents=True, exist_ok=True)

    # ---- model -------------------------------------------------------------------
    config = tiny_config(shared_dir)
    model = build_model(config, seed)
    model.save_pretrained(model_dir)  # transformers 5: always safetensors (no safe_serialization arg)
    make_readable(model_dir / "model.safetensors")
    proc = make_image_processor(shared_dir)
    write_preprocessor_config(proc, model_dir)

    # Reload from disk so that the references are computed from exactly what is committed.
    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    sd_disk = safetensors.torch.load_file(str(model_dir / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in sd_disk.values())
    # every parameter is on disk (position_ids are non-persistent buffers and are not saved)
    assert set(sd_disk) == {n for n, _ in model.named_parameters()}, sorted(set(sd_disk))

    # ---- f16 vision-only copy ------------------------------------------------------
    vision_keys = sorted(k for k in sd_disk if k.startswith(("vision_model.", "visual_projection.")))
    f16_sd = {k: sd_disk[k].to(torch.float16).contiguous() for k in vision_keys}
    safetensors.torch.save_file(f16_sd, str(f16_dir / "model.safetensors"), metadata={"format": "pt"})
    make_readable(f16_dir / "model.safetensors")
    shutil.copyfile(model_dir / "config.json", f16_dir / "config.json")
    write_preprocessor_config(proc, f16_dir)
    model_f16 = copy.deepcopy(model)
    loaded = safetensors.torch.load_file(str(f16_dir / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in loaded.values()) and set(loaded) == set(vision_keys)
    missing, unexpected = model_f16.load_state_dict({k: v.float() for k, v in loaded.items()}, strict=False)
    assert not unexpected and not any(k.startswith(("vision_model.", "visual_projection.")) for k in missing)
    model_f16.eval()

    # ---- images --------------------------------------------------------------------
    files = make_images(img_dir, seed)
    mean = np.asarray(proc.image_mean, dtype=np.float64).reshape(3, 1, 1)
    std = np.asarray(proc.image_std, dtype=np.float64).reshape(3, 1, 1)
    images_json = []
    image_info = []
    with torch.no_grad():
        for fname in files:
            with Image.open(img_dir / fname) as im:
                im.load()
                mode = im.mode
                upright = ImageOps.exif_transpose(im)
            pv = proc(images=upright, return_tensors="pt").pixel_values
            assert tuple(pv.shape) == (1, 3, 224, 224) and pv.dtype == torch.float32
            levels = (pv[0].double().numpy() * std + mean) * 255.0
            err = np.abs(levels - np.rint(levels)).max()
            assert err < 0.01, f"{fname}: normalisation not invertible to integers (max err {err})"
            assert levels.min() > -0.5 and levels.max() < 255.5
            u8 = np.rint(levels).astype(np.uint8).transpose(1, 2, 0)
            stem = Path(fname).name.replace(".", "_")  # photo.jpg and photo.webp must not collide
            Image.fromarray(u8, "RGB").save(pix_dir / f"{stem}.png", optimize=True)
            # the PNG must reproduce the processor output exactly (up to f32 rounding)
            back = (np.asarray(Image.open(pix_dir / f"{stem}.png"), dtype=np.float64).transpose(2, 0, 1) / 255.0
                    - mean) / std
            assert np.abs(back - pv[0].double().numpy()).max() < 1e-5

            rh, rw = get_resize_output_image_size(np.zeros((3, upright.height, upright.width), np.uint8), size=224,
                                                  default_to_square=False,
                                                  input_data_format=ChannelDimension.FIRST)
            out32 = model.get_image_features(pixel_values=pv)
            # transformers 5: an output object whose pooler_output is the projected embedding
            emb = out32.pooler_output if not isinstance(out32, torch.Tensor) else out32
            emb16 = model_f16.get_image_features(pixel_values=pv)
            emb16 = emb16.pooler_output if not isinstance(emb16, torch.Tensor) else emb16
            assert emb.shape == (1, TINY_PROJECTION_DIM) and emb16.shape == emb.shape
            assert torch.isfinite(emb).all() and torch.isfinite(emb16).all()
            images_json.append({
                "file": f"images/{fname}",
                "pil_mode": mode,
                "upright_size": [upright.width, upright.height],
                "resized_size": [rw, rh],
                "pixels": f"reference/pixels/{stem}.png",
                "embedding": f32_list(emb[0]),
                "embedding_vision_f16": f32_list(emb16[0]),
            })
            image_info.append((fname, mode, upright.size, (rw, rh), emb[0].clone(), emb16[0].clone()))

    # sanity: embeddings not degenerate, f16 close but not identical, sdpa == eager
    embs = torch.stack([e for *_, e, _ in image_info])
    e16s = torch.stack([e for *_, e in image_info])
    cos = torch.nn.functional.cosine_similarity(embs[:, None], embs[None], dim=-1)
    off = cos[~torch.eye(len(embs), dtype=torch.bool)]
    # A random 2-layer ViT maps all images fairly close together; only guard against
    # collapse (e.g. outputs dominated by biases/class embedding).
    assert off.max() < 0.999 and off.mean() < 0.95, f"image embeddings too similar ({off.max():.4f})"
    f16_rel = float(((embs - e16s).norm(dim=-1) / embs.norm(dim=-1)).max())
    assert 0 < f16_rel < 0.05, f16_rel
    sdpa = CLIPModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    with torch.no_grad():
        pv = torch.from_numpy(((np.asarray(Image.open(pix_dir / "photo_jpg.png"), np.float64).transpose(2, 0, 1) / 255.0
                                - mean) / std).astype(np.float32))[None]
        a = model.get_image_features(pixel_values=pv).pooler_output
        b = sdpa.get_image_features(pixel_values=pv).pooler_output
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()

    # ---- tokens & text -------------------------------------------------------------
    assert CLIPTokenizerFast is CLIPTokenizer  # transformers 5: one tokenizers-backed class
    tok = CLIPTokenizerFast.from_pretrained(str(shared_dir))
    assert tok.pad_token_id == PAD_ID and tok.bos_token_id == BOS_ID and tok.eos_token_id == PAD_ID
    raw = tokenizers.Tokenizer.from_file(str(shared_dir / "tokenizer.json"))
    raw.enable_truncation(MAX_LEN)
    ref_bpe = ReferenceBPE(shared_dir)

    texts = TEXTS_FIXED + [long_text(seed)] + TEXT_TAIL
    texts_json = []
    unpadded_feats = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, truncation=True, max_length=MAX_LEN)
            ids = list(enc["input_ids"])
            assert ids[0] == BOS_ID and ids[-1] == PAD_ID and len(ids) <= MAX_LEN
            assert raw.encode(text).ids == ids, ("tokenizers.Tokenizer differs", text)
            assert ref_bpe.encode(text) == ids, ("reference BPE differs", text, ref_bpe.encode(text), ids)
            res = model.get_text_features(input_ids=torch.tensor([ids]))
            feat = res.pooler_output if not isinstance(res, torch.Tensor) else res
            assert feat.shape == (1, TINY_PROJECTION_DIM) and torch.isfinite(feat).all()
            unpadded_feats.append(feat[0])
            texts_json.append({"text": text, "ids": ids, "embedding": f32_list(feat[0])})
    assert len(texts_json[len(TEXTS_FIXED)]["ids"]) == MAX_LEN  # the 200-word text is truncated

    batch = tok(texts, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="pt")
    ids_b, mask_b = batch["input_ids"], batch["attention_mask"]
    for i, t in enumerate(texts_json):
        n = len(t["ids"])
        assert ids_b[i, :n].tolist() == t["ids"] and mask_b[i, :n].tolist() == [1] * n
        assert all(v == PAD_ID for v in ids_b[i, n:].tolist()) and not any(mask_b[i, n:].tolist())
    with torch.no_grad():
        res = model.get_text_features(input_ids=ids_b, attention_mask=mask_b)
        feats_b = res.pooler_output if not isinstance(res, torch.Tensor) else res
    unpadded = torch.stack(unpadded_feats)
    assert torch.allclose(feats_b, unpadded, atol=1e-5), (feats_b - unpadded).abs().max()
    tcos = torch.nn.functional.cosine_similarity(unpadded[:, None], unpadded[None], dim=-1)
    toff = tcos[~torch.eye(len(unpadded), dtype=torch.bool)]
    assert toff.max() < 0.999 and toff.mean() < 0.95, f"text embeddings too similar ({toff.max():.4f})"

    # ---- reference.json ------------------------------------------------------------
    ref = {
        "generator": "scripts/make_fixtures.py",
        "seed": seed,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
                     "tokenizers": tokenizers.__version__},
        "image_processor_class": type(proc).__name__,
        "models": {"f32": "tiny-clip", "vision_f16": "tiny-clip-vision-f16"},
        "preprocess": {"size": 224, "crop": 224, "mean": [float(v) for v in proc.image_mean],
                       "std": [float(v) for v in proc.image_std], "resample": "PIL bicubic",
                       "alpha": "composited onto opaque white (PIL alpha_composite)",
                       "exif_transpose": True},
        "images": images_json,
        "texts": texts_json,
        "padded_batch": {"ids": ids_b.tolist(), "attention_mask": mask_b.tolist(), "pad_id": PAD_ID},
    }
    (ref_dir / "reference.json").write_text(to_json(ref) + "\n", encoding="utf-8")

    # ---- summary -------------------------------------------------------------------
    log(f"\nimage processor: {type(proc).__module__}.{type(proc).__name__} (backend={proc.backend})")
    log(f"model: {sum(p.numel() for p in model.parameters())} params, "
        f"{len(sd_disk)} tensors; f16 vision-only: {len(f16_sd)} tensors")
    log(f"{'image':18} {'mode':5} {'upright':>9} {'resized':>9}  |emb|   |emb-emb16|/|emb|")
    for fname, mode, up, rs, e, e16 in image_info:
        log(f"{fname:18} {mode:5} {up[0]:4}x{up[1]:<4} {rs[0]:4}x{rs[1]:<4} {float(e.norm()):6.3f}  "
            f"{float((e - e16).norm() / e.norm()):.2e}")
    log(f"image cosine (off-diagonal): min {float(off.min()):.3f} max {float(off.max()):.3f}; "
        f"text cosine: min {float(toff.min()):.3f} max {float(toff.max()):.3f}")
    log(f"texts: {len(texts_json)}, token counts {[len(t['ids']) for t in texts_json]}")
    for d in (model_dir, f16_dir, img_dir, ref_dir):
        log(f"  {d.relative_to(out)}/: {dir_size(d) / 1e6:.2f} MB")
    log(f"total {dir_size(out) / 1e6:.2f} MB in {out}  ({time.time() - t0:.1f} s)")


def generate_vit_b32(out_dir: Path, shared_dir: Path, seed: int) -> None:
    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(real_config(shared_dir), seed)
    t1 = time.time()
    model.save_pretrained(out_dir)
    make_readable(out_dir / "model.safetensors")
    proc = make_image_processor(shared_dir)
    write_preprocessor_config(proc, out_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (shared_dir / name).exists():
            shutil.copyfile(shared_dir / name, out_dir / name)
    t2 = time.time()
    # smoke test: the directory loads as a normal HF checkpoint and produces finite outputs
    del model
    m = CLIPModel.from_pretrained(out_dir, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(out_dir))
    img = Image.fromarray(to_u8(scene(320, 240, np.random.default_rng(seed)), np.random.default_rng(seed)))
    with torch.no_grad():
        ie = m.get_image_features(pixel_values=proc(images=img, return_tensors="pt").pixel_values).pooler_output
        te = m.get_text_features(**tok(["a photo of a carton of milk"], return_tensors="pt")).pooler_output
    assert ie.shape == (1, 512) and te.shape == (1, 512)
    assert torch.isfinite(ie).all() and torch.isfinite(te).all()
    size = (out_dir / "model.safetensors").stat().st_size
    log(f"wrote {out_dir}: model.safetensors {size / 1e6:.1f} MB ({size} bytes), "
        f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f} M params; "
        f"init {t1 - t0:.1f} s, write {t2 - t1:.1f} s, smoke test {time.time() - t2:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture directory (default: %(default)s)")
    ap.add_argument("--shared-dir", type=Path, default=DEFAULT_SHARED,
                    help="folder with the real clip-vit-base-patch32 config.json and tokenizer files "
                         "(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed (default: %(default)s)")
    ap.add_argument("--vit-b32", type=Path, metavar="OUT_DIR", default=None,
                    help="instead of the fixtures, write a random-weight model with the real ViT-B/32 sizes "
                         "to OUT_DIR (not committed; for demos/benchmarks)")
    args = ap.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    shared = args.shared_dir.resolve()
    for name in ("config.json", "tokenizer.json", "vocab.json", "merges.txt"):
        if not (shared / name).is_file():
            ap.error(f"{shared / name} not found (use --shared-dir)")
    if args.vit_b32 is not None:
        generate_vit_b32(args.vit_b32.resolve(), shared, args.seed)
    else:
        generate_fixtures(args.out.resolve(), shared, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
