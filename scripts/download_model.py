#!/usr/bin/env python3
"""Downloads a supported model folder from the Hugging Face hub, checking every file.

    scripts/download_model.sh [HUB_ID] [DIR]

HUB_ID is one of the supported models below (default openai/clip-vit-base-patch32); DIR defaults to
models/<name> (e.g. models/MobileCLIP2-S0-OpenCLIP). For backwards compatibility a single argument
that is not a supported hub id is taken as DIR for the default model.

Every file is fetched at one revision (a commit of the hub repository, so the files cannot change
under the same URL): the pinned one for openai/clip-vit-base-patch32, otherwise the commit `main`
points to when the download starts (CLIPMATCH_MODEL_REVISION picks another). Before a file is moved
into place it is checked against what the hub states for that revision: LFS files (the weights,
large tokenizers) by the sha256 and size the hub sends (X-Linked-Etag, X-Linked-Size), small files
by their git blob id (ETag), recomputed here; pinned files also against the pins below. A file that
fails its check is deleted and the script exits non-zero, saying which file. DIR/SHA256SUMS lists
the sha256 of every file, DIR/.complete the hub id and revision.

  CLIPMATCH_MODEL_REVISION  another revision (pins are then not applied, and the script says so)
  CLIPMATCH_HUB_URL         the hub's address (default https://huggingface.co; a mirror, or a test's)
"""
import hashlib
import os
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

HUB = os.environ.get("CLIPMATCH_HUB_URL", "https://huggingface.co").rstrip("/")
DEFAULT_ID = "openai/clip-vit-base-patch32"
CLIP_REVISION = "b33cedfd0df4e43b8238760678fcc89e1a0d38b3"
# file -> (bytes, sha256) of openai/clip-vit-base-patch32 at CLIP_REVISION.
CLIP_PINS = {
    "model.safetensors": (605157884, "99d28a652e6ec46629ab7047a0ac82c69b1fe11e0ce672c43af65d3a9a3fc05d"),
    "tokenizer.json": (2224041, "b556ac8c99757ffb677208af34bc8c6721572114111a6e0aaf5fa69ff0b8d842"),
}

HF_CLIP = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"]
# open_clip repositories hold CLIP's BPE as tokenizer.json too (open_clip's push_to_hf_hub writes it).
OPEN_CLIP = ["open_clip_config.json", "tokenizer.json", "open_clip_model.safetensors"]
SIGLIP2 = ["config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]
# SigLIP v1 has only the slow SentencePiece tokenizer: spiece.model and its tokenizer_config.json.
SIGLIP1 = ["config.json", "preprocessor_config.json", "spiece.model", "tokenizer_config.json", "model.safetensors"]

# hub id -> files its folder needs (what src/models/folder.rs reads).
SUPPORTED = {
    "openai/clip-vit-base-patch32": HF_CLIP,
    "apple/MobileCLIP-S1-OpenCLIP": OPEN_CLIP,
    "apple/MobileCLIP-S2-OpenCLIP": OPEN_CLIP,
    "apple/MobileCLIP-B-OpenCLIP": OPEN_CLIP,
    "timm/MobileCLIP2-S0-OpenCLIP": OPEN_CLIP,
    "timm/MobileCLIP2-S2-OpenCLIP": OPEN_CLIP,
    "timm/MobileCLIP2-B-OpenCLIP": OPEN_CLIP,
    "google/siglip2-base-patch16-224": SIGLIP2,
    "google/siglip2-base-patch32-256": SIGLIP2,
    "google/siglip-base-patch16-224": SIGLIP1,
}


class DownloadError(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _head(url: str) -> dict:
    """The hub's headers for a file, without following the redirect to the CDN (the LFS facts are
    on the redirect itself)."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, method="HEAD", headers={"Accept-Encoding": "identity"})
    try:
        response = opener.open(request, timeout=20)
    except urllib.error.HTTPError as e:
        if e.code in (301, 302, 303, 307, 308):
            response = e
        elif e.code in (401, 403, 404):
            raise DownloadError(f"the hub has no {url} (HTTP {e.code}; a gated model needs a login on huggingface.co first)")
        else:
            raise DownloadError(f"the hub answered HTTP {e.code} for {url}")
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"cannot reach the hub at {HUB}: {getattr(e, 'reason', e)}")
    return {k.lower(): v for k, v in response.headers.items()}


def _expected(headers: dict, name: str) -> tuple[str, str, int | None]:
    """(kind, digest, bytes) the hub states for a file: ('sha256', hex, size) for LFS files,
    ('git-blob', sha1, None) for the others."""
    linked = headers.get("x-linked-etag", "").strip('"').removeprefix("W/").strip('"')
    if re.fullmatch(r"[0-9a-f]{64}", linked):
        size = headers.get("x-linked-size")
        return "sha256", linked, int(size) if size and size.isdigit() else None
    etag = headers.get("etag", "").removeprefix("W/").strip('"')
    if re.fullmatch(r"[0-9a-f]{40}", etag):
        return "git-blob", etag, None
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        return "sha256", etag, None
    raise DownloadError(f"the hub stated no checkable hash for {name} (ETag {etag!r})")


def _fetch(url: str, part: Path, limit: int) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            written = 0
            while chunk := response.read(1 << 20):
                written += len(chunk)
                if written > limit:
                    raise DownloadError(f"{url} is larger than the {limit} bytes the hub stated")
                out.write(chunk)
    except urllib.error.HTTPError as e:
        raise DownloadError(f"cannot download {url}: HTTP {e.code}")
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"cannot download {url}: {getattr(e, 'reason', e)}")


def _digests(path: Path) -> tuple[str, str, int]:
    """sha256, git blob id and size of a file."""
    size = path.stat().st_size
    sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest(), size


def download_file(repo_id: str, revision: str, name: str, dest: Path, pin: tuple[int, str] | None) -> str:
    """Fetches one file into dest (via dest.part) after checking it; returns its sha256."""
    url = f"{HUB}/{repo_id}/resolve/{revision}/{name}"
    kind, digest, size = _expected(_head(url), name)
    part = dest.with_name(dest.name + ".part")
    limit = size if size is not None else (pin[0] if pin else 4 << 30)
    try:
        _fetch(url, part, limit)
        sha256, blob, got_bytes = _digests(part)
        got = sha256 if kind == "sha256" else blob
        if got != digest:
            raise DownloadError(f"{name} has {kind} {got}; the hub states {digest} for {repo_id} at {revision}")
        if size is not None and got_bytes != size:
            raise DownloadError(f"{name} is {got_bytes} bytes; the hub states {size}")
        if pin and (got_bytes, sha256) != pin:
            raise DownloadError(f"{name} is {got_bytes} bytes with sha256 {sha256}; the pin says {pin[0]} bytes and {pin[1]}")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return sha256


def resolve_revision(repo_id: str, first_file: str) -> str:
    """The commit `main` points to now (the hub sends it with every file)."""
    headers = _head(f"{HUB}/{repo_id}/resolve/main/{first_file}")
    commit = headers.get("x-repo-commit", "")
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise DownloadError(f"the hub did not say which commit of {repo_id} it serves")
    return commit


def download(repo_id: str, dest: Path) -> None:
    files = SUPPORTED[repo_id]
    pinned = repo_id == DEFAULT_ID
    revision = os.environ.get("CLIPMATCH_MODEL_REVISION") or (CLIP_REVISION if pinned else resolve_revision(repo_id, files[0]))
    use_pins = pinned and revision == CLIP_REVISION
    if pinned and not use_pins:
        print(f"warning: revision {revision} is not the pinned one; files are checked against the hub only", file=sys.stderr)
    stamp = f"{repo_id}@{revision}"
    complete = dest / ".complete"
    if complete.exists() and complete.read_text().strip() in (stamp, revision if pinned else stamp):
        print(f"model already in {dest} ({stamp})")
        return
    dest.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name in files:
        sums[name] = download_file(repo_id, revision, name, dest / name, CLIP_PINS.get(name) if use_pins else None)
        print(f"  {name}: ok")
    (dest / "SHA256SUMS").write_text("".join(f"{sums[n]}  {n}\n" for n in sorted(sums)))
    complete.write_text(stamp + "\n")
    print(f"model downloaded to {dest} ({stamp}); sha256 of each file in {dest / 'SHA256SUMS'}")


def main(argv: list[str]) -> int:
    args = [a for a in argv if a]
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        print("supported hub ids:\n  " + "\n  ".join(SUPPORTED))
        return 0
    if len(args) > 2:
        print("usage: download_model.sh [HUB_ID] [DIR]", file=sys.stderr)
        return 2
    if args and args[0] in SUPPORTED:
        repo_id, rest = args[0], args[1:]
    elif len(args) == 2:
        print(f"download_model.sh: {args[0]} is not a supported hub id; supported: {', '.join(SUPPORTED)}", file=sys.stderr)
        return 2
    else:
        repo_id, rest = DEFAULT_ID, args
    dest = Path(rest[0]) if rest else Path("models") / repo_id.split("/")[1]
    try:
        download(repo_id, dest)
    except DownloadError as e:
        print(f"download_model.sh: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
