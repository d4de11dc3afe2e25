#!/usr/bin/env python3
"""Writes app-files.json: every file the app itself is made of (index.html, manifest.webmanifest,
www/ less bundles, pkg/'s JavaScript and wasm), each with its size and sha256, and a version that
is the sha256 of that list. The service worker (isolation-sw.js) keeps these files for offline use
and opens a new version of the app only once all of its files have been downloaded and checked.
Run by scripts/build_wasm.sh; run it again after editing www/ by hand."""
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "app-files.json"
WWW_TYPES = {".js", ".css", ".svg", ".png"}
PKG_TYPES = {".js", ".wasm"}


def app_files():
    yield ROOT / "index.html"
    yield ROOT / "manifest.webmanifest"
    # www/'s own files only: bundles (www/demo/ and any other folder) are the page's to keep.
    yield from sorted(p for p in (ROOT / "www").iterdir() if p.is_file() and p.suffix in WWW_TYPES)
    pkg = ROOT / "pkg"
    if pkg.is_dir():
        yield from sorted(p for p in pkg.rglob("*") if p.is_file() and p.suffix in PKG_TYPES and not p.name.endswith(".d.ts"))


def main():
    files = []
    for path in app_files():
        data = path.read_bytes()
        files.append({"path": path.relative_to(ROOT).as_posix(), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    OUT.write_text(json.dumps({"format": "clipmatch-app-files", "version": version, "files": files}, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(files)} files, version {version[:12]}", file=sys.stderr)


if __name__ == "__main__":
    main()
