#!/usr/bin/env python3
"""Reference fixtures for the MobileCLIP (open_clip layout) and SigLIP 2 (Hugging Face
``SiglipModel`` layout) model families, written by open_clip, timm and transformers
themselves, so that the Rust side can be tested against them without Python.

Run once (``python3 scripts/make_model_fixtures.py``); the outputs under
``tests/fixtures/models/`` are committed. Deterministic for a given --seed and the
library versions in scripts/requirements-model-fixtures.txt.

What is written (paths relative to tests/fixtures/models/):

* ``mobileclip2-s0-narrow/`` and ``mobileclip-s1-narrow/`` -- folders as the hub has
  them for ``timm/MobileCLIP2-S0-OpenCLIP`` / ``apple/MobileCLIP-S1-OpenCLIP``:
  ``open_clip_config.json`` (``model_cfg`` + ``preprocess_cfg``) and
  ``open_clip_model.safetensors``, written by open_clip's own ``save_for_hf``. The
  architecture is the real one (timm FastViT-MCi image tower: MobileOne stem, RepMixer
  stages, SE patch embeddings, conditional positional encoding and attention in the
  last stage, final MobileOne conv, average pool, linear head; open_clip text
  transformer with ``no_causal_mask`` and argmax pooling), only narrower and shallower.
  timm cannot be told widths or depths through ``open_clip_config.json``, so the narrow
  image towers are registered with timm by this script under the names
  ``fastvit_mci0_narrow`` / ``fastvit_mci1_narrow`` (kwargs in the reference JSON);
  a loader should infer depths and widths from the tensors. No tokenizer files: the
  real CLIP tokenizer lives in the shared data folder; token ids are in the JSON.
* ``mobileclip-b-narrow/`` -- as ``apple/MobileCLIP-B-OpenCLIP`` (timm ``vit_base_mci_224``:
  convolutional stem, ViT with ``no_embed_class``, class-token pooling; open_clip's *causal*
  text tower), narrowed (width 128, 2 blocks, 2 heads) and registered with timm as
  ``vit_base_mci_224_narrow``.
* ``siglip-base-narrow/`` -- a SigLIP v1 folder as ``google/siglip-base-patch16-224`` has it:
  ``spiece.model`` (a SentencePiece Unigram model trained here as T5's is, since Google's cannot
  be downloaded here) and the slow ``SiglipTokenizer``'s ``tokenizer_config.json``, no
  ``tokenizer.json``; text references only (ids from ``SiglipTokenizer``, ``get_text_features``).
* ``siglip2-base-narrow/`` -- a ``SiglipModel`` folder as ``google/siglip2-base-patch16-224``
  has it (config.json, model.safetensors, preprocessor_config.json, tokenizer.json,
  tokenizer_config.json, tokenizer.model), narrow. Google's Gemma tokenizer cannot be
  downloaded here, so a small SentencePiece BPE model of the same kind (byte fallback,
  split digits, no normaliser, no dummy prefix, <pad>=0 <eos>=1 <bos>=2 <unk>=3
  <mask>=4) is trained on generated text and converted by transformers' own
  ``GemmaTokenizer`` (add_bos_token False, add_eos_token True, padding right).
* ``images/odd_crop.png`` -- one extra image (203x200) whose open_clip centre crop
  offset is 2 where a floor would give 1 (torchvision rounds, half to even).
* ``reference/<model>.json`` -- token ids, image and text embeddings (open_clip's
  ``encode_image`` / ``encode_text``; transformers' ``get_image_features`` /
  ``get_text_features``), preprocessing facts per image, and for MobileCLIP the
  BatchNorm calibration figures.
* ``reference/pixels/<pipeline>/<image>.png`` -- the exact preprocessed model input as
  8-bit RGB, losslessly (the script asserts every value is level/255 after undoing
  the normalisation).

Randomisation: every bias and every norm weight/bias is redrawn (init leaves them at
0/1, which hides loading bugs), FastViT's layer-scale gammas (init 1e-5, which makes
every block an identity) are set to O(0.3), and BatchNorm running statistics are set
from data by train-mode passes over synthetic photos (init leaves them at 0/1, and then
the input-dependent part of an image embedding is a tiny fraction of its length).

``--full NAME OUT_DIR`` writes a full-size random-weight folder instead (NAME one of
MobileCLIP2-S0, MobileCLIP-S1, MobileCLIP-S2, MobileCLIP-B, SigLIP2-base ...); not committed, for benchmarks and
"new user" trials.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import open_clip
import PIL
import safetensors
import safetensors.torch
import sentencepiece
import timm
import tokenizers
import torch
import torchvision
import transformers
from open_clip.push_to_hf_hub import save_for_hf
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image, ImageOps
from sentencepiece import sentencepiece_model_pb2
from timm.models import register_model
from timm.models.fastvit import RepConditionalPosEnc, _create_fastvit
from timm.models.vision_transformer_hybrid import ConvStem, _create_vision_transformer_hybrid
from transformers import (GemmaTokenizer, SiglipConfig, SiglipImageProcessor, SiglipImageProcessorPil, SiglipModel,
                          SiglipTokenizer)
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import PILImageResampling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (TEXT_TAIL, TEXTS_FIXED, dir_size, f32_list, log, long_text,  # noqa: E402
                           make_readable, scene, to_json, to_u8)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "models"
IMAGES_DIR = REPO_ROOT / "tests" / "fixtures" / "images"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}


def fixture_image_files() -> list[Path]:
    """The fixture photos the parity fixtures were made from: images only (not the script beside
    them), and not the 2048 px JPEGs of the photo memory tests, made later."""
    return sorted(p for p in IMAGES_DIR.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("large_"))
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "data" / "clip-vit-base-patch32"
DEFAULT_SEED = 20250611

EXTRA_TEXTS = ["Ben &amp; Jerry's Chunky Monkey", "<eos> is text here"]

# --------------------------------------------------------------------------------------
# Model definitions
# --------------------------------------------------------------------------------------

MCI_COMMON = dict(
    mlp_ratios=(3, 3, 3, 3),
    se_downsamples=(False, False, True, True),
    token_mixers=("repmixer", "repmixer", "repmixer", "attention"),
    lkc_use_act=True,
)
# Narrow FastViT-MCi towers. Widths double per stage (as in every MCi0-2) and keep what
# the architecture needs: last stage a multiple of 32 (attention head_dim is 32), SE
# widths (dim/4 in the patch embeddings, 2*dim/16 in final_conv) multiples of 8.
NARROW_MCI = {
    # like MCi0 (MobileCLIP2-S0): depths (2, 6, 10, 2) -> (1, 2, 3, 2); widths 64.. -> 16..
    "fastvit_mci0_narrow": dict(layers=(1, 2, 3, 2), embed_dims=(16, 32, 64, 128)),
    # like MCi1 (MobileCLIP-S1): depths (4, 12, 20, 4) -> (2, 3, 4, 1); widths 24.. (a
    # width that is not a power of two, as MCi2's 80 is not)
    "fastvit_mci1_narrow": dict(layers=(2, 3, 4, 1), embed_dims=(24, 48, 96, 192)),
}


def _mci_kwargs(name: str) -> dict:
    d = dict(MCI_COMMON, **NARROW_MCI[name])
    d["pos_embs"] = (None, None, None, partial(RepConditionalPosEnc, spatial_shape=(7, 7)))
    return d


# Narrow ViT-MCi (MobileCLIP-B's vit_base_mci_224: ConvStem 4x4/s4 + BN + GELU, 2x2/s2 + BN
# + GELU, 2x2/s2 with bias; ViT with no_embed_class, pre-norm, LayerNorm eps 1e-6), built as
# timm builds vit_base_mci_224 (vision_transformer_hybrid.py) with width 768 -> 128, depth
# 12 -> 2, heads 12 -> 2 (head width 64, as ViT-B's).
NARROW_VIT_MCI = {"vit_base_mci_224_narrow": dict(embed_dim=128, depth=2, num_heads=2)}


def _vit_mci_narrow(name: str, pretrained=False, **kwargs):
    width = NARROW_VIT_MCI[name]["embed_dim"]
    backbone = ConvStem(channels=(width // 4, width // 4, width), stride=(4, 2, 2), kernel_size=(4, 2, 2), padding=0,
                        in_chans=kwargs.get("in_chans", 3), act_layer=torch.nn.GELU)
    model_args = dict(NARROW_VIT_MCI[name], no_embed_class=True)
    return _create_vision_transformer_hybrid(name, backbone=backbone, embed_args=dict(proj=False),
                                             pretrained=pretrained, **dict(model_args, **kwargs))


def _register_narrow_mci() -> None:
    for name in NARROW_MCI:
        if name in timm.list_models(name):
            continue

        def factory(pretrained=False, _name=name, **kwargs):
            return _create_fastvit(_name, pretrained=pretrained, **dict(_mci_kwargs(_name), **kwargs))
        factory.__name__ = name
        register_model(factory)
    for name in NARROW_VIT_MCI:
        if name in timm.list_models(name):
            continue
        factory = partial(_vit_mci_narrow, name)
        factory.__name__ = name
        factory.__module__ = __name__
        register_model(factory)


# open_clip's pretrained tags for MobileCLIP(2)-S0/S1/S2/B (open_clip/pretrained.py, _mccfg)
MOBILECLIP_PREPROCESS = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "interpolation": "bilinear",
                         "resize_mode": "shortest"}
# the token embedding (49408 x width) is most of a fixture's size: widths 16 and 8
NARROW_TEXT = dict(context_length=77, vocab_size=49408, layers=2, no_causal_mask=True)
NARROW_EMBED_DIM = 32

OPENCLIP_FIXTURES = {
    "mobileclip2-s0-narrow": dict(like="MobileCLIP2-S0", hub="timm/MobileCLIP2-S0-OpenCLIP",
                                  timm_model_name="fastvit_mci0_narrow", text=dict(width=16, heads=2)),
    "mobileclip-s1-narrow": dict(like="MobileCLIP-S1", hub="apple/MobileCLIP-S1-OpenCLIP",
                                 timm_model_name="fastvit_mci1_narrow", text=dict(width=8, heads=2)),
    # causal text tower (no_causal_mask false), as MobileCLIP-B / MobileCLIP2-B
    "mobileclip-b-narrow": dict(like="MobileCLIP-B", hub="apple/MobileCLIP-B-OpenCLIP",
                                timm_model_name="vit_base_mci_224_narrow",
                                text=dict(width=8, heads=2, no_causal_mask=False)),
}
SIGLIP_FIXTURE = "siglip2-base-narrow"
SIGLIP_NARROW = dict(
    text=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2),
    vision=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2),
)
SIGLIP_MAX_LEN = 64
SIGLIP_TOKENIZER_VOCAB = 1000


def narrow_openclip_cfg(like: str, timm_model_name: str, text: dict) -> dict:
    """model_cfg as in open_clip's config of the model `like` (MobileCLIP2-S0.json ...), narrowed."""
    real = open_clip.get_model_config(like)
    cfg = json.loads(json.dumps(real))
    cfg["embed_dim"] = NARROW_EMBED_DIM
    cfg["vision_cfg"]["timm_model_name"] = timm_model_name
    cfg["text_cfg"].update(NARROW_TEXT, **text)
    return cfg


# --------------------------------------------------------------------------------------
# Randomisation
# --------------------------------------------------------------------------------------

NORM_TYPES = (torch.nn.LayerNorm, torch.nn.BatchNorm2d)


def perturb_(model: torch.nn.Module, seed: int) -> dict:
    """Redraw what init leaves constant, in sorted name order with a dedicated generator.

    * norm weights (LayerNorm, BatchNorm) 1 + N(0, 0.2), norm biases and every other
      bias N(0, 0.1)
    * FastViT layer-scale gammas (init 1e-5) 0.3 * (1 + N(0, 0.3))
    """
    g = torch.Generator().manual_seed(seed + 1)
    norm_w, norm_b = set(), set()
    for mname, mod in model.named_modules():
        if isinstance(mod, NORM_TYPES):
            norm_w.add(f"{mname}.weight")
            norm_b.add(f"{mname}.bias")
    params = dict(model.named_parameters())
    counts = {"norm_weight": 0, "bias": 0, "layer_scale": 0}
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if name in norm_w:
                kind, value = "norm_weight", lambda z: 1.0 + 0.2 * z
            elif name in norm_b or name.endswith("bias"):
                kind, value = "bias", lambda z: 0.1 * z
            elif name.endswith(".gamma"):
                kind, value = "layer_scale", lambda z: 0.3 * (1.0 + 0.3 * z)
            else:
                continue
            p.copy_(value(torch.randn(p.shape, generator=g, dtype=torch.float32)))
            counts[kind] += 1
    for name, p in model.named_parameters():
        if p.numel() > 1:
            assert float(p.detach().float().std()) > 0, f"{name} is constant"
    return counts


def calibrate_batchnorm_(visual: torch.nn.Module, batches: list[torch.Tensor]) -> int:
    """Running statistics from data: reset, cumulative average over train-mode passes."""
    bns = [m for m in visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    visual.train()
    with torch.no_grad():
        for x in batches:
            visual(x)
    visual.eval()
    for m in bns:
        m.momentum = 0.1
    return len(bns)


def calibration_images(preprocess, seed: int, n: int, batch: int) -> list[torch.Tensor]:
    """Synthetic photos (not the fixture images) of assorted sizes, preprocessed like real input."""
    rng = np.random.default_rng([seed, 777])
    xs = []
    for i in range(n):
        w, h = int(rng.integers(200, 480)), int(rng.integers(200, 480))
        r = np.random.default_rng([seed, 778, i])
        xs.append(preprocess(Image.fromarray(to_u8(scene(w, h, r), r))))
    return [torch.stack(xs[i:i + batch]) for i in range(0, n, batch)]


def embedding_spread(embs: torch.Tensor) -> dict:
    """Cosines between different images, and the input-dependent share of the length."""
    cos = torch.nn.functional.cosine_similarity(embs[:, None], embs[None], dim=-1)
    off = cos[~torch.eye(len(embs), dtype=torch.bool)]
    centred = embs - embs.mean(0, keepdim=True)
    ratio = centred.norm(dim=-1) / embs.norm(dim=-1)
    return {"cos_mean": round(float(off.mean()), 6), "cos_min": round(float(off.min()), 6),
            "cos_max": round(float(off.max()), 6), "centred_share_mean": float(f"{float(ratio.mean()):.3g}")}


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------

def extra_images(img_dir: Path, seed: int) -> list[Path]:
    img_dir.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng([seed, 31])
    path = img_dir / "odd_crop.png"
    Image.fromarray(to_u8(scene(203, 200, r), r)).save(path, optimize=True)
    return [path]


def fixture_images(out: Path, seed: int) -> list[Path]:
    files = fixture_image_files()
    assert files, f"no fixture images in {IMAGES_DIR} (run scripts/make_fixtures.py first)"
    return files + extra_images(out / "images", seed)


def open_upright(path: Path) -> tuple[Image.Image, str]:
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        return ImageOps.exif_transpose(im), mode


def save_levels_png(pixels: torch.Tensor, mean, std, path: Path) -> None:
    """Store a normalised (3, H, W) input as 8-bit RGB; assert nothing is lost."""
    mean = np.asarray(mean, np.float64).reshape(3, 1, 1)
    std = np.asarray(std, np.float64).reshape(3, 1, 1)
    levels = (pixels.double().numpy() * std + mean) * 255.0
    err = np.abs(levels - np.rint(levels)).max()
    assert err < 0.01, f"{path.name}: not invertible to 8-bit levels (max err {err})"
    assert levels.min() > -0.5 and levels.max() < 255.5
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(levels).astype(np.uint8).transpose(1, 2, 0), "RGB").save(path, optimize=True)
    back = (np.asarray(Image.open(path), np.float64).transpose(2, 0, 1) / 255.0 - mean) / std
    assert np.abs(back - pixels.double().numpy()).max() < 1e-5


def image_label(path: Path) -> str:
    """Path relative to tests/fixtures/ (the extra images live in models/images/)."""
    return f"images/{path.name}" if path.parent == IMAGES_DIR else f"models/images/{path.name}"


def stem_of(path: Path) -> str:
    return path.name.replace(".", "_")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict:
    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "open_clip": open_clip.__version__,
            "timm": timm.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "sentencepiece": sentencepiece.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "safetensors": safetensors.__version__}


def fixture_texts(seed: int) -> list[str]:
    return TEXTS_FIXED + [long_text(seed)] + TEXT_TAIL + EXTRA_TEXTS


# --------------------------------------------------------------------------------------
# MobileCLIP (open_clip)
# --------------------------------------------------------------------------------------

class _NoTokenizerFiles:
    """open_clip's save_for_hf also saves the tokenizer; the CLIP one is not copied here."""

    def save_pretrained(self, _dir) -> None:
        pass


def new_openclip_model(model_cfg: dict, seed: int):
    """A random model as open_clip builds it from a folder's open_clip_config.json."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "open_clip_config.json").write_text(
            json.dumps({"model_cfg": model_cfg, "preprocess_cfg": MOBILECLIP_PREPROCESS}), encoding="utf-8")
        torch.manual_seed(seed)
        model = open_clip.create_model(f"local-dir:{tmp}")
    return model.float().eval()


def write_openclip_folder(model, model_cfg: dict, out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    save_for_hf(model, _NoTokenizerFiles(), model_cfg, out_dir, safe_serialization=True)
    make_readable(out_dir / "open_clip_model.safetensors")


def spread_inputs(model_cfg: dict, images: list[Path], seed: int) -> torch.Tensor:
    """The fixture images as the model sees them, to measure the spread before/after calibration."""
    probe = new_openclip_model(model_cfg, seed)
    preprocess = image_transform_v2(PreprocessCfg(**probe.visual.preprocess_cfg), is_train=False)
    return torch.stack([preprocess(convert_to_rgb(open_upright(p)[0])) for p in images])


def build_mobileclip(model_cfg: dict, seed: int, n_calib: int, calib_batch: int, images_for_spread=None):
    """Random model, perturbed, BatchNorm calibrated; figures before/after when asked."""
    model = new_openclip_model(model_cfg, seed)
    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    spread = {}
    with torch.no_grad():
        if images_for_spread is not None:
            spread["default_init"] = embedding_spread(model.encode_image(images_for_spread))
        counts = perturb_(model, seed)
        if images_for_spread is not None:
            spread["perturbed_bn_uncalibrated"] = embedding_spread(model.encode_image(images_for_spread))
    n_bn = calibrate_batchnorm_(model.visual, calibration_images(preprocess, seed, n_calib, calib_batch))
    model.eval()
    if images_for_spread is not None:
        with torch.no_grad():
            spread["perturbed_bn_calibrated"] = embedding_spread(model.encode_image(images_for_spread))
    return model, {"perturbed": counts, "batchnorm_layers": n_bn, "calibration_images": n_calib,
                   "calibration_batch": calib_batch, "spread_over_fixture_images": spread}


def openclip_crop_facts(size_wh: tuple[int, int], target: int) -> dict:
    """Resize and crop geometry of open_clip's eval transform (torchvision on PIL)."""
    w, h = size_wh
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = target, int(target * long / short)
    rw, rh = (new_short, new_long) if w <= h else (new_long, new_short)
    return {"resized_size": [rw, rh], "resize_skipped": (rw, rh) == (w, h),
            "crop_left_top": [int(round((rw - target) / 2.0)), int(round((rh - target) / 2.0))],
            "crop_left_top_if_floored": [(rw - target) // 2, (rh - target) // 2]}


def check_geometry(rgb: Image.Image, geometry: dict, size: int, interpolation: str, x: torch.Tensor,
                   mean, std) -> None:
    """The recorded resize/crop facts reproduce open_clip's input with plain Pillow calls."""
    resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[interpolation]
    rw, rh = geometry["resized_size"]
    im = rgb if geometry["resize_skipped"] else rgb.resize((rw, rh), resample)
    left, top = geometry["crop_left_top"]
    levels = np.asarray(im.crop((left, top, left + size, top + size)), np.float64).transpose(2, 0, 1)
    want = (x.double().numpy() * np.reshape(std, (3, 1, 1)) + np.reshape(mean, (3, 1, 1))) * 255.0
    assert np.abs(levels - want).max() < 1e-3, geometry


def openclip_tokens(tokenizer, texts: list[str], shared_dir: Path | None) -> list[dict]:
    toks = tokenizer(texts)
    assert toks.shape == (len(texts), 77) and toks.dtype == torch.long
    hf = None
    if shared_dir is not None and (shared_dir / "tokenizer.json").is_file():
        hf = tokenizers.Tokenizer.from_file(str(shared_dir / "tokenizer.json"))
        hf.enable_truncation(77)
    out = []
    for text, row in zip(texts, toks.tolist()):
        n = row.index(tokenizer.eot_token_id) + 1
        assert all(v == 0 for v in row[n:]), "open_clip pads with 0"
        entry = {"text": text, "ids": row[:n]}
        if hf is not None:
            entry["same_ids_as_hf_clip_tokenizer_json"] = hf.encode(text).ids == row[:n]
        out.append(entry)
    return out


def timm_kwargs_facts(timm_model_name: str) -> dict:
    if timm_model_name in NARROW_VIT_MCI:
        return {"timm_model_kwargs": NARROW_VIT_MCI[timm_model_name],
                "timm_model_kwargs_fixed": "as timm's vit_base_mci_224: ConvStem channels (w/4, w/4, w), kernels "
                                           "(4, 2, 2), strides (4, 2, 2), GELU; no_embed_class; HybridEmbed proj=False"}
    return {"timm_model_kwargs": {k: list(v) for k, v in NARROW_MCI[timm_model_name].items()},
            "timm_model_kwargs_fixed": {**{k: list(v) for k, v in MCI_COMMON.items() if k != "lkc_use_act"},
                                        "lkc_use_act": True, "pos_embs": "RepConditionalPosEnc 7x7 in stage 4"}}


def openclip_references(name: str, spec: dict, model_dir: Path, ref_dir: Path, images: list[Path],
                        texts: list[str], shared_dir: Path | None, build_info: dict, seed: int) -> dict:
    # Reload from the folder exactly as a user would, with the transform open_clip builds from it.
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{model_dir}")
    model = model.float().eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    pp = dict(model.visual.preprocess_cfg)
    size = pp["size"][0] if isinstance(pp["size"], (tuple, list)) else pp["size"]
    pipeline = f"openclip-{size}-{pp['interpolation']}-{pp['resize_mode']}-mean{int(pp['mean'][0])}-std{int(pp['std'][0])}"
    pix_dir = ref_dir / "pixels" / pipeline
    images_json = []
    embs = []
    with torch.no_grad():
        for path in images:
            upright, mode = open_upright(path)
            rgb = convert_to_rgb(upright)  # transformers' conversion: alpha onto white, P/L/CMYK via convert
            x = preprocess(rgb)
            assert x.shape == (3, size, size)
            geometry = openclip_crop_facts(upright.size, size)
            check_geometry(rgb, geometry, size, pp["interpolation"], x, pp["mean"], pp["std"])
            png = pix_dir / f"{stem_of(path)}.png"
            save_levels_png(x, pp["mean"], pp["std"], png)
            emb = model.encode_image(x[None])[0]
            embs.append(emb)
            entry = {"file": image_label(path), "pil_mode": mode,
                     "upright_size": list(upright.size), **geometry,
                     "pixels": str(png.relative_to(ref_dir)), "embedding": f32_list(emb)}
            # open_clip itself resizes the PIL image in its own mode and converts to RGB only
            # after cropping: P is resized NEAREST, RGBA premultiplied and then alpha dropped.
            x_native = preprocess(upright)
            if not torch.equal(x_native, x):
                png_n = pix_dir / f"{stem_of(path)}.native_mode.png"
                save_levels_png(x_native, pp["mean"], pp["std"], png_n)
                diff = (x_native - x).abs() * 255
                entry["open_clip_native_mode"] = {
                    "pixels": str(png_n.relative_to(ref_dir)),
                    "max_level_diff_vs_rgb_first": int(round(float(diff.max()))),
                    "embedding": f32_list(model.encode_image(x_native[None])[0])}
            images_json.append(entry)

    tokens = openclip_tokens(tokenizer, texts, shared_dir)
    with torch.no_grad():
        all_ids = tokenizer(texts)
        feats = model.encode_text(all_ids)
        for i, t in enumerate(tokens):
            one = model.encode_text(all_ids[i:i + 1])[0]
            assert torch.allclose(one, feats[i], atol=1e-5)
            t["embedding"] = f32_list(one)
        # no_causal_mask: every position, padding included, reaches the pooled token,
        # so the context length matters (candle's example pads to the batch's longest text only).
        # With the causal mask (open_clip's is fixed at 77 x 77) padding cannot reach it: not measured.
        pad_effect = None
        if model.text.attn_mask is None:
            short = tokenizer(["a photo of a carton of milk"])
            n = int((short[0] != 0).sum())
            trimmed = model.encode_text(short[:, :n])[0]
            full = model.encode_text(short)[0]
            pad_effect = float(f"{float(1 - torch.nn.functional.cosine_similarity(trimmed, full, dim=0)):.3g}")

    embs_t = torch.stack(embs)
    spread = embedding_spread(embs_t)
    assert spread["cos_max"] < 0.999 and spread["centred_share_mean"] > 0.05, spread
    tspread = embedding_spread(feats)
    # short texts are mostly padding (77 positions, all attended): only guard against collapse
    assert tspread["cos_mean"] < 0.95 and tspread["centred_share_mean"] > 0.05, tspread
    safetensors_file = model_dir / "open_clip_model.safetensors"
    sd = safetensors.torch.load_file(str(safetensors_file))
    return {
        "generator": "scripts/make_model_fixtures.py", "seed": seed, "versions": versions(),
        "model": {"folder": f"models/{name}", "family": "open_clip CustomTextCLIP + timm " + (
                      "ViT-MCi" if spec["timm_model_name"] in NARROW_VIT_MCI else "FastViT-MCi"),
                  "like": spec["like"], "hub_layout_of": spec["hub"], "timm_model_name": spec["timm_model_name"],
                  **timm_kwargs_facts(spec["timm_model_name"]),
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "tensors": len(sd), "safetensors_sha256": sha256(safetensors_file)},
        "build": build_info,
        "preprocess": {"pipeline": pipeline, "cfg": {k: list(v) if isinstance(v, tuple) else v for k, v in pp.items()},
                       "steps": "exif_transpose; convert to RGB (alpha onto white); torchvision Resize(size) on PIL "
                                "(Pillow resize, shortest edge = size, long = int(size * long / short), skipped if "
                                "already that size); CenterCrop(size) at (int(round((w-size)/2)), "
                                "int(round((h-size)/2))); ToTensor (level/255); Normalize(mean, std)",
                       "pixel_value": "level / 255 (mean 0, std 1)"},
        "images": images_json,
        "image_embedding_spread": spread,
        "text": {"tokenizer": "open_clip SimpleTokenizer (CLIP BPE), context 77, padded with 0, EOT at the end "
                              "of a truncated text; pooled at argmax(ids) = EOT",
                 "context_length": 77, "pad_id": 0, "sot_id": tokenizer.sot_token_id,
                 "eot_id": tokenizer.eot_token_id,
                 "no_causal_mask": bool(model.text.attn_mask is None),
                 "cosine_distance_if_padding_dropped": pad_effect},
        "texts": tokens,
        "text_embedding_spread": tspread,
    }


def generate_openclip(name: str, spec: dict, out: Path, images: list[Path], texts: list[str],
                      shared_dir: Path | None, seed: int) -> dict:
    model_cfg = narrow_openclip_cfg(spec["like"], spec["timm_model_name"], spec["text"])
    model, info = build_mobileclip(model_cfg, seed, n_calib=32, calib_batch=8,
                                   images_for_spread=spread_inputs(model_cfg, images, seed))
    model_dir = out / name
    write_openclip_folder(model, model_cfg, model_dir)
    ref = openclip_references(name, spec, model_dir, out / "reference", images, texts, shared_dir, info, seed)
    (out / "reference" / f"{name}.json").write_text(to_json(ref) + "\n", encoding="utf-8")
    return ref


# --------------------------------------------------------------------------------------
# SigLIP 2 (transformers)
# --------------------------------------------------------------------------------------

def tokenizer_corpus(seed: int) -> str:
    """Generated text in the spirit of product names and captions (several languages)."""
    words = (long_text(seed, 400) + " a an the photo picture image of on in with and for this is "
             "red green blue white black yellow small large new best price kr € 100% "
             "Crème fraîche Ärtsoppa 日本語 naïve café mjölk smör bröd Äpple Öl Straße Ελληνικά русский "
             "Hello world test ok off MiXeD CaSe").split()
    rnd = random.Random(seed)
    lines = []
    for _ in range(4000):
        n = rnd.randint(2, 14)
        line = " ".join(rnd.choice(words) for _ in range(n))
        if rnd.random() < 0.3:
            line = line.capitalize()
        if rnd.random() < 0.2:
            line += rnd.choice([".", "!", "?", ",", " -", " (new)", " #1"])
        lines.append(line)
    return "\n".join(lines) + "\n"


def train_spm(dir_: Path, seed: int, name: str, **trainer) -> sentencepiece_model_pb2.ModelProto:
    """A SentencePiece model trained on tokenizer_corpus(seed) as `dir_/name.model`, written without
    where it was trained (a temporary path), for a reproducible file; its settings returned."""
    dir_.mkdir(parents=True, exist_ok=True)
    corpus = dir_ / "corpus.txt"
    corpus.write_text(tokenizer_corpus(seed), encoding="utf-8")
    prefix = dir_ / name
    sentencepiece.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(prefix), num_threads=1,
                                             shuffle_input_sentence=False, minloglevel=2, **trainer)
    model_file = prefix.with_suffix(".model")
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    proto.trainer_spec.ClearField("input")
    proto.trainer_spec.model_prefix = name
    model_file.write_bytes(proto.SerializeToString())
    return proto


def train_gemma_like_tokenizer(dir_: Path, seed: int) -> Path:
    """SentencePiece BPE trained like Gemma's (byte fallback, split digits, identity normaliser)."""
    train_spm(dir_, seed, "tokenizer", model_type="bpe", vocab_size=SIGLIP_TOKENIZER_VOCAB,
              byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
              remove_extra_whitespaces=False, normalization_rule_name="identity", add_dummy_prefix=False,
              pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
              unk_piece="<unk>", user_defined_symbols=["<mask>"], character_coverage=1.0)
    return dir_ / "tokenizer.model"


def siglip_tokenizer(spm_model: Path, tmp: Path) -> GemmaTokenizer:
    src = tmp / "spm"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spm_model, src / "tokenizer.model")
    # as google/siglip2-base-patch16-224's tokenizer_config.json: Gemma tokenizer, EOS
    # appended, no BOS, <pad> on the right, no attention mask
    tok = GemmaTokenizer.from_pretrained(str(src), add_bos_token=False, add_eos_token=True, padding_side="right",
                                         model_input_names=["input_ids"])
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    return tok


def siglip_config(vocab_size: int, narrow: bool, vision_shape: tuple[int, int] = (224, 16)) -> SiglipConfig:
    text = dict(vocab_size=vocab_size, max_position_embeddings=SIGLIP_MAX_LEN, hidden_act="gelu_pytorch_tanh",
                layer_norm_eps=1e-6, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision = dict(image_size=vision_shape[0], patch_size=vision_shape[1], hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    if narrow:
        text.update(SIGLIP_NARROW["text"])
        vision.update(SIGLIP_NARROW["vision"])
    return SiglipConfig(text_config=text, vision_config=vision)


def siglip_image_processor(size: int = 224) -> SiglipImageProcessorPil:
    """As google/siglip2-base-patch16-224's preprocessor_config.json (PIL backend, explicitly)."""
    proc = SiglipImageProcessorPil(do_resize=True, size={"height": size, "width": size},
                                   resample=PILImageResampling.BICUBIC, do_rescale=True, rescale_factor=1 / 255,
                                   do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                                   do_convert_rgb=True)
    assert proc.backend == "pil"
    return proc


def build_siglip(out_dir: Path, spm_model: Path, narrow: bool, seed: int,
                 vision_shape: tuple[int, int] = (224, 16)) -> None:
    """A random SiglipModel folder; `vision_shape` is (image size, patch size)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok = siglip_tokenizer(spm_model, Path(tmp))
        vocab = SIGLIP_TOKENIZER_VOCAB if narrow else 256000
        torch.manual_seed(seed)
        model = SiglipModel(siglip_config(vocab, narrow, vision_shape)).float().eval()
        perturb_(model, seed)
        model.save_pretrained(out_dir)
        make_readable(out_dir / "model.safetensors")
        siglip_image_processor(vision_shape[0]).save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    shutil.copyfile(spm_model, out_dir / "tokenizer.model")
    # transformers records the temporary source path; it is meaningless in the fixture
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.pop("vocab_file", None)
    cfg.pop("is_local", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def siglip_references(name: str, model_dir: Path, ref_dir: Path, images: list[Path], texts: list[str],
                      seed: int) -> dict:
    model = SiglipModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    assert type(tok).__name__ == "GemmaTokenizer" and tok.padding_side == "right", (type(tok), tok.padding_side)
    proc = transformers.AutoImageProcessor.from_pretrained(str(model_dir), backend="pil")
    assert type(proc).__name__ == "SiglipImageProcessorPil", type(proc)
    fast = SiglipImageProcessor.from_pretrained(str(model_dir))  # transformers 5's default (torchvision) backend
    raw = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    spm = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "tokenizer.model"))
    mean, std = proc.image_mean, proc.image_std
    pix_dir = ref_dir / "pixels" / "siglip-224-bicubic-squash-mean0.5-std0.5"
    images_json, embs = [], []
    with torch.no_grad():
        for path in images:
            upright, mode = open_upright(path)
            pv = proc(images=upright, return_tensors="pt").pixel_values
            assert pv.shape == (1, 3, 224, 224)
            png = pix_dir / f"{stem_of(path)}.png"
            save_levels_png(pv[0], mean, std, png)
            out = model.get_image_features(pixel_values=pv)
            emb = (out.pooler_output if not isinstance(out, torch.Tensor) else out)[0]
            embs.append(emb)
            tv = fast(images=upright, return_tensors="pt").pixel_values
            tv_diff = ((tv - pv).abs() * 0.5 * 255)
            images_json.append({
                "file": image_label(path), "pil_mode": mode,
                "upright_size": list(upright.size), "pixels": str(png.relative_to(ref_dir)),
                "embedding": f32_list(emb),
                "torchvision_backend_vs_pil": {"max_level_diff": round(float(tv_diff.max()), 3),
                                               "share_over_1_level": round(float((tv_diff > 1).double().mean()), 5)}})
    texts_json = []
    feats = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, padding="max_length", max_length=SIGLIP_MAX_LEN, truncation=True)
            ids = list(enc["input_ids"])
            assert set(enc) == {"input_ids"} and len(ids) == SIGLIP_MAX_LEN
            unpadded = raw.encode(text).ids
            n = min(len(unpadded), SIGLIP_MAX_LEN)
            same_raw = unpadded[:n - 1] + [1] == ids[:n] and all(v == 0 for v in ids[n:])
            same_spm = spm.encode(text)[:SIGLIP_MAX_LEN - 1] + [1] == ids[:n]
            out = model.get_text_features(input_ids=torch.tensor([ids]))
            feat = (out.pooler_output if not isinstance(out, torch.Tensor) else out)[0]
            feats.append(feat)
            texts_json.append({"text": text, "ids": ids, "unpadded_length": n,
                               "same_ids_as_tokenizer_json": same_raw, "same_ids_as_sentencepiece": same_spm,
                               "embedding": f32_list(feat)})
    embs_t, feats_t = torch.stack(embs), torch.stack(feats)
    spread, tspread = embedding_spread(embs_t), embedding_spread(feats_t)
    assert spread["cos_max"] < 0.999 and spread["centred_share_mean"] > 0.05, spread
    assert tspread["cos_mean"] < 0.95 and tspread["centred_share_mean"] > 0.05, tspread
    sd = safetensors.torch.load_file(str(model_dir / "model.safetensors"))
    return {
        "generator": "scripts/make_model_fixtures.py", "seed": seed, "versions": versions(),
        "model": {"folder": f"models/{name}", "family": "transformers SiglipModel (model_type siglip)",
                  "like": "google/siglip2-base-patch16-224", "config": json.loads(model.config.to_json_string()),
                  "parameters": sum(p.numel() for p in model.parameters()), "tensors": len(sd),
                  "safetensors_sha256": sha256(model_dir / "model.safetensors")},
        "preprocess": {"pipeline": "siglip-224-bicubic-squash-mean0.5-std0.5",
                       "processor": "SiglipImageProcessorPil (transformers' PIL backend, the slow processor)",
                       "steps": "exif_transpose; convert to RGB (alpha onto white); Pillow resize to 224x224 "
                                "BICUBIC (aspect ratio not kept, no crop); level/255; (x - 0.5) / 0.5",
                       "pixel_value": "(level / 255 - 0.5) / 0.5"},
        "images": images_json,
        "image_embedding_spread": spread,
        "text": {"tokenizer": "GemmaTokenizer from tokenizer.json (trained stand-in, see tokenizer.model); "
                              "no lower-casing; <eos> appended; truncation to 64 keeps the <eos>; padded "
                              "on the right with <pad>=0 to 64; input_ids only (no attention mask); pooled "
                              "at the last position (a pad token for short texts)",
                 "max_length": SIGLIP_MAX_LEN, "pad_id": 0, "eos_id": 1, "padding_side": "right",
                 "vocab_size": len(tok)},
        "texts": texts_json,
        "text_embedding_spread": tspread,
    }


# --------------------------------------------------------------------------------------
# SigLIP v1 text tower (transformers' slow SiglipTokenizer from spiece.model)
# --------------------------------------------------------------------------------------

SIGLIP1_FIXTURE = "siglip-base-narrow"
# as many pieces as a Unigram model can learn from tokenizer_corpus()
SIGLIP1_TOKENIZER_VOCAB = 300
# Texts for the canonicalisation SiglipTokenizer does (lower-case, ASCII punctuation removed,
# whitespace runs collapsed, stripped) and SentencePiece's own normaliser (NFKC).
SIGLIP1_EXTRA_TEXTS = [
    "UPPER lower MiXeD", "tab\tnew\nline\r\nend", "  leading and trailing  ", "!!!", "...,;:", "a.b,c!d?e",
    "e-mail: x@y.z (100%)", "ﬁne ｆｕｌｌｗｉｄｔｈ ①②③", "Ünïcödé ÀÉÎÕÜ ß ǅ", "Σίσυφος ΟΔΥΣΣΕΥΣ", "日本語のテキスト",
    "emoji 🍋🥛 end", "▁meta▁symbol", "</s> literal eos", "<unk> and <pad>", "x" * 300,
    " ".join(["word"] * 80), "price 1,299.00 kr", "non\u00a0breaking\u2003space", "zero\u200bwidth",
]


def train_t5_like_tokenizer(dir_: Path, seed: int) -> Path:
    """SentencePiece Unigram trained as T5's spiece.model (SigLIP v1's) is: the default nmt_nfkc
    normaliser, a dummy prefix, extra whitespace removed, <pad>=0 </s>=1 <unk>=2, no BOS."""
    proto = train_spm(dir_, seed, "spiece", model_type="unigram", vocab_size=SIGLIP1_TOKENIZER_VOCAB,
                      pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
                      unk_piece="<unk>", character_coverage=0.9995)
    assert proto.normalizer_spec.name == "nmt_nfkc" and proto.normalizer_spec.add_dummy_prefix
    return dir_ / "spiece.model"


def build_siglip1(out_dir: Path, spm_model: Path, seed: int) -> None:
    """A random narrow SiglipModel folder as google/siglip-base-patch16-224 has it: spiece.model
    and the slow tokenizer's config files, no tokenizer.json."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    tok = SiglipTokenizer(vocab_file=str(spm_model))
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.model_max_length) == (1, 1, 2, 64)
    cfg = siglip_config(SIGLIP1_TOKENIZER_VOCAB, narrow=True)
    # transformers' SiglipTextConfig defaults, which Google's v1 config keeps (ids are not used by the model)
    cfg.text_config.pad_token_id, cfg.text_config.bos_token_id, cfg.text_config.eos_token_id = 1, 49406, 49407
    torch.manual_seed(seed + 5)
    model = SiglipModel(cfg).float().eval()
    perturb_(model, seed + 5)
    model.save_pretrained(out_dir)
    make_readable(out_dir / "model.safetensors")
    siglip_image_processor().save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    assert not (out_dir / "tokenizer.json").exists()
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.pop("vocab_file", None)
    cfg.pop("is_local", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def siglip1_references(model_dir: Path, texts: list[str], seed: int) -> dict:
    model = SiglipModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    assert type(tok).__name__ == "SiglipTokenizer", type(tok)
    spm = sentencepiece.SentencePieceProcessor(model_file=str(model_dir / "spiece.model"))
    texts_json, feats = [], []
    with torch.no_grad():
        for text in texts:
            ids = list(tok(text, padding="max_length", max_length=SIGLIP_MAX_LEN, truncation=True)["input_ids"])
            assert len(ids) == SIGLIP_MAX_LEN
            # the input ids alone, as the other SigLIP references (candle's text tower takes no mask)
            out = model.get_text_features(input_ids=torch.tensor([ids]))
            feat = (out.pooler_output if not isinstance(out, torch.Tensor) else out)[0]
            feats.append(feat)
            canonical = tok.canonicalize_text(text)
            texts_json.append({"text": text, "ids": ids, "canonical": canonical,
                               "same_ids_as_sentencepiece_of_canonical":
                                   spm.encode(canonical)[:SIGLIP_MAX_LEN - 1] + [1] == [i for i in ids if i != 1][:SIGLIP_MAX_LEN - 1] + [1],
                               "embedding": f32_list(feat)})
    tspread = embedding_spread(torch.stack(feats))
    assert tspread["cos_mean"] < 0.95 and tspread["centred_share_mean"] > 0.05, tspread
    return {
        "generator": "scripts/make_model_fixtures.py", "seed": seed, "versions": versions(),
        "model": {"folder": f"models/{SIGLIP1_FIXTURE}", "family": "transformers SiglipModel (model_type siglip)",
                  "like": "google/siglip-base-patch16-224", "config": json.loads(model.config.to_json_string()),
                  "parameters": sum(p.numel() for p in model.parameters()),
                  "safetensors_sha256": sha256(model_dir / "model.safetensors"),
                  "spiece_model_sha256": sha256(model_dir / "spiece.model")},
        "text": {"tokenizer": "transformers' SiglipTokenizer (slow, sentencepiece) from spiece.model, a SentencePiece "
                              "Unigram model trained here as T5's is (Google's cannot be downloaded here); called as "
                              "the model card says: padding='max_length', max_length=64, truncation=True; input_ids "
                              "only to get_text_features (no attention mask)",
                 "max_length": SIGLIP_MAX_LEN, "pad_id": tok.pad_token_id, "eos_id": tok.eos_token_id,
                 "vocab_size": len(tok), "do_lower_case": tok.do_lower_case},
        "texts": texts_json,
        "text_embedding_spread": tspread,
    }


def generate_siglip1(out: Path, texts: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spm_model = train_t5_like_tokenizer(Path(tmp) / "train", seed)
        build_siglip1(out / SIGLIP1_FIXTURE, spm_model, seed)
    ref = siglip1_references(out / SIGLIP1_FIXTURE, texts + SIGLIP1_EXTRA_TEXTS, seed)
    (out / "reference" / f"{SIGLIP1_FIXTURE}.json").write_text(to_json(ref) + "\n", encoding="utf-8")
    return ref


def generate_siglip(out: Path, images: list[Path], texts: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        spm_model = train_gemma_like_tokenizer(Path(tmp) / "train", seed)
        build_siglip(out / SIGLIP_FIXTURE, spm_model, narrow=True, seed=seed)
    ref = siglip_references(SIGLIP_FIXTURE, out / SIGLIP_FIXTURE, out / "reference", images, texts, seed)
    (out / "reference" / f"{SIGLIP_FIXTURE}.json").write_text(to_json(ref) + "\n", encoding="utf-8")
    return ref


# --------------------------------------------------------------------------------------
# Main modes
# --------------------------------------------------------------------------------------

def summarise(name: str, ref: dict) -> None:
    log(f"\n{name}: {ref['model']['parameters']} params, {ref['model']['tensors']} tensors")
    if "build" in ref:
        for k, v in ref["build"]["spread_over_fixture_images"].items():
            log(f"  image spread {k:27} {v}")
    log(f"  image spread (reference)          {ref['image_embedding_spread']}")
    log(f"  text spread                       {ref['text_embedding_spread']}")
    for t in ref["texts"]:
        flags = {k: v for k, v in t.items() if k.startswith("same_")}
        if not all(flags.values()):
            log(f"  ids differ for {t['text'][:40]!r}: {flags}")
    for im in ref["images"]:
        extra = im.get("open_clip_native_mode") or im.get("torchvision_backend_vs_pil")
        if extra:
            log(f"  {im['file']:28} {({k: v for k, v in extra.items() if k != 'embedding'})}")


def generate_fixtures(out: Path, shared_dir: Path | None, seed: int, only: list[str] | None = None) -> None:
    """Every fixture, or those named in `only` (the others' files are left as they are)."""
    t0 = time.time()
    torch.set_num_threads(1)  # bit-stable reductions across machines
    (out / "reference").mkdir(parents=True, exist_ok=True)
    if only is None and (out / "reference" / "pixels").exists():
        shutil.rmtree(out / "reference" / "pixels")
    images = fixture_images(out, seed)
    texts = fixture_texts(seed)
    for name, spec in OPENCLIP_FIXTURES.items():
        if only is None or name in only:
            summarise(name, generate_openclip(name, spec, out, images, texts, shared_dir, seed))
    if only is None or SIGLIP_FIXTURE in only:
        summarise(SIGLIP_FIXTURE, generate_siglip(out, images, texts, seed))
    if only is None or SIGLIP1_FIXTURE in only:
        ref = generate_siglip1(out, texts, seed)
        log(f"\n{SIGLIP1_FIXTURE}: {ref['model']['parameters']} params; text spread {ref['text_embedding_spread']}")
    log("")
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        log(f"  {d.relative_to(out)}/: {dir_size(d) / 1e6:.2f} MB")
    log(f"total {dir_size(out) / 1e6:.2f} MB in {out}  ({time.time() - t0:.1f} s)")


# Full-size random folders (--full): open_clip model names, and SigLIP2 base at (image size, patch).
SIGLIP2_FULL = {"SigLIP2-base": (224, 16), "SigLIP2-base-patch32-256": (256, 32)}
FULL_NAMES = ("MobileCLIP2-S0", "MobileCLIP-S1", "MobileCLIP-S2", "MobileCLIP-B", *SIGLIP2_FULL)


def generate_full(name: str, out_dir: Path, seed: int) -> None:
    t0 = time.time()
    if name in SIGLIP2_FULL:
        with tempfile.TemporaryDirectory() as tmp:
            spm_model = train_gemma_like_tokenizer(Path(tmp) / "train", seed)
            build_siglip(out_dir, spm_model, narrow=False, seed=seed, vision_shape=SIGLIP2_FULL[name])
        model = SiglipModel.from_pretrained(out_dir, dtype=torch.float32).eval()
        n = sum(p.numel() for p in model.parameters())
    else:
        model_cfg = open_clip.get_model_config(name)
        images = fixture_image_files()
        model, info = build_mobileclip(model_cfg, seed, n_calib=16, calib_batch=8,
                                       images_for_spread=spread_inputs(model_cfg, images, seed))
        write_openclip_folder(model, model_cfg, out_dir)
        for k, v in info["spread_over_fixture_images"].items():
            log(f"  image spread over {len(images)} fixture images, {k:27} {v}")
        model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out_dir}")
        n = sum(p.numel() for p in model.parameters())
    log(f"wrote {out_dir}: {n / 1e6:.2f} M params, {dir_size(out_dir) / 1e6:.1f} MB "
        f"({time.time() - t0:.1f} s); random weights, rankings are meaningless")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", nargs=2, metavar=("NAME", "OUT_DIR"), default=None,
                    help=f"instead, write a full-size random-weight folder; NAME one of {', '.join(FULL_NAMES)}")
    ap.add_argument("--only", nargs="+", metavar="FIXTURE", default=None,
                    help="write only these fixtures (folder names under --out), leaving the others")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture directory (default: %(default)s)")
    ap.add_argument("--shared-dir", type=Path, default=DEFAULT_SHARED,
                    help="real clip-vit-base-patch32 folder, to compare token ids with its tokenizer.json "
                         "(optional; default: %(default)s)")
    args = ap.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    logging.getLogger().setLevel(logging.ERROR)
    _register_narrow_mci()
    if args.full is not None:
        name, out_dir = args.full
        if name not in FULL_NAMES:
            ap.error(f"--full NAME must be one of {', '.join(FULL_NAMES)}")
        generate_full(name, Path(out_dir).resolve(), args.seed)
        return 0
    shared = args.shared_dir.resolve()
    if not (shared / "tokenizer.json").is_file():
        log(f"note: {shared / 'tokenizer.json'} not found; CLIP token ids are not cross-checked")
        shared = None
    known = [*OPENCLIP_FIXTURES, SIGLIP_FIXTURE, SIGLIP1_FIXTURE]
    if args.only is not None and not set(args.only) <= set(known):
        ap.error(f"--only takes fixture names among {', '.join(known)}")
    generate_fixtures(args.out.resolve(), shared, args.seed, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
