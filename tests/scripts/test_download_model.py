"""scripts/download_model.py against a fake hub that answers as huggingface.co does: `resolve`
URLs whose HEAD carries X-Repo-Commit, and either an ETag holding the git blob id (small files) or a
redirect with X-Linked-Etag / X-Linked-Size (LFS files).

    python3 -m unittest discover -s tests/scripts
"""
import hashlib
import http.server
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "download_model.py"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub(http.server.ThreadingHTTPServer):
    """repo -> {name: (bytes, lfs)}; `served` is what the hub sends, `stated` what it claims."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, dict[str, tuple[bytes, bool]]] = {}
        self.tampered: dict[tuple[str, str], bytes] = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _lookup(self):
        hub: FakeHub = self.server
        hub.requests.append(f"{self.command} {self.path}")
        parts = self.path.lstrip("/").split("/")
        if parts[0] == "cdn":
            repo, name = "/".join(parts[1:3]), "/".join(parts[3:])
            return "cdn", repo, name
        if len(parts) >= 5 and parts[2] == "resolve":
            return "resolve", "/".join(parts[:2]), "/".join(parts[4:])
        return None, None, None

    def _answer(self, with_body: bool):
        hub: FakeHub = self.server
        kind, repo, name = self._lookup()
        entry = hub.files.get(repo, {}).get(name) if kind else None
        if entry is None:
            self.send_response(404)
            self.end_headers()
            return
        data, lfs = entry
        body = hub.tampered.get((repo, name), data)
        if kind == "resolve" and lfs:
            self.send_response(302)
            self.send_header("Location", f"/cdn/{repo}/{name}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if kind == "resolve":
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{git_blob(data)}"')
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_HEAD(self):
        self._answer(False)

    def do_GET(self):
        self._answer(True)


class DownloadModelTest(unittest.TestCase):
    def setUp(self):
        self.hub = FakeHub()
        threading.Thread(target=self.hub.serve_forever, daemon=True).start()
        self.tmp = tempfile.TemporaryDirectory()
        self.dest = Path(self.tmp.name) / "model"

    def tearDown(self):
        self.hub.shutdown()
        self.hub.server_close()
        self.tmp.cleanup()

    def run_script(self, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "CLIPMATCH_HUB_URL": self.hub.url}
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60)

    def siglip2(self) -> dict[str, tuple[bytes, bool]]:
        files = {
            "config.json": (b'{"model_type": "siglip"}', False),
            "preprocessor_config.json": (b'{"size": {"height": 224, "width": 224}}', False),
            "tokenizer.json": (b'{"model": {}}' * 1000, True),
            "tokenizer_config.json": (b"{}", False),
            "model.safetensors": (bytes(range(256)) * 400, True),
        }
        self.hub.files["google/siglip2-base-patch16-224"] = files
        return files

    def test_downloads_every_file_at_one_revision_and_records_it(self):
        files = self.siglip2()
        result = self.run_script("google/siglip2-base-patch16-224", str(self.dest))
        self.assertEqual(result.returncode, 0, result.stderr)
        for name, (data, _) in files.items():
            self.assertEqual((self.dest / name).read_bytes(), data, name)
        sums = (self.dest / "SHA256SUMS").read_text().splitlines()
        self.assertEqual(sorted(line.split("  ")[1] for line in sums), sorted(files))
        self.assertIn(f"{hashlib.sha256(files['model.safetensors'][0]).hexdigest()}  model.safetensors", sums)
        self.assertEqual((self.dest / ".complete").read_text().strip(), f"google/siglip2-base-patch16-224@{COMMIT}")
        resolved = [r for r in self.hub.requests if r.startswith("GET") and "/resolve/" in r]
        self.assertTrue(resolved and all(f"/resolve/{COMMIT}/" in r for r in resolved), resolved)
        # A second run finds the folder complete and fetches nothing.
        before = len(self.hub.requests)
        again = self.run_script("google/siglip2-base-patch16-224", str(self.dest))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already", again.stdout)
        self.assertEqual([r for r in self.hub.requests[before:] if r.startswith("GET")], [])

    def test_a_weights_file_that_does_not_match_the_hubs_sha256_is_refused_and_deleted(self):
        files = self.siglip2()
        data = files["model.safetensors"][0]
        self.hub.tampered[("google/siglip2-base-patch16-224", "model.safetensors")] = data[:-1] + b"\x00"
        result = self.run_script("google/siglip2-base-patch16-224", str(self.dest))
        self.assertEqual(result.returncode, 1)
        self.assertIn("model.safetensors has sha256", result.stderr)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertFalse((self.dest / "model.safetensors").exists())
        self.assertFalse((self.dest / "model.safetensors.part").exists())
        self.assertFalse((self.dest / ".complete").exists())

    def test_a_small_file_that_does_not_match_its_git_blob_id_is_refused(self):
        self.siglip2()
        self.hub.tampered[("google/siglip2-base-patch16-224", "config.json")] = b'{"model_type": "clip"}'
        result = self.run_script("google/siglip2-base-patch16-224", str(self.dest))
        self.assertEqual(result.returncode, 1)
        self.assertIn("config.json has git-blob", result.stderr)
        self.assertFalse((self.dest / "config.json").exists())

    def test_the_pinned_clip_files_are_held_to_their_pins(self):
        # The hub's own hash agrees with what it serves, but it is not the pinned file.
        self.hub.files["openai/clip-vit-base-patch32"] = {
            "config.json": (b'{"model_type": "clip"}', False),
            "preprocessor_config.json": (b"{}", False),
            "tokenizer.json": (b'{"not": "the pinned file"}', True),
            "model.safetensors": (b"\x01" * 5000, True),
        }
        result = self.run_script("openai/clip-vit-base-patch32", str(self.dest))
        self.assertEqual(result.returncode, 1)
        self.assertIn("tokenizer.json is 26 bytes", result.stderr)
        self.assertIn("the pin says 2224041 bytes", result.stderr)
        self.assertFalse((self.dest / "tokenizer.json").exists())
        self.assertTrue(any("/openai/clip-vit-base-patch32/resolve/b33cedfd0df4e43b8238760678fcc89e1a0d38b3/tokenizer.json" in r
                            for r in self.hub.requests))

    def test_an_open_clip_folder_gets_its_config_tokenizer_and_weights(self):
        files = {
            "open_clip_config.json": (b'{"model_cfg": {}}', False),
            "tokenizer.json": (b'{"model": {"type": "BPE"}}' * 100, True),
            "open_clip_model.safetensors": (b"\x02" * 5000, True),
        }
        self.hub.files["timm/MobileCLIP2-S0-OpenCLIP"] = files
        result = self.run_script("timm/MobileCLIP2-S0-OpenCLIP", str(self.dest))
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(sorted(p.name for p in self.dest.iterdir()), sorted([*files, "SHA256SUMS", ".complete"]))

    def test_unknown_hub_ids_and_missing_repositories_are_refused_in_one_line(self):
        result = self.run_script("someone/some-model", str(self.dest))
        self.assertEqual(result.returncode, 2)
        self.assertIn("not a supported hub id", result.stderr)
        self.assertIn("timm/MobileCLIP2-S0-OpenCLIP", result.stderr)
        missing = self.run_script("apple/MobileCLIP-S1-OpenCLIP", str(self.dest))
        self.assertEqual(missing.returncode, 1)
        self.assertIn("the hub has no", missing.stderr)
        self.assertEqual(len(missing.stderr.strip().splitlines()), 1, missing.stderr)


if __name__ == "__main__":
    unittest.main()
