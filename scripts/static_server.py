#!/usr/bin/env python3
"""A static file server for trying the app locally: correct types for .wasm and .mjs, no caching
of the app's own files (so a rebuild shows at once). Any static host works the same way.
`--isolate` adds the two headers that make a page cross-origin isolated (SharedArrayBuffer, wasm
threads, performance.measureUserAgentSpecificMemory). `--csp` sends index.html's
Content-Security-Policy as a header on every response, so the page's workers (which a <meta>
policy does not reach) run under it too."""
import argparse
import functools
import html
import http.server
import mimetypes
import re
from pathlib import Path

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/octet-stream", ".safetensors")


def page_policy():
    """The Content-Security-Policy of the repository's index.html (its <meta http-equiv> tag)."""
    page = (Path(__file__).resolve().parent.parent / "index.html").read_text(encoding="utf-8")
    m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    if not m:
        raise SystemExit("error: index.html has no Content-Security-Policy <meta> tag")
    return html.unescape(m.group(1))


class Handler(http.server.SimpleHTTPRequestHandler):
    isolate = False
    csp = None

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        if self.csp:
            self.send_header("Content-Security-Policy", self.csp)
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--dir", default=".")
    ap.add_argument("--isolate", action="store_true",
                    help="send Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp")
    ap.add_argument("--csp", action="store_true",
                    help="send index.html's Content-Security-Policy as a header on every response")
    a = ap.parse_args()
    Handler.isolate = a.isolate
    Handler.csp = page_policy() if a.csp else None
    handler = functools.partial(Handler, directory=a.dir)
    with http.server.ThreadingHTTPServer((a.bind, a.port), handler) as httpd:
        isolated = " (cross-origin isolated)" if a.isolate else ""
        print(f"serving {a.dir} at http://{a.bind}:{httpd.server_address[1]}/{isolated}", flush=True)
        httpd.serve_forever()


if __name__ == "__main__":
    main()
