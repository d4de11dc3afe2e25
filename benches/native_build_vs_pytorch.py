#!/usr/bin/env python3
"""Native catalog building, side by side: `clipmatch build` against PyTorch (`transformers`) doing
the same work on the same weights: decode every photo, preprocess it (the PIL CLIPImageProcessor),
embed images in batches, embed every product name, L2-normalise.

Engines alternate, each run in a fresh process for clipmatch; the PyTorch model is loaded once per
run and its load time is excluded (so is clipmatch's model load: it is timed separately and
subtracted). Medians of several runs, printed as a ratio last.

    python3 benches/native_build_vs_pytorch.py --model models/clip-b32-random \
        [--photos ../shared/data/grocery-packages/photos] [--batch 16] [--threads 2] [--runs 5]
"""
import argparse
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


def run_clipmatch(exe, model, photos_dir, batch, threads, out):
    env = dict(os.environ, CLIPMATCH_MODEL=model, RAYON_NUM_THREADS=str(threads))
    t = time.perf_counter()
    subprocess.run([exe, "build", str(photos_dir), "--out", str(out), "--batch-size", str(batch), "--allow-skips"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def clipmatch_load_time(exe, model, photo, threads):
    """Process start + model load + one image, to subtract from a build's wall time."""
    env = dict(os.environ, CLIPMATCH_MODEL=model, RAYON_NUM_THREADS=str(threads))
    t = time.perf_counter()
    subprocess.run([exe, "embed", "--image", str(photo), "--text", "x"], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def make_pytorch(model_dir, threads):
    import torch
    from PIL import Image, ImageOps
    from transformers import CLIPModel, CLIPTokenizer
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    processor = CLIPImageProcessorPil.from_pretrained(model_dir)
    tokenizer = CLIPTokenizer.from_pretrained(model_dir)

    def features(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def build(photos, batch):
        names = [p.stem.replace("-", " ").replace("_", " ") for p in photos]
        vectors = []
        with torch.no_grad():
            for i in range(0, len(photos), batch):
                images = [ImageOps.exif_transpose(Image.open(p)) for p in photos[i:i + batch]]
                px = processor(images=images, return_tensors="pt").pixel_values
                vectors.append(torch.nn.functional.normalize(features(model.get_image_features(pixel_values=px)), dim=-1))
            for i in range(0, len(names), batch):
                ids = tokenizer(names[i:i + batch], padding=True, truncation=True, max_length=77, return_tensors="pt")
                vectors.append(torch.nn.functional.normalize(features(model.get_text_features(**ids)), dim=-1))
        return vectors

    return build


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--photos", default=str(ROOT.parent / "shared/data/grocery-packages/photos"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--exe", default=str(ROOT / "target/release/clipmatch"))
    a = ap.parse_args()
    photos = photos_in(a.photos)
    if not photos:
        sys.exit(f"no photos under {a.photos}")
    pytorch_build = make_pytorch(a.model, a.threads)
    pytorch_build(photos[: a.batch], a.batch)  # warm-up
    ours, theirs, loads = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(a.runs):
            loads.append(clipmatch_load_time(a.exe, a.model, photos[0], a.threads))
            ours.append(run_clipmatch(a.exe, a.model, a.photos, a.batch, a.threads, Path(tmp) / "catalog"))
            t = time.perf_counter()
            pytorch_build(photos, a.batch)
            theirs.append(time.perf_counter() - t)
    n = len(photos)
    ours_net = [o - l for o, l in zip(ours, loads)]
    ips_ours = n / statistics.median(ours_net)
    ips_theirs = n / statistics.median(theirs)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; {a.runs} runs each, alternating")
    print(f"work: {n} photos and {n} names, batch {a.batch}, {a.threads} threads, model {a.model}")
    print(f"clipmatch build: median {statistics.median(ours):.2f} s wall, {statistics.median(loads):.2f} s of it start + load "
          f"=> {ips_ours:.1f} products/s")
    print(f"PyTorch {__import__('torch').__version__} + transformers: median {statistics.median(theirs):.2f} s => {ips_theirs:.1f} products/s")
    print(f"ratio (clipmatch throughput / PyTorch throughput): {ips_ours / ips_theirs:.2f}x")


if __name__ == "__main__":
    main()
