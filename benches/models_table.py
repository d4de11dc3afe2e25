#!/usr/bin/env python3
"""One table over every supported model (BENCHMARKS.md, "Every supported model"): page download at
f16 and int8, ms per image and per query in the page's worker on 1 and 2 threads, native ms per
image on 1 and 2 threads, wasm memory, and int8 fidelity. Each figure comes from one of the
project's own tools, run here one model at a time:

  browser   node benches/browser/bench.mjs --model DIR --only "ours f16 1t,ours f16 2t,ours int8 1t"
            --json FILE (the f16 and int8 bundles it makes give the download sizes)
  native    RAYON_NUM_THREADS=1|2 python3 scripts/bench_embed.py --model DIR (clipmatch embed:
            decode, preprocess, image tower; process start and model load excluded)
  fidelity  target/release/examples/export_fidelity DIR PHOTOS int8 (int8 export against the
            folder's f32 model: cosine on the fixture images and grocery photos, top-5 rankings)

Figures are kept in --out (JSON) per model and step, so a step can be run again alone
(--steps native) and the table printed from what is there (--steps none).

    cargo build --release && cargo build --release --example export_fidelity
    scripts/build_wasm.sh --bench && (cd benches/browser && npm ci)
    python3 benches/models_table.py [--runs 10] [--steps browser,native,fidelity] [--model LABEL=DIR ...]

Default models: models/clip-b32-random and the full-size random folders of
scripts/make_model_fixtures.py --full in ../models-full (read only).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL = ROOT.parent / "models-full"
# (label in the table, model folder)
DEFAULT_MODELS = [
    ("OpenAI CLIP ViT-B/32", ROOT / "models/clip-b32-random"),
    ("MobileCLIP2-S0", FULL / "mobileclip2-s0"),
    ("MobileCLIP-S1", FULL / "mobileclip-s1"),
    ("MobileCLIP-S2", FULL / "mobileclip-s2"),
    ("MobileCLIP-B", FULL / "mobileclip-b"),
    ("SigLIP2 B/16-224", FULL / "siglip2-base"),
    ("SigLIP2 B/32-256", FULL / "siglip2-base-p32-256"),
]
STEPS = ("browser", "native", "fidelity")
BROWSER_VARIANTS = "ours f16 1t,ours f16 2t,ours int8 1t"


def load_average():
    return round(os.getloadavg()[0], 2)


def run_browser(folder, a, scratch):
    out = scratch / f"{folder.name}.browser.json"
    cmd = ["node", str(ROOT / "benches/browser/bench.mjs"), "--model", str(folder), "--only", BROWSER_VARIANTS,
           "--runs", str(a.runs), "--warmup", str(a.warmup), "--json", str(out)]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    figures = json.loads(out.read_text())
    variants = {v["name"]: v for v in figures["variants"]}
    pick = lambda name, key: variants[name][key] if name in variants else None
    return {
        "command": " ".join(cmd[1:]),
        "load_before": figures["loadBefore"][0], "load_after": figures["loadAfter"][0],
        "input": figures["input"], "engine": pick("ours f16 1t", "ourEngine"),
        "download_bytes": {d: b["weightsBytes"] for d, b in figures["bundles"].items()},
        "image_ms": {t: pick(f"ours f16 {t}t", "medianMs") for t in (1, 2)},
        "query_ms": {t: pick(f"ours f16 {t}t", "queryMedianMs") for t in (1, 2)},
        "int8_query_ms_1t": pick("ours int8 1t", "queryMedianMs"),
        "memory_after_load_bytes": pick("ours f16 1t", "memoryAfterLoadBytes"),
        "memory_after_runs_bytes": pick("ours f16 1t", "memoryAfterRunsBytes"),
        "int8_memory_after_load_bytes": pick("ours int8 1t", "memoryAfterLoadBytes"),
    }


def run_native(folder, a, _scratch):
    figures = {}
    for threads in (1, 2):
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        cmd = [sys.executable, str(ROOT / "scripts/bench_embed.py"), "--model", str(folder), "--n", str(a.native_n),
               "--runs", str(a.native_runs), "--exe", str(ROOT / "target/release/clipmatch")]
        before = load_average()
        text = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout
        m = re.search(r"per image .*: median ([\d.]+) ms \(min ([\d.]+), max ([\d.]+)\)", text)
        if not m:
            raise SystemExit(f"bench_embed.py printed no per-image figure:\n{text}")
        figures[threads] = {"median_ms": float(m[1]), "min_ms": float(m[2]), "max_ms": float(m[3]),
                            "load_before": before, "load_after": load_average()}
    figures["command"] = f"RAYON_NUM_THREADS=1|2 python3 scripts/bench_embed.py --model {folder} --n {a.native_n} --runs {a.native_runs}"
    return figures


def run_fidelity(folder, a, _scratch):
    exe = ROOT / "target/release/examples/export_fidelity"
    if not exe.exists():
        raise SystemExit(f"{exe} is missing: cargo build --release --example export_fidelity")
    text = subprocess.run([str(exe), str(folder), str(a.photos), "int8"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"int8 \(([\d.]+) MB\): fixture images cosine min ([\d.]+), mean ([\d.]+)"
                  r"(?:; (\d+) grocery photos: cosine min ([\d.]+), mean ([\d.]+), top-5 identical (\d+)/\d+, top-1 changed (\d+))?", text)
    if not m:
        raise SystemExit(f"export_fidelity printed no int8 line:\n{text}")
    photos = bool(m[4])
    return {
        "command": f"target/release/examples/export_fidelity {folder} {a.photos} int8",
        "fixture_cos_min": float(m[2]), "fixture_cos_mean": float(m[3]),
        **({"photos": int(m[4]), "photo_cos_min": float(m[5]), "photo_cos_mean": float(m[6]),
            "top5_identical": int(m[7]), "top1_changed": int(m[8])} if photos else {}),
        "raw": text.strip().splitlines()[-1],
    }


RUNNERS = {"browser": run_browser, "native": run_native, "fidelity": run_fidelity}


def mb(n):
    return f"{n / 1e6:.1f}" if n is not None else "-"


def ms(x):
    return f"{x:.0f}" if x is not None else "-"


def table(models, store):
    rows = ["| model | page download f16 / int8 (MB) | worker ms per image, 1 / 2 threads | worker ms per query, 1 / 2 threads | "
            "native ms per image, 1 / 2 threads | wasm MB after load (after queries) | int8 vs f32 cosine, min (photos) | top-5 identical |",
            "|---|---|---|---|---|---|---|---|"]
    for label, folder in models:
        f = store.get(label, {})
        b, n, q = f.get("browser", {}), f.get("native", {}), f.get("fidelity", {})
        dl = b.get("download_bytes", {})
        img, qry = b.get("image_ms", {}), b.get("query_ms", {})
        cos = q.get("photo_cos_min", q.get("fixture_cos_min", "-")) if q else "-"
        top5 = f"{q['top5_identical']}/{q['photos']}" if q.get("top5_identical") is not None else "-"
        rows.append(
            f"| {label} | {mb(dl.get('f16'))} / {mb(dl.get('int8'))} | {ms(img.get('1'))} / {ms(img.get('2'))} | "
            f"{ms(qry.get('1'))} / {ms(qry.get('2'))} | {ms(n.get('1', {}).get('median_ms'))} / {ms(n.get('2', {}).get('median_ms'))} | "
            f"{mb(b.get('memory_after_load_bytes'))} ({mb(b.get('memory_after_runs_bytes'))}) | {cos} | {top5} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="LABEL=DIR", help="instead of the default models")
    ap.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated of {', '.join(STEPS)}, or none")
    ap.add_argument("--only", help="comma-separated labels of the models to measure (the table shows all)")
    ap.add_argument("--runs", type=int, default=10, help="browser: timed runs per variant")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--native-n", type=int, default=10, help="native: photos per timed embed")
    ap.add_argument("--native-runs", type=int, default=3)
    ap.add_argument("--photos", type=int, default=40, help="fidelity: grocery photos ranked")
    ap.add_argument("--out", default=str(ROOT / "target/models-table.json"))
    a = ap.parse_args()
    models = [(l, Path(d).resolve()) for l, d in (m.split("=", 1) for m in a.model)] if a.model else DEFAULT_MODELS
    steps = [] if a.steps == "none" else a.steps.split(",")
    for s in steps:
        if s not in STEPS:
            raise SystemExit(f"unknown step {s!r}: {', '.join(STEPS)} or none")
    out = Path(a.out)
    store = json.loads(out.read_text()) if out.exists() else {}
    scratch = out.parent / "models-table"
    scratch.mkdir(parents=True, exist_ok=True)
    wanted = a.only.split(",") if a.only else [l for l, _ in models]
    for label, folder in models:
        if label not in wanted:
            continue
        if not folder.exists():
            print(f"skipped {label}: {folder} is absent", file=sys.stderr)
            continue
        for step in steps:
            print(f"== {label}: {step} (load average {load_average()})", file=sys.stderr)
            t = time.time()
            figures = RUNNERS[step](folder, a, scratch)
            figures["date"] = time.strftime("%Y-%m-%d %H:%M")
            figures["seconds"] = round(time.time() - t)
            store.setdefault(label, {})[step] = figures
            out.write_text(json.dumps(store, indent=1))  # JSON keys: threads become "1", "2"
            store = json.loads(out.read_text())
    print(table(models, store))


if __name__ == "__main__":
    main()
