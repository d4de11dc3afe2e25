#!/usr/bin/env python3
"""Native catalog building, side by side, three engines on the same weights and the same work:

- clipmatch `build` (its own kernels for both towers; candle with this crate's kernels for an
  open_clip MobileCLIP folder), one fresh process per run;
- PyTorch: for a Hugging Face CLIP folder `transformers` CLIPModel with the PIL
  CLIPImageProcessor; for an open_clip folder (`open_clip_config.json`: MobileCLIP) open_clip's
  own model (`encode_image`, `encode_text`), eval transform (PIL) and tokenizer;
- onnxruntime (CPU execution provider, `intra_op_num_threads` = --threads, inter-op 1) running
  the exported vision tower (`vision_f32.onnx`, benches/export_onnx.py) at the same batch size, with
  the same PIL preprocessing as the PyTorch side. There is no ONNX text tower: the names go
  through the same PyTorch `get_text_features` as on the PyTorch side (100 short names are a
  small share of the work; the vision tower is what this engine is compared on). Left out where
  the folder has no ONNX export (the open_clip folders, for now).

"Build" = decode every photo, preprocess it, embed the images in batches, embed every product name,
L2-normalise. "Images only" = decode + preprocess + vision tower, no names: the vision engines
compared directly. For clipmatch, images only is measured two ways: `clipmatch embed --image` with
every photo (--embed-cli: what the CLI offers; one image per model call, i.e. batch 1; minus the
same command with one photo), and, if the `build_phases` example is built, the same library calls as `build`
at --batch (examples/build_phases.rs --images-only; in-process, model load excluded).

Engines alternate run by run (the order rotates each run). clipmatch's process start and model load
are measured separately each run and subtracted; the Python engines load once, outside the timing.
clipmatch's build time still includes hashing the weights for the manifest, writing thumbnails and
the catalog (the Python engines do none of these). Medians of --runs, ratios printed last.

    python3 benches/native_build_vs_pytorch.py --model models/clip-b32-random \\
        [--photos ../shared/data/grocery-packages/photos] [--batch 16] [--threads 2] [--runs 5] \\
        [--exe target/release/clipmatch] [--onnx MODEL/onnx/vision_f32.onnx] [--phases-exe ...] [--no-images-only] [--embed-cli]

An open_clip folder has no tokenizer.json: clipmatch reads CLIP's from CLIPMATCH_TOKENIZER (e.g.
../shared/data/clip-vit-base-patch32/tokenizer.json), open_clip uses its bundled one.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def photos_in(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def env_for(model, threads):
    return dict(os.environ, CLIPMATCH_MODEL=model, RAYON_NUM_THREADS=str(threads))


def run_clipmatch(exe, model, photos_dir, batch, threads, out):
    t = time.perf_counter()
    subprocess.run([exe, "build", str(photos_dir), "--out", str(out), "--batch-size", str(batch), "--allow-skips"],
                   env=env_for(model, threads), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def clipmatch_embed_time(exe, model, images, threads, text=True):
    """Process start + model load + `images` one by one (+ one text, which loads the text tower)."""
    cmd = [exe, "embed"] + (["--image", *map(str, images)] if images else []) + (["--text", "x"] if text else [])
    t = time.perf_counter()
    subprocess.run(cmd, env=env_for(model, threads), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def clipmatch_phases(phases_exe, model, photos_dir, batch, threads, images_only):
    cmd = [phases_exe, model, str(photos_dir), "--batch", str(batch)] + (["--images-only"] if images_only else [])
    out = subprocess.run(cmd, env=env_for(model, threads), check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def is_open_clip(model_dir):
    return (Path(model_dir) / "open_clip_config.json").exists()


def names_of(photos):
    return [p.stem.replace("-", " ").replace("_", " ") for p in photos]


def load_images(paths):
    from PIL import Image, ImageOps
    return [ImageOps.exif_transpose(Image.open(p)) for p in paths]


def make_open_clip_engines(model_dir, threads):
    """PyTorch through open_clip (an open_clip folder: MobileCLIP); no ONNX engine."""
    import open_clip
    import torch

    torch.set_num_threads(threads)
    name = "local-dir:" + str(Path(model_dir).resolve())
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)

    def torch_images(photos, batch):
        vectors = []
        with torch.no_grad():
            for i in range(0, len(photos), batch):
                px = torch.stack([preprocess(im.convert("RGB")) for im in load_images(photos[i:i + batch])])
                vectors.append(torch.nn.functional.normalize(model.encode_image(px), dim=-1))
        return vectors

    def torch_texts(photos, batch):
        names = names_of(photos)
        vectors = []
        with torch.no_grad():
            for i in range(0, len(names), batch):
                vectors.append(torch.nn.functional.normalize(model.encode_text(tokenizer(names[i:i + batch])), dim=-1))
        return vectors

    return {"pytorch": (lambda p, b: (torch_images(p, b), torch_texts(p, b)), torch_images)}, None


def make_python_engines(model_dir, onnx_path, threads):
    """Returns ({engine: (build, images_only)}, check or None); each takes (photos, batch)."""
    if is_open_clip(model_dir):
        return make_open_clip_engines(model_dir, threads)
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    tokenizer = CLIPTokenizer.from_pretrained(model_dir)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])

    def features(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def torch_images(photos, batch):
        vectors = []
        with torch.no_grad():
            for i in range(0, len(photos), batch):
                px = processor(images=load_images(photos[i:i + batch]), return_tensors="pt").pixel_values
                vectors.append(torch.nn.functional.normalize(features(model.get_image_features(pixel_values=px)), dim=-1))
        return vectors

    def ort_images(photos, batch):
        vectors = []
        for i in range(0, len(photos), batch):
            px = processor(images=load_images(photos[i:i + batch]), return_tensors="np").pixel_values
            (emb,) = session.run(None, {"pixel_values": np.ascontiguousarray(px, dtype=np.float32)})
            vectors.append(emb / np.linalg.norm(emb, axis=-1, keepdims=True))
        return vectors

    def torch_texts(photos, batch):
        names = names_of(photos)
        vectors = []
        with torch.no_grad():
            for i in range(0, len(names), batch):
                ids = tokenizer(names[i:i + batch], padding=True, truncation=True, max_length=77, return_tensors="pt")
                vectors.append(torch.nn.functional.normalize(features(model.get_text_features(**ids)), dim=-1))
        return vectors

    def check(photos, batch):
        """Both vision engines compute the same function: cosine of their embeddings."""
        a = torch.cat(torch_images(photos, batch)).numpy()
        b = np.concatenate(ort_images(photos, batch))
        return float((a * b).sum(-1).min())

    return {
        "pytorch": (lambda p, b: (torch_images(p, b), torch_texts(p, b)), torch_images),
        "onnxruntime": (lambda p, b: (ort_images(p, b), torch_texts(p, b)), ort_images),
    }, check


def fmt(xs):
    return f"{statistics.median(xs):6.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--photos", default=str(ROOT.parent / "shared/data/grocery-packages/photos"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--exe", default=str(ROOT / "target/release/clipmatch"))
    ap.add_argument("--onnx", help="vision tower as ONNX (default: MODEL/onnx/vision_f32.onnx)")
    ap.add_argument("--phases-exe", help="the build_phases example (default: beside --exe, examples/build_phases)")
    ap.add_argument("--no-images-only", action="store_true", help="time whole builds only")
    ap.add_argument("--embed-cli", action="store_true",
                    help="also time `clipmatch embed --image` with every photo (batch 1; slow, so off by default)")
    a = ap.parse_args()
    photos = photos_in(a.photos)
    if not photos:
        sys.exit(f"no photos under {a.photos}")
    onnx_path = Path(a.onnx or Path(a.model) / "onnx" / "vision_f32.onnx")
    if not is_open_clip(a.model) and not onnx_path.exists():
        sys.exit(f"{onnx_path} is missing: python3 benches/export_onnx.py --model {a.model} --out {onnx_path.parent}")
    phases_exe = Path(a.phases_exe or Path(a.exe).parent / "examples" / "build_phases")
    if not phases_exe.exists():
        print(f"({phases_exe} not built: `cargo build --release --example build_phases`; clipmatch images-only at batch {a.batch} skipped)")
        phases_exe = None
    images_only = not a.no_images_only
    n = len(photos)
    load_before = os.getloadavg()

    engines, check = make_python_engines(a.model, onnx_path, a.threads)
    for build, _ in engines.values():
        build(photos[: a.batch], a.batch)  # warm-up
    min_cos = check(photos[: a.batch], a.batch) if check else None

    order = ["clipmatch", *engines]
    build_t = {e: [] for e in order}
    img_t = {"clipmatch embed (batch 1)": [], **{e: [] for e in order}}
    loads, loads_vision, phases, loadavg = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.runs):
            for engine in order[r % len(order):] + order[: r % len(order)]:
                if engine == "clipmatch":
                    # Process start + loading both towers (+ one one-word text; no image).
                    loads.append(clipmatch_embed_time(a.exe, a.model, [], a.threads))
                    build_t[engine].append(run_clipmatch(a.exe, a.model, a.photos, a.batch, a.threads, Path(tmp) / "catalog")
                                           - loads[-1])
                    if images_only and a.embed_cli:
                        loads_vision.append(clipmatch_embed_time(a.exe, a.model, photos[:1], a.threads, text=False))
                        all_images = clipmatch_embed_time(a.exe, a.model, photos, a.threads, text=False)
                        img_t["clipmatch embed (batch 1)"].append((all_images - loads_vision[-1]) * n / (n - 1))
                    if images_only and phases_exe:
                        p = clipmatch_phases(str(phases_exe), a.model, a.photos, a.batch, a.threads, True)
                        phases.append(p)
                        img_t[engine].append(p["work"])
                else:
                    build, images = engines[engine]
                    t = time.perf_counter()
                    build(photos, a.batch)
                    build_t[engine].append(time.perf_counter() - t)
                    if images_only:
                        t = time.perf_counter()
                        images(photos, a.batch)
                        img_t[engine].append(time.perf_counter() - t)
            loadavg.append(os.getloadavg()[0])
            print(f"run {r + 1}/{a.runs}: " + ", ".join(f"{e} {v[-1]:.2f} s" for e, v in build_t.items())
                  + f"; load average {loadavg[-1]:.2f}", flush=True)

    import torch
    if is_open_clip(a.model):
        import open_clip
        label = {"clipmatch": "clipmatch `build`", "pytorch": f"PyTorch {torch.__version__.split('+')[0]} + open_clip {open_clip.__version__}"}
    else:
        import onnxruntime
        import transformers
        label = {"clipmatch": "clipmatch `build`", "pytorch": f"PyTorch {torch.__version__.split('+')[0]} + transformers {transformers.__version__}",
                 "onnxruntime": f"onnxruntime {onnxruntime.__version__} (vision) + PyTorch (names)"}
    ips = {e: n / statistics.median(v) for e, v in build_t.items()}
    print()
    print(f"machine: {os.cpu_count()} cores; load average (1 min) {load_before[0]:.2f} before, "
          f"{statistics.median(loadavg):.2f} median after each run ({min(loadavg):.2f}-{max(loadavg):.2f}); "
          f"{a.runs} runs each, engines alternating")
    print(f"work: {n} photos and {n} names, batch {a.batch}, {a.threads} threads, model {a.model}")
    if min_cos is not None:
        print(f"vision towers agree: min cosine PyTorch vs onnxruntime over {a.batch} photos = {min_cos:.6f}")
    print(f"clipmatch start + model load (subtracted): median {statistics.median(loads):.2f} s")
    print()
    print("build (decode, preprocess, images, names)      median (min-max)        products/s")
    for e, v in build_t.items():
        print(f"  {label[e]:<46} {fmt(v)}  {ips[e]:7.1f}")
    if images_only:
        print("images only (decode, preprocess, vision)       median (min-max)        images/s")
        for e, v in img_t.items():
            if v:
                print(f"  {e:<46} {fmt(v)}  {n / statistics.median(v):7.1f}")
        if phases:
            keys = ["read", "decode", "preprocess", "vision"]
            print("  clipmatch images-only phases (median s): "
                  + ", ".join(f"{k} {statistics.median(p[k] for p in phases):.2f}" for k in keys))
    print()
    def paired(t, other, ours="clipmatch"):
        """Per-run ratios (engines ran back to back within a run), robust to load drifting between runs."""
        rs = [b / a for a, b in zip(t[ours], t[other])]
        return f"(per run: {', '.join(f'{r:.2f}' for r in rs)}; median of per-run ratios {statistics.median(rs):.2f}x)"

    print(f"load average after each run: {', '.join(f'{x:.2f}' for x in loadavg)}")
    print(f"ratio build, clipmatch / PyTorch throughput:      {ips['clipmatch'] / ips['pytorch']:.2f}x {paired(build_t, 'pytorch')}")
    if "onnxruntime" in ips:
        print(f"ratio build, clipmatch / onnxruntime throughput:  {ips['clipmatch'] / ips['onnxruntime']:.2f}x {paired(build_t, 'onnxruntime')}")
    if images_only and img_t["clipmatch"]:
        m = {e: statistics.median(v) for e, v in img_t.items() if v}
        print(f"ratio images only (batch {a.batch}), clipmatch / PyTorch:     {m['pytorch'] / m['clipmatch']:.2f}x {paired(img_t, 'pytorch')}")
        if "onnxruntime" in m:
            print(f"ratio images only (batch {a.batch}), clipmatch / onnxruntime: {m['onnxruntime'] / m['clipmatch']:.2f}x {paired(img_t, 'onnxruntime')}")


if __name__ == "__main__":
    main()
