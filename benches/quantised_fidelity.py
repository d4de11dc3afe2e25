#!/usr/bin/env python3
"""How faithful an 8-bit vision tower is to f32: clipmatch's int8 (int8 weights per output channel,
12-bit activations per row, exact integer sums) and onnxruntime's dynamic int8 (`quantize_dynamic`,
as transformers.js ships), on the same random-weight CLIP, against transformers' f32 features.

Inputs: the grocery phone photos (recursive *.jpg), and the catalog's *_Iconic.jpg images.
  reference    transformers `CLIPModel.get_image_features`, f32, pixels from the PIL CLIPImageProcessor
  ORT int8     onnxruntime (CPU) on vision_int8.onnx, the same pixel tensors as the reference
  ours int8    `clipmatch embed` on a folder whose model.safetensors is our int8 export
  ours f32     `clipmatch embed` on a folder whose model.safetensors is the f32 vision tower
clipmatch decodes and preprocesses in Rust (within a few 8-bit levels of PIL), so "ours int8 vs
ours f32" isolates quantisation, as "ORT int8 vs transformers f32" does for onnxruntime.

Metrics per engine against its reference, over the photos: cosine (mean, min); centred cosine
(the mean reference embedding over all photos subtracted from both first: random-weight CLIP maps
every image to nearly one direction, so plain cosine hides errors); and ranking each photo against
the catalog embedded by transformers in f32 (cosine): top-1 agreement, top-5 agreement (the same
five items in the same order) and the mean overlap of the top-5 sets.

    cargo build --release
    cargo run --release --example export_vision -- models/clip-b32-random int8 \
        models/clip-b32-random/onnx/vision_int8.safetensors
    python3 benches/int8_fidelity.py --model models/clip-b32-random
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GROCERY = ROOT.parent / "shared/data/grocery-packages"


def default_exe():
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release/clipmatch"


def transformers_f32(model_dir, paths, batch=16):
    """f32 reference features and the pixel tensors they were computed from."""
    import torch
    from PIL import Image, ImageOps
    from transformers import CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    pixels, feats = [], []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            images = [ImageOps.exif_transpose(Image.open(p)) for p in paths[i:i + batch]]
            px = processor(images=images, return_tensors="pt").pixel_values
            out = model.get_image_features(pixel_values=px)
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            pixels.append(px.numpy())
            feats.append(out.numpy())
    return np.concatenate(feats), np.concatenate(pixels)


def ort_int8(onnx_path, pixels, batch=16):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"pixel_values": pixels[i:i + batch]})[0]
                           for i in range(0, len(pixels), batch)])


def clipmatch_embed(exe, model_dir, weights, paths):
    """Our embeddings through the CLI, with `weights` as the folder's model.safetensors."""
    with tempfile.TemporaryDirectory(prefix="clipmatch-fidelity-") as tmp:
        tmp = Path(tmp)
        for name in ("config.json", "preprocessor_config.json"):
            (tmp / name).write_bytes((Path(model_dir) / name).read_bytes())
        (tmp / "model.safetensors").symlink_to(Path(weights).resolve())
        keys = [str(p) for p in paths]
        run = subprocess.run([str(exe), "embed", "--model", str(tmp), "--image", *keys],
                             capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"clipmatch embed failed on {weights} (exit {run.returncode}):\n{run.stderr}")
        images = json.loads(run.stdout)["images"]
        return np.array([images[k] for k in keys], dtype=np.float32)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def rowwise_cosine(a, b):
    return (unit(a) * unit(b)).sum(-1)


def top5(photos, catalog):
    return np.argsort(-(unit(photos) @ unit(catalog).T), axis=1, kind="stable")[:, :5]


def metrics(got, ref, catalog):
    cos = rowwise_cosine(got, ref)
    mean = ref.mean(0)
    ccos = rowwise_cosine(got - mean, ref - mean)
    tg, tr = top5(got, catalog), top5(ref, catalog)
    return {
        "cos_mean": cos.mean(), "cos_min": cos.min(),
        "ccos_mean": ccos.mean(), "ccos_min": ccos.min(),
        "top1": (tg[:, 0] == tr[:, 0]).mean(),
        "top5": (tg == tr).all(1).mean(),
        "overlap": np.mean([len(set(a) & set(b)) for a, b in zip(tg, tr)]),
    }


COLUMNS = [("cos_mean", "cosine mean", "{:.6f}"), ("cos_min", "cosine min", "{:.6f}"),
           ("ccos_mean", "centred cosine mean", "{:.4f}"), ("ccos_min", "centred cosine min", "{:.4f}"),
           ("top1", "top-1 agreement", "{:.0%}"), ("top5", "top-5 agreement (order)", "{:.0%}"),
           ("overlap", "top-5 overlap (of 5)", "{:.2f}")]


def table(rows):
    out = ["| engine | against | " + " | ".join(c[1] for c in COLUMNS) + " |",
           "|---|---|" + "---|" * len(COLUMNS)]
    for name, against, m in rows:
        out.append(f"| {name} | {against} | " + " | ".join(fmt.format(m[k]) for k, _, fmt in COLUMNS) + " |")
    return "\n".join(out)


def worse_metrics(ours, theirs):
    # Every metric is "higher is more faithful"; a tie counts as at least as faithful.
    return [label for key, label, _ in COLUMNS if ours[key] < theirs[key] - 1e-12]


def verdict(what, ours, theirs):
    worse = worse_metrics(ours, theirs)
    if not worse:
        return f"{what}: ours int8 is at least as faithful as ORT int8 on every metric"
    return f"{what}: ours int8 is LESS faithful than ORT int8 on: " + ", ".join(worse)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/clip-b32-random"),
                    help="Hugging Face CLIP folder (config.json, preprocessor_config.json, model.safetensors, onnx/)")
    ap.add_argument("--photos", default=str(GROCERY / "photos"))
    ap.add_argument("--catalog", default=str(GROCERY / "iconic"))
    ap.add_argument("--onnx-int8", help="default: MODEL/onnx/vision_int8.onnx")
    ap.add_argument("--ours-int8", help="default: MODEL/onnx/vision_int8.safetensors")
    ap.add_argument("--ours-f32", help="default: MODEL/onnx/vision_f32.safetensors")
    ap.add_argument("--exe", default=str(default_exe()), help="clipmatch binary (default: $CARGO_TARGET_DIR or target/, release)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    model = Path(a.model)
    onnx_dir = model / "onnx"
    files = {
        "--onnx-int8": Path(a.onnx_int8 or onnx_dir / "vision_int8.onnx"),
        "--ours-int8": Path(a.ours_int8 or onnx_dir / "vision_int8.safetensors"),
        "--ours-f32": Path(a.ours_f32 or onnx_dir / "vision_f32.safetensors"),
    }
    photos_dir, catalog_dir = Path(a.photos), Path(a.catalog)
    if not photos_dir.is_dir() or not catalog_dir.is_dir():
        sys.exit(f"the grocery data is missing: expected the phone photos in {photos_dir} and the catalog "
                 f"images in {catalog_dir} (../shared/data/grocery-packages beside the checkout; or pass "
                 "--photos and --catalog)")
    photos = sorted(photos_dir.rglob("*.jpg"))
    catalog = sorted(catalog_dir.rglob("*_Iconic.jpg"))
    if not photos or not catalog:
        sys.exit(f"no photos (*.jpg) in {photos_dir} or no catalog images (*_Iconic.jpg) in {catalog_dir}")
    for flag, path in files.items():
        if not path.exists():
            sys.exit(f"{path} is missing ({flag}): make it with benches/export_onnx.py (ONNX files, f32 safetensors) "
                     "or `cargo run --release --example export_vision -- MODEL int8 OUT` (our int8 export)")
    exe = Path(a.exe)
    if not exe.exists():
        sys.exit(f"{exe} is missing: run `cargo build --release` (with the same CARGO_TARGET_DIR) or pass --exe")

    import torch
    torch.set_num_threads(a.threads)
    os.environ["RAYON_NUM_THREADS"] = str(a.threads)

    print(f"{len(photos)} photos, {len(catalog)} catalog images; model {model}", file=sys.stderr)
    ref_catalog, _ = transformers_f32(model, catalog)
    ref, pixels = transformers_f32(model, photos)
    print("transformers f32 done", file=sys.stderr)
    ort = ort_int8(files["--onnx-int8"], pixels)
    print("onnxruntime int8 done", file=sys.stderr)
    ours8 = clipmatch_embed(exe, model, files["--ours-int8"], photos)
    print("clipmatch int8 done", file=sys.stderr)
    ours32 = clipmatch_embed(exe, model, files["--ours-f32"], photos)
    print("clipmatch f32 done", file=sys.stderr)

    m_ort = metrics(ort, ref, ref_catalog)
    m_ours = metrics(ours8, ref, ref_catalog)
    m_ours_q = metrics(ours8, ours32, ref_catalog)
    m_decode = metrics(ours32, ref, ref_catalog)
    rows = [
        ("ORT int8 (`vision_int8.onnx`)", "transformers f32", m_ort),
        ("ours int8 (`vision_int8.safetensors`)", "transformers f32", m_ours),
        ("ours int8", "ours f32", m_ours_q),
        ("ours f32 (`vision_f32.safetensors`)", "transformers f32", m_decode),
    ]
    print(f"{datetime.date.today()}, {len(photos)} photos ranked against {len(catalog)} catalog images "
          f"(transformers f32); model {model.name}; load average {os.getloadavg()[0]:.1f}\n")
    print(table(rows))
    print()
    print(verdict("End to end (each against transformers f32)", m_ours, m_ort))
    print(verdict("Quantisation alone (ours int8 vs ours f32; ORT int8 vs transformers f32)", m_ours_q, m_ort))


if __name__ == "__main__":
    main()
