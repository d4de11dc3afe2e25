#!/usr/bin/env python3
"""Native `clipmatch embed` speed: milliseconds per image on a CLIP model folder.

Times `clipmatch embed --image` with 1 photo and with 1+N photos, alternating, several runs each,
and reports the median of (time with N+1 - time with 1) / N, which excludes process start and model
loading (reported separately). Images are the grocery photos in ../shared/data (or any folder given).

    python3 scripts/bench_embed.py --model models/clip-b32-random [--photos DIR] [--n 20] [--runs 5]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--photos", default=str(ROOT.parent / "shared/data/grocery-packages/photos"))
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--exe", default=str(ROOT / "target/release/clipmatch"))
    a = ap.parse_args()
    photos = sorted(p for p in Path(a.photos).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if len(photos) < a.n + 1:
        sys.exit(f"need {a.n + 1} photos under {a.photos}, found {len(photos)}")
    env = dict(os.environ, CLIPMATCH_MODEL=a.model)

    def timed(images):
        cmd = [a.exe, "embed", "--image", *map(str, images)]
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t

    timed(photos[:2])  # warm the page cache
    one, many = [], []
    for _ in range(a.runs):
        one.append(timed(photos[:1]))
        many.append(timed(photos[: a.n + 1]))
    per_image = [(m - o) / a.n * 1000 for o, m in zip(one, many)]
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    print(f"runs: {a.runs} x (1 image, {a.n + 1} images), model {a.model}")
    print(f"start + load + 1 image: median {statistics.median(one) * 1000:.0f} ms")
    print(f"per image (decode, preprocess, vision tower): median {statistics.median(per_image):.1f} ms "
          f"(min {min(per_image):.1f}, max {max(per_image):.1f})")


if __name__ == "__main__":
    main()
