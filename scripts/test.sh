#!/usr/bin/env bash
# The project's single test command (CI runs it through .ci/run):
#   1. scripts/setup.sh                  (toolchain, wasm-pack, wasm-bindgen-cli, Chromium, Firefox ESR
#                                         + geckodriver, WebKitGTK's WebKitWebDriver + Xvfb)
#   2. python3 -m unittest (tests/scripts: the project's scripts, e.g. the model download, against a fake hub)
#      and cargo test --release          (native: all targets, then doc tests)
#   3. wasm-pack test --headless --chrome --release   (wasm32 + SIMD128 in headless Chromium), the
#      same in headless Firefox ESR (--firefox), and the benchmarks' build (`--features bench`)
#      type-checked
#   4. end to end: the page in Chromium, on the product packages (pkg/ and pkg/candle/, without the
#      bench or test entry points), with an OpenAI CLIP bundle and a MobileCLIP one; the tests' own
#      page (tests/e2e/hooks/) also on target/e2e/test-pkg/ (`--features test-hooks`); then the core
#      paths in Firefox ESR and WebKitGTK (with and without SharedArrayBuffer), through WebDriver
#
# Environment:
#   CLIPMATCH_SKIP_BROWSER=1    skip step 3 (quick local runs; CI runs everything)
#   WASM_BINDGEN_TEST_TIMEOUT   seconds the browser runner waits for ALL tests of one test binary
#                               (they share one page) before failing with "Failed to detect test as
#                               having been run. It might have timed out."; wasm-bindgen's default is
#                               20, far too short for model tests, so the default here is 600
#   WASM_BINDGEN_TEST_DRIVER_TIMEOUT  seconds for chromedriver or geckodriver to start (wasm-bindgen
#                               default 5; 30 here)
#   CARGO_TERM_COLOR            respected if set; otherwise colour only on an interactive terminal
#
# Runs from any directory. Exits non-zero as soon as a step fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"

if [ -z "${CARGO_TERM_COLOR:-}" ]; then
  if [ -t 1 ] && [ -z "${CI:-}" ]; then export CARGO_TERM_COLOR=auto; else export CARGO_TERM_COLOR=never; fi
fi
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT="${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-30}"

if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
  # shellcheck disable=SC1091
  . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$cargo_bin:"*) ;; *) export PATH="$cargo_bin:$PATH" ;; esac

suite_start=$SECONDS
current=""
section() {
  current="$1"
  section_start=$SECONDS
  printf '\n==================== %s ====================\n' "$1"
}
section_done() { printf -- '---- %s: ok (%ss)\n' "$current" "$((SECONDS - section_start))"; }
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    printf '\n==================== FAILED: %s (exit %s) ====================\n' "${current:-?}" "$rc" >&2
  fi
}
trap on_exit EXIT

section "setup"
"$repo_root/scripts/setup.sh"
section_done

section "script tests: python3 -m unittest (tests/scripts)"
python3 -m unittest discover -s "$repo_root/tests/scripts"
section_done

section "native tests: cargo test --release --all-targets"
cargo test --release --all-targets
section_done

section "native doc tests: cargo test --release --doc"
cargo test --release --doc
section_done

if [ "${CLIPMATCH_SKIP_BROWSER:-0}" = "1" ]; then
  printf '\n==================== browser tests: SKIPPED (CLIPMATCH_SKIP_BROWSER=1) ====================\n'
else
  section "browser tests: wasm-pack test --headless --chrome/--firefox --release (Chromium, Firefox ESR; wasm32+simd128)"
  # --chromedriver: use Debian's driver (matches Debian's Chromium); never download one.
  # --mode no-install: use the wasm-bindgen-cli that setup.sh installed; never download one.
  # webdriver.json (crate root) adds the Chromium flags (--no-sandbox, no background networking, ...).
  # -- --lib --test '*': the library and the test files, not the examples (native timing tools that read
  # files, some with native-only modules such as the weight export); with the candle engine, as
  # pkg/candle/ has it (every family loads in Chromium).
  wasm-pack test --headless --chrome --chromedriver "$(command -v chromedriver)" \
    --release --mode no-install -- --features candle-engine --lib --test '*'
  # The same tests in Firefox ESR (setup.sh's geckodriver; the build above is reused).
  wasm-pack test --headless --firefox --geckodriver "$(command -v geckodriver)" \
    --release --mode no-install -- --features candle-engine --lib --test '*'
  # The browser benchmarks' entry points (src/web/bench.rs) are only built with this feature.
  cargo check --release --lib --target wasm32-unknown-unknown --features bench
  section_done
fi

if [ "${CLIPMATCH_SKIP_BROWSER:-0}" != "1" ]; then
  section "end-to-end: the page in Chromium (tests/e2e, playwright-core + node:test)"
  tokenizer="${CLIPMATCH_SHARED_DATA:-$repo_root/../shared/data}/clip-vit-base-patch32/tokenizer.json"
  grocery="${CLIPMATCH_SHARED_DATA:-$repo_root/../shared/data}/grocery-packages"
  if [ ! -f "$tokenizer" ] || [ ! -d "$grocery/iconic" ]; then
    printf 'SKIPPED: %s or %s is absent\n' "$tokenizer" "$grocery/iconic"
  else
    scripts/build_wasm.sh
    # The product ships no benchmark or test entry points (they come with `--features bench` or
    # `--features test-hooks` only; tests/e2e/shipped.mjs checks the rest of what ships).
    if grep -lE 'RankBench|embedPixelValues|panicForTest' pkg/clipmatch.js pkg/threads/clipmatch.js pkg/candle/clipmatch.js pkg/candle/threads/clipmatch.js; then
      echo "error: the files above export benchmark- or test-only entry points" >&2
      exit 1
    fi
    e2e="$repo_root/target/e2e"
    # The tests' own package: pkg/'s, plus the test-only panicForTest (tests/e2e/hooks/ serves it
    # as pkg/ to make a real panic). Never shipped.
    wasm-pack build --target web --release --out-dir "$e2e/test-pkg" --mode no-install --no-pack -- --features test-hooks
    CLIPMATCH_MODEL="$repo_root/tests/fixtures/tiny-clip" CLIPMATCH_TOKENIZER="$tokenizer" \
      target/release/clipmatch build "$grocery/iconic" --name-from folder --text-weight 1.2 --image-weight 0.7 --out "$e2e/catalog"
    # f16, not OpenAI CLIP's default int8: the page's rankings are compared with `clipmatch query`
    # on the folder's f32 model, to 1e-4 (int8 pages: hardening.mjs, and shop.mjs, which takes the default).
    CLIPMATCH_MODEL="$repo_root/tests/fixtures/tiny-clip" \
      target/release/clipmatch bundle --catalog "$e2e/catalog" --dtype f16 --out "$e2e/bundle"
    # A compact bundle: the same products with compact codes, taken by the page's compact path
    # (the tiny model's 16-dim vectors: 8 bytes a code).
    CLIPMATCH_MODEL="$repo_root/tests/fixtures/tiny-clip" CLIPMATCH_TOKENIZER="$tokenizer" \
      target/release/clipmatch build "$grocery/iconic" --name-from folder --compact --compact-bytes 8 --compact-min-items 1 --out "$e2e/compact-catalog"
    CLIPMATCH_MODEL="$repo_root/tests/fixtures/tiny-clip" \
      target/release/clipmatch bundle --catalog "$e2e/compact-catalog" --dtype f16 --out "$e2e/compact-bundle"
    # A MobileCLIP bundle: the narrow fixture model (its folder has no tokenizer.json; the hub's
    # MobileCLIP folders carry CLIP's, which is used here).
    mobileclip="$repo_root/tests/fixtures/models/mobileclip2-s0-narrow"
    CLIPMATCH_TOKENIZER="$tokenizer" \
      target/release/clipmatch build "$grocery/iconic" --name-from folder --model "$mobileclip" --out "$e2e/mobileclip-catalog"
    # Tuned on the labelled grocery photos, so the page shows where tuned weights came from.
    CLIPMATCH_TOKENIZER="$tokenizer" \
      target/release/clipmatch tune --catalog "$e2e/mobileclip-catalog" --photos "$grocery/photos" --model "$mobileclip"
    target/release/clipmatch bundle --catalog "$e2e/mobileclip-catalog" --model "$mobileclip" --out "$e2e/mobileclip-bundle"
    # A ViT-B/32-sized int8 bundle (random weights of the real sizes, made once) for threads.mjs:
    # threads on fewer cores than threads are timed on products of a real tower's size.
    b32="$e2e/clip-vit-b32-random"
    # Random weights of ViT-B/32's real size, written by this crate (no Python needed).
    [ -f "$b32/model.safetensors" ] || cargo run --release --example random_clip -- "$(dirname "$tokenizer")" "$b32"
    CLIPMATCH_TOKENIZER="$tokenizer" \
      target/release/clipmatch build "$grocery/iconic" --name-from folder --model "$b32" --out "$e2e/b32-catalog"
    target/release/clipmatch bundle --catalog "$e2e/b32-catalog" --model "$b32" --dtype int8 --out "$e2e/b32-bundle"
    npm ci --prefix tests/e2e --no-audit --no-fund
    (cd tests/e2e && CLIPMATCH_E2E_BUNDLE="$e2e/bundle" CLIPMATCH_E2E_B32_BUNDLE="$e2e/b32-bundle" CLIPMATCH_E2E_MOBILECLIP_BUNDLE="$e2e/mobileclip-bundle" CLIPMATCH_E2E_COMPACT_BUNDLE="$e2e/compact-bundle" CLIPMATCH_E2E_TEST_PKG="$e2e/test-pkg" CLIPMATCH_E2E_GROCERY="$grocery" \
      node --test --test-force-exit --test-concurrency=1 --test-reporter=spec app.test.mjs)
    echo "screenshots: $repo_root/test-output/e2e/"
  fi
  section_done

  section "end-to-end: the core paths in Firefox ESR and WebKitGTK (tests/e2e/engines.test.mjs, WebDriver)"
  if [ ! -f "$tokenizer" ] || [ ! -d "$grocery/iconic" ]; then
    printf 'SKIPPED: %s or %s is absent\n' "$tokenizer" "$grocery/iconic"
  else
    # The bundles and packages built for the Chromium tests above.
    (cd tests/e2e && CLIPMATCH_E2E_BUNDLE="$e2e/bundle" CLIPMATCH_E2E_MOBILECLIP_BUNDLE="$e2e/mobileclip-bundle" CLIPMATCH_E2E_COMPACT_BUNDLE="$e2e/compact-bundle" CLIPMATCH_E2E_GROCERY="$grocery" \
      node --test --test-force-exit --test-concurrency=1 --test-reporter=spec engines.test.mjs)
    echo "screenshots: $repo_root/test-output/e2e/{firefox,webkit-sab,webkit}-*.png"
  fi
  section_done
fi

current=""
printf '\n==================== all tests passed (%ss) ====================\n' "$((SECONDS - suite_start))"
