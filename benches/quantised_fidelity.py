#!/usr/bin/env python3
"""How faithful the 8-bit and 4-bit vision towers are to f32: clipmatch's int8 (int8 weights per
output channel, 12-bit activations per row, exact integer sums) and int4 (4-bit weights in blocks of
32 with f16 scales, run as int8 once loaded), against onnxruntime's dynamic int8 (`quantize_dynamic`,
transformers.js's q8) and 4-bit (`MatMulNBits`, blocks of 32, transformers.js's q4), on the same
random-weight CLIP, against transformers' f32 features.

Inputs: the grocery phone photos (recursive *.jpg), and the catalog's *_Iconic.jpg images.
  reference    transformers `CLIPModel.get_image_features`, f32, pixels from the PIL CLIPImageProcessor
  ORT int8     onnxruntime (CPU) on vision_int8.onnx, the same pixel tensors as the reference
  ORT q4       onnxruntime (CPU) on vision_q4.onnx, the same
  ours int8    `clipmatch embed` on a folder whose model.safetensors is our int8 export
  ours int4    the same with our int4 export
  ours f32     `clipmatch embed` on a folder whose model.safetensors is the f32 vision tower
  our 4-bit weights in transformers: our int4 export dequantised into transformers' f32 model, the
               weight rounding alone with f32 arithmetic (as onnxruntime's q4 runs), beside
               "onnxruntime's q4 rule in torch" (--q4-jitter)
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
    cargo run --release --example export_vision -- models/clip-b32-random int4 \
        models/clip-b32-random/onnx/vision_int4.safetensors
    python3 benches/quantised_fidelity.py --model models/clip-b32-random [--json OUT]

One random-weight model's top-5 agreement turns on near-ties; benches/fidelity_seeds.py runs this
over several seeds and averages.
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


def ort_features(onnx_path, pixels, batch=16):
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


def ort_q4_rule(w, factor):
    """onnxruntime's MatMulNBits rounding (symmetric, blocks of 32 along the input): each block's
    largest-magnitude value maps to -8, the scale stored as f16; `factor` scales every scale."""
    rows, k = w.shape
    b = w.reshape(rows, k // 32, 32)
    largest = np.take_along_axis(b, np.abs(b).argmax(-1)[..., None], -1)
    s = (largest / -8.0 * factor).astype(np.float16).astype(np.float32)
    s[s == 0] = 1
    return (np.clip(np.round(b / s), -8, 7) * s).reshape(rows, k)


def ort_q4_jitter(model_dir, pixels, ref, ref_catalog, factors):
    """onnxruntime's 4-bit rounding applied in torch (f32 arithmetic, as MatMulNBits runs without
    accuracy_level) to the same MatMul weights, with every scale times each factor: how far top-5
    agreement moves when only the rounding moves."""
    import torch
    from transformers import CLIPModel

    rows = []
    for factor in factors:
        model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            for name, p in model.vision_model.encoder.named_parameters():
                if name.endswith("proj.weight") or name.endswith("fc1.weight") or name.endswith("fc2.weight"):
                    p.copy_(torch.from_numpy(ort_q4_rule(p.numpy(), factor)))
            out = [model.get_image_features(pixel_values=torch.from_numpy(pixels[i:i + 16]))
                   for i in range(0, len(pixels), 16)]
        feats = np.concatenate([o.numpy() if isinstance(o, torch.Tensor) else o.pooler_output.numpy() for o in out])
        rows.append((f"onnxruntime's q4 rule, scales x{factor}", "transformers f32", metrics(feats, ref, ref_catalog)))
    return rows


def ours_weights(path):
    """Our export's weights back as f32 arrays by transformers name: 4-bit ones (U8, rows paired
    in nibbles, `_scale` F16 per block of 32) and int8 ones (I8, `_scale` per row) dequantised."""
    from safetensors.numpy import load_file

    stored = load_file(str(path))
    out = {}
    for name, t in stored.items():
        if name.endswith("_scale"):
            continue
        scale = stored.get(name + "_scale")
        if t.dtype == np.uint8 and scale is not None:
            rows, k = scale.shape[0], int(np.prod(t.shape[1:]))
            low = ((t.reshape(-1, k).astype(np.int16) << 12) >> 12)
            high = ((t.reshape(-1, k).astype(np.int16) << 8) >> 12)
            levels = np.stack([low, high], 1).reshape(-1, k)[:rows].astype(np.float32)
            per = np.repeat(scale.astype(np.float32), 32, axis=1)[:, :k]
            out[name] = (levels * per).reshape((rows,) + tuple(t.shape[1:]))
        elif t.dtype == np.int8 and scale is not None:
            out[name] = t.astype(np.float32) * scale.astype(np.float32).reshape((-1,) + (1,) * (t.ndim - 1))
        else:
            out[name] = t.astype(np.float32)
    return out


def ours_weights_in_torch(model_dir, path, pixels, ref, ref_catalog, label):
    """Our exported weights (dequantised) in transformers' f32 model: the weight rounding alone,
    with f32 activations, as onnxruntime's q4 (MatMulNBits without accuracy_level) computes."""
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    weights = ours_weights(path)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, w in weights.items():
            if name in params and name.endswith("weight") and params[name].dim() >= 2:
                params[name].copy_(torch.from_numpy(w).reshape(params[name].shape))
        out = [model.get_image_features(pixel_values=torch.from_numpy(pixels[i:i + 16]))
               for i in range(0, len(pixels), 16)]
    feats = np.concatenate([o.numpy() if isinstance(o, torch.Tensor) else o.pooler_output.numpy() for o in out])
    return (label, "transformers f32", metrics(feats, ref, ref_catalog))


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


def verdict(what, ours, theirs, names):
    worse = worse_metrics(ours, theirs)
    if not worse:
        return f"{what}: {names[0]} is at least as faithful as {names[1]} on every metric"
    return f"{what}: {names[0]} is LESS faithful than {names[1]} on: " + ", ".join(worse)


# (bits, our dtype, onnxruntime's file): the pairs compared.
PAIRS = [("8-bit", "int8", "vision_int8.onnx", "ORT int8"), ("4-bit", "int4", "vision_q4.onnx", "ORT q4")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/clip-b32-random"),
                    help="Hugging Face CLIP folder (config.json, preprocessor_config.json, model.safetensors, onnx/)")
    ap.add_argument("--photos", default=str(GROCERY / "photos"))
    ap.add_argument("--catalog", default=str(GROCERY / "iconic"))
    ap.add_argument("--onnx", help="folder of vision_int8.onnx and vision_q4.onnx (default: MODEL/onnx)")
    ap.add_argument("--ours", help="folder of our vision_int8.safetensors, vision_int4.safetensors and "
                                   "vision_f32.safetensors (default: MODEL/onnx)")
    ap.add_argument("--exe", default=str(default_exe()), help="clipmatch binary (default: $CARGO_TARGET_DIR or target/, release)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--q4-jitter", action="store_true",
                    help="also apply onnxruntime's 4-bit rounding in torch with every scale times 1, 0.997, 1.003 "
                         "and 1.01: how much top-5 agreement moves with the rounding alone")
    ap.add_argument("--json", help="also write every row's metrics to this file (for benches/fidelity_seeds.py)")
    a = ap.parse_args()

    model = Path(a.model)
    onnx_dir = Path(a.onnx or model / "onnx")
    ours_dir = Path(a.ours or model / "onnx")
    files = {"ours f32": ours_dir / "vision_f32.safetensors"}
    for _, dtype, onnx_file, ort_name in PAIRS:
        files[f"ours {dtype}"] = ours_dir / f"vision_{dtype}.safetensors"
        files[ort_name] = onnx_dir / onnx_file
    photos_dir, catalog_dir = Path(a.photos), Path(a.catalog)
    if not photos_dir.is_dir() or not catalog_dir.is_dir():
        sys.exit(f"the grocery data is missing: expected the phone photos in {photos_dir} and the catalog "
                 f"images in {catalog_dir} (../shared/data/grocery-packages beside the checkout; or pass "
                 "--photos and --catalog)")
    photos = sorted(photos_dir.rglob("*.jpg"))
    catalog = sorted(catalog_dir.rglob("*_Iconic.jpg"))
    if not photos or not catalog:
        sys.exit(f"no photos (*.jpg) in {photos_dir} or no catalog images (*_Iconic.jpg) in {catalog_dir}")
    for what, path in files.items():
        if not path.exists():
            sys.exit(f"{path} is missing ({what}): make it with benches/export_onnx.py (ONNX files, f32 safetensors) "
                     "or `cargo run --release --example export_vision -- MODEL int8|int4 OUT` (our exports)")
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
    ours32 = clipmatch_embed(exe, model, files["ours f32"], photos)
    rows = []
    verdicts = []
    for bits, dtype, onnx_file, ort_name in PAIRS:
        theirs = ort_features(files[ort_name], pixels)
        ours = clipmatch_embed(exe, model, files[f"ours {dtype}"], photos)
        print(f"{bits} done", file=sys.stderr)
        m_ort = metrics(theirs, ref, ref_catalog)
        m_ours = metrics(ours, ref, ref_catalog)
        m_ours_q = metrics(ours, ours32, ref_catalog)
        rows += [
            (f"{ort_name} (`{onnx_file}`)", "transformers f32", m_ort),
            (f"ours {dtype} (`vision_{dtype}.safetensors`)", "transformers f32", m_ours),
            (f"ours {dtype}", "ours f32", m_ours_q),
        ]
        names = (f"ours {dtype}", ort_name)
        verdicts.append(verdict(f"{bits}, end to end (each against transformers f32)", m_ours, m_ort, names))
        verdicts.append(verdict(f"{bits}, quantisation alone (ours vs ours f32; ORT vs transformers f32)",
                                m_ours_q, m_ort, names))
    rows.append(("ours f32 (`vision_f32.safetensors`)", "transformers f32", metrics(ours32, ref, ref_catalog)))
    rows.append(ours_weights_in_torch(model, files["ours int4"], pixels, ref, ref_catalog,
                                      "our 4-bit weights in transformers (f32 arithmetic)"))
    if a.q4_jitter:
        rows += ort_q4_jitter(model, pixels, ref, ref_catalog, [1.0, 0.997, 1.003, 1.01])
    print(f"{datetime.date.today()}, {len(photos)} photos ranked against {len(catalog)} catalog images "
          f"(transformers f32); model {model.name}; load average {os.getloadavg()[0]:.1f}\n")
    print(table(rows))
    print()
    print("\n".join(verdicts))
    if a.json:
        Path(a.json).write_text(json.dumps([{"engine": n, "against": ag, **{k: float(v) for k, v in m.items()}}
                                            for n, ag, m in rows], indent=1))


if __name__ == "__main__":
    main()
