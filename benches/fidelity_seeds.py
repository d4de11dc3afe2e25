#!/usr/bin/env python3
"""benches/quantised_fidelity.py over several random-weight ViT-B/32 models (one per seed), and the
mean of each engine's figures across them.

One random-weight model scores every catalog product almost alike, so whether a quantised tower
keeps f32's top-5 order on 100 photos turns on a few near-ties, and one model's figure is as much
that model's luck as the quantiser's. Averaged over models with the same recipe and other seeds,
the luck averages out and what is left is the quantiser.

Per seed (in WORK/seed-N, about 1.6 GB, removed afterwards unless --keep):
  scripts/make_fixtures.py --vit-b32 (the model), benches/export_onnx.py (onnxruntime's int8 and
  q4 models as transformers.js makes them, and the f32 safetensors), examples/export_vision (ours
  int8 and int4), then benches/quantised_fidelity.py --json.

    cargo build --release --example export_vision && cargo build --release
    python3 benches/fidelity_seeds.py --seeds 20240607,1,2,3,4 --work /tmp/fidelity-seeds
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KEYS = [("cos_mean", "cosine mean", "{:.6f}"), ("ccos_mean", "centred cosine mean", "{:.4f}"),
        ("ccos_min", "centred cosine min", "{:.4f}"), ("top1", "top-1", "{:.1%}"),
        ("top5", "top-5 (order)", "{:.1%}"), ("overlap", "top-5 overlap", "{:.3f}")]


def run(cmd):
    print("$", " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    subprocess.run(list(map(str, cmd)), check=True, stdout=sys.stderr)


def one_seed(seed, work, target, threads):
    model = work / f"seed-{seed}"
    out = model / "fidelity.json"
    if not (model / "model.safetensors").exists():
        run([sys.executable, ROOT / "scripts/make_fixtures.py", "--vit-b32", model, "--seed", seed])
    onnx = model / "onnx"
    if not (onnx / "vision_q4.onnx").exists():
        run([sys.executable, ROOT / "benches/export_onnx.py", "--model", model, "--out", onnx])
    for dtype in ("int8", "int4"):
        dst = onnx / f"vision_{dtype}.safetensors"
        if not dst.exists():
            run([target / "release/examples/export_vision", model, dtype, dst])
    run([sys.executable, ROOT / "benches/quantised_fidelity.py", "--model", model, "--threads", threads,
         "--exe", target / "release/clipmatch", "--json", out])
    return json.loads(out.read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="20240607,1,2,3,4", help="comma-separated seeds (20240607 is models/clip-b32-random's)")
    ap.add_argument("--work", default="/tmp/fidelity-seeds", help="where the models are made")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep each seed's model (1.6 GB) after its figures")
    a = ap.parse_args()
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for exe in (target / "release/clipmatch", target / "release/examples/export_vision"):
        if not exe.exists():
            sys.exit(f"{exe} is missing: cargo build --release && cargo build --release --example export_vision")
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    per_seed = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        done = work / f"fidelity-{seed}.json"
        if done.exists():
            rows = json.loads(done.read_text())
        else:
            rows = one_seed(seed, work, target, a.threads)
            done.write_text(json.dumps(rows))
            if not a.keep:
                shutil.rmtree(work / f"seed-{seed}", ignore_errors=True)
        per_seed[seed] = {(r["engine"], r["against"]): r for r in rows}
    engines = list(next(iter(per_seed.values())).keys())
    seeds = list(per_seed)
    print(f"{len(seeds)} random-weight ViT-B/32 models (seeds {', '.join(map(str, seeds))}), 100 grocery photos "
          f"ranked against 31 products; load average {os.getloadavg()[0]:.1f}\n")
    print("| engine | against | " + " | ".join(f"{label}, mean" for _, label, _ in KEYS) + " | top-5 per seed |")
    print("|---|---|" + "---|" * (len(KEYS) + 1))
    for key in engines:
        ms = [per_seed[s][key] for s in seeds if key in per_seed[s]]
        cells = [fmt.format(np.mean([m[k] for m in ms])) for k, _, fmt in KEYS]
        each = " ".join(f"{m['top5']:.0%}" for m in ms)
        print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + f" | {each} |")


if __name__ == "__main__":
    main()
