#!/usr/bin/env bash
# Builds the wasm packages:
#   scripts/build_wasm.sh          the page's (the product, what `pkg/` ships):
#     pkg/          single-threaded (stable Rust, SIMD128): every browser; OpenAI CLIP on this
#                   crate's kernels only
#     pkg/threads/  multi-threaded (nightly Rust, std rebuilt with atomics, rayon on Web Workers via
#                   wasm-bindgen-rayon): used by www/worker.js where the page is cross-origin isolated
#     pkg/candle/, pkg/candle/threads/  the same two with the candle engine (`--features
#                   candle-engine`: MobileCLIP, SigLIP, OpenAI CLIP with ?engine=candle), about
#                   2.8 MB larger; www/weights.js picks the package a bundle's family needs, so a
#                   page never downloads an engine it does not run
#   scripts/build_wasm.sh --bench  the browser benchmarks' (benches/browser/): one pair with
#     `--features bench,candle-engine` (RankBench, Matcher.embedPixelValues, every family), in
#     target/bench-pkg/ and target/bench-pkg/threads/; never in pkg/.
# CLIPMATCH_NO_THREADS=1 skips the threaded builds. Needs what scripts/setup.sh installs (the
# nightly toolchain named there, with rust-src, for the threaded build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/toolchains.sh

# A separate target folder: other RUSTFLAGS would otherwise rebuild the stable one every time.
threads_target="${CARGO_TARGET_DIR:-target}/threads"
# Since nightly-2025-10-03 atomics no longer imply a shared memory: the linker is asked for one,
# imported (wasm-bindgen creates it and hands it to every worker), with the TLS symbols the
# workers' start-up needs. Its maximum, 1 GiB, is what phones must grant when it is made (iOS
# Safari refuses large shared memories; www/threads.js then runs one thread and says so): the
# shipped models' peak in the threaded build is well under it (BENCHMARKS.md "Threads on a
# phone"), with room for the photo decoder's 192 MiB at most; past it an allocation traps and the
# page says the model ran out of memory.
link_args=(--shared-memory --import-memory --max-memory=1073741824
           --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base)

# One package and its threaded twin: build_pair OUT_DIR FEATURES (comma-separated, may be empty).
build_pair() {
  local out="$1" features="$2"
  wasm-pack build --target web --release --out-dir "$out" --mode no-install --no-pack ${features:+-- --features "$features"}
  if [ "${CLIPMATCH_NO_THREADS:-0}" = "1" ]; then
    rm -rf "$out/threads"
    echo "built $out/"
    return
  fi
  RUSTUP_TOOLCHAIN="$NIGHTLY_TOOLCHAIN" \
  RUSTFLAGS='-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 --cfg getrandom_backend="wasm_js"' \
    cargo rustc --lib --release --target wasm32-unknown-unknown --features "threads${features:+,$features}" \
      --target-dir "$threads_target" -Z build-std=panic_abort,std -- "${link_args[@]/#/-Clink-arg=}"
  wasm-bindgen --target web --out-dir "$out/threads" \
    "$threads_target/wasm32-unknown-unknown/release/clipmatch.wasm"
  # wasm-bindgen-rayon 1.3.0 (the newest on crates.io) starts each thread with
  # `pkg.default(module, memory)`, which this wasm-bindgen's glue accepts but warns about in every
  # thread's console ("using deprecated parameters for the initialization function"): the same
  # two values are passed as the one object the glue asks for, with each thread's stack size.
  # wasm-bindgen gives a thread 2 MiB of the shared memory by default; 1 MiB is the stack the
  # calling thread runs every model's whole forward pass on (rustc's default for wasm32), of which
  # a pool thread runs only parts: 1 MiB less page memory per thread (BENCHMARKS.md).
  helpers=("$out"/threads/snippets/wasm-bindgen-rayon-*/src/workerHelpers.no-bundler.js)
  old='pkg.default(data.module, data.memory)'
  new='pkg.default({ module_or_path: data.module, memory: data.memory, thread_stack_size: 1048576 })'
  grep -qF "$old" "${helpers[0]}" || { echo "error: ${helpers[0]} no longer calls $old: check this step" >&2; exit 1; }
  sed -i "s|pkg.default(data.module, data.memory)|$new|" "${helpers[0]}"
  # The glue must create a shared memory, or posting it to the workers fails at run time.
  grep -q 'shared' "$out/threads/clipmatch.js" || { echo "error: $out/threads/ was built without shared memory" >&2; exit 1; }
  echo "built $out/ and $out/threads/"
}

case "${1:-}" in
  "")
    build_pair pkg ""
    build_pair pkg/candle candle-engine
    # The list of the app's files with their sha256, which the service worker keeps for offline use.
    python3 scripts/app_files.py
    ;;
  --bench) build_pair target/bench-pkg bench,candle-engine ;;
  *) echo "usage: scripts/build_wasm.sh [--bench]" >&2; exit 2 ;;
esac
