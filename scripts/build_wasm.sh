#!/usr/bin/env bash
# Builds the wasm packages:
#   scripts/build_wasm.sh          the page's (the product, what `pkg/` ships):
#     pkg/          single-threaded (stable Rust, SIMD128): every browser
#     pkg/threads/  multi-threaded (nightly Rust, std rebuilt with atomics, rayon on Web Workers via
#                   wasm-bindgen-rayon): used by www/worker.js where the page is cross-origin isolated
#   scripts/build_wasm.sh --bench  the browser benchmarks' (benches/browser/): the same two builds
#     with `--features bench` (RankBench, Matcher.embedPixelValues), in target/bench-pkg/ and
#     target/bench-pkg/threads/; never in pkg/.
# CLIPMATCH_NO_THREADS=1 skips the threaded build. Needs what scripts/setup.sh installs (the
# nightly toolchain named there, with rust-src, for the threaded build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/toolchains.sh

case "${1:-}" in
  "") out=pkg; bench="" ;;
  --bench) out=target/bench-pkg; bench=bench ;;
  *) echo "usage: scripts/build_wasm.sh [--bench]" >&2; exit 2 ;;
esac

wasm-pack build --target web --release --out-dir "$out" --mode no-install --no-pack ${bench:+-- --features "$bench"}

if [ "${CLIPMATCH_NO_THREADS:-0}" = "1" ]; then
  rm -rf "$out/threads"
  echo "built $out/"
  exit 0
fi
# A separate target folder: other RUSTFLAGS would otherwise rebuild the stable one every time.
threads_target="${CARGO_TARGET_DIR:-target}/threads"
# Since nightly-2025-10-03 atomics no longer imply a shared memory: the linker is asked for one,
# imported (wasm-bindgen creates it and hands it to every worker), with the TLS symbols the
# workers' start-up needs.
link_args=(--shared-memory --import-memory --max-memory=4294967296
           --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base)
RUSTUP_TOOLCHAIN="$NIGHTLY_TOOLCHAIN" \
RUSTFLAGS='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 --cfg getrandom_backend="wasm_js"' \
  cargo rustc --lib --release --target wasm32-unknown-unknown --features "threads${bench:+,$bench}" \
    --target-dir "$threads_target" -Z build-std=panic_abort,std -- "${link_args[@]/#/-Clink-arg=}"
wasm-bindgen --target web --out-dir "$out/threads" \
  "$threads_target/wasm32-unknown-unknown/release/clipmatch.wasm"
# The glue must create a shared memory, or posting it to the workers fails at run time.
grep -q 'shared' "$out/threads/clipmatch.js" || { echo "error: $out/threads/ was built without shared memory" >&2; exit 1; }
echo "built $out/ and $out/threads/"
