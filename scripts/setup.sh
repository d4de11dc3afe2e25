#!/usr/bin/env bash
# Installs everything `scripts/test.sh` needs. Idempotent: every step checks first and
# is skipped when its tool is already present, so a warm run takes about a second.
#
#   - rustup target wasm32-unknown-unknown
#   - wasm-pack            (cargo install --locked at the pinned version: its own Cargo.lock; its
#                           npm package downloads from GitHub, which is unreachable here)
#   - wasm-bindgen-cli     (EXACTLY the `wasm-bindgen` version pinned in Cargo.lock; provides
#                           wasm-bindgen and wasm-bindgen-test-runner)
#   - Debian chromium + chromium-driver (apt-get; the test tools must not download a browser
#                           or a driver, and the two major versions must agree)
#   - Debian firefox-esr, webkit2gtk-driver (WebKitWebDriver and, through its dependency
#                           libwebkit2gtk-4.1-0, MiniBrowser) and xvfb (WebKitGTK has no headless
#                           mode): the other engines' end-to-end tests and `wasm-pack test --firefox`
#   - geckodriver          (cargo install --locked at the pinned version; Debian has no package)
#
# From scratch on a 2-core machine the cargo installs take several minutes
# (wasm-pack ~4 min, wasm-bindgen-cli ~4 min, geckodriver ~2 min) and apt a few minutes.
set -euo pipefail

# Pinned so fresh machines get a known-good version; an already installed wasm-pack is kept.
WASM_PACK_VERSION="${WASM_PACK_VERSION:-0.15.1}"
GECKODRIVER_VERSION="${GECKODRIVER_VERSION:-0.37.1}"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# rustup's installer puts cargo in ~/.cargo/bin, which a non-login CI shell may lack.
if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
  # shellcheck disable=SC1091
  . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust with rustup first"
command -v rustup >/dev/null 2>&1 || die "rustup not found; install Rust with rustup first"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$cargo_bin:"*) ;; *) export PATH="$cargo_bin:$PATH" ;; esac

# --- 1. wasm32 target ------------------------------------------------------------------
if rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
  log "rust target wasm32-unknown-unknown: present"
else
  log "installing rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# --- 1b. pinned nightly with rust-src: only for the multi-threaded wasm build (pkg/threads/) ---
source scripts/toolchains.sh
if rustup toolchain list | grep -q "^$NIGHTLY_TOOLCHAIN" &&
   rustup component list --toolchain "$NIGHTLY_TOOLCHAIN" --installed 2>/dev/null | grep -q '^rust-src'; then
  log "rust toolchain $NIGHTLY_TOOLCHAIN with rust-src: present"
else
  log "installing rust toolchain $NIGHTLY_TOOLCHAIN with rust-src and the wasm32 target (multi-threaded wasm)"
  rustup toolchain install "$NIGHTLY_TOOLCHAIN" --profile minimal -c rust-src -t wasm32-unknown-unknown
fi

# --- 2. wasm-pack ----------------------------------------------------------------------
if command -v wasm-pack >/dev/null 2>&1; then
  log "wasm-pack: present ($(wasm-pack --version))"
else
  log "installing wasm-pack $WASM_PACK_VERSION (cargo install; takes a few minutes)"
  start=$SECONDS
  cargo install wasm-pack --version "$WASM_PACK_VERSION" --locked
  log "installed $(wasm-pack --version) in $((SECONDS - start))s"
fi

# --- 3. wasm-bindgen-cli at exactly the Cargo.lock version ---------------------------
if [ ! -f Cargo.lock ]; then
  log "Cargo.lock missing; generating it"
  cargo generate-lockfile
fi
# Cargo.lock entries are `[[package]]` / `name = "..."` / `version = "..."`.
bindgen_versions="$(awk '
  /^\[\[package\]\]/ { name = "" }
  /^name = / { name = $3; gsub(/"/, "", name) }
  /^version = / && name == "wasm-bindgen" { v = $3; gsub(/"/, "", v); print v }
' Cargo.lock | sort -u)"
[ -n "$bindgen_versions" ] || die "no wasm-bindgen package in Cargo.lock"
[ "$(printf '%s\n' "$bindgen_versions" | wc -l)" -eq 1 ] ||
  die "several wasm-bindgen versions in Cargo.lock: $(echo $bindgen_versions)"
WASM_BINDGEN_VERSION="$bindgen_versions"

installed_bindgen=""
if command -v wasm-bindgen >/dev/null 2>&1; then
  installed_bindgen="$(wasm-bindgen --version | awk '{print $2}')"
fi
if [ "$installed_bindgen" = "$WASM_BINDGEN_VERSION" ] && command -v wasm-bindgen-test-runner >/dev/null 2>&1; then
  log "wasm-bindgen-cli: present ($WASM_BINDGEN_VERSION, matches Cargo.lock)"
else
  log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (Cargo.lock pins it; found: ${installed_bindgen:-none})"
  start=$SECONDS
  # No --locked: wasm-bindgen-cli 0.2.130's own Cargo.lock pins webpki-roots 1.0.11, which the
  # registry no longer serves (checked 2026-11-29: "failed to select a version ... locked to
  # 1.0.11"); the exact version is still pinned by --version and checked below.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
  log "installed wasm-bindgen-cli $WASM_BINDGEN_VERSION in $((SECONDS - start))s"
  hash -r
  now="$(wasm-bindgen --version | awk '{print $2}')"
  [ "$now" = "$WASM_BINDGEN_VERSION" ] ||
    die "wasm-bindgen on PATH ($(command -v wasm-bindgen)) is $now, expected $WASM_BINDGEN_VERSION"
fi

# --- 4. Browsers and their drivers (Debian packages) ------------------------------------
# Each package with a command it provides: present when both are.
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
browser_pkgs=(chromium:chromium chromium-driver:chromedriver firefox-esr:firefox-esr webkit2gtk-driver:WebKitWebDriver xvfb:Xvfb)
missing_pkgs=()
for entry in "${browser_pkgs[@]}"; do
  pkg="${entry%%:*}" cmd="${entry#*:}"
  if ! pkg_installed "$pkg" || ! command -v "$cmd" >/dev/null 2>&1; then missing_pkgs+=("$pkg"); fi
done
if [ ${#missing_pkgs[@]} -eq 0 ]; then
  log "chromium, chromium-driver, firefox-esr, webkit2gtk-driver, xvfb: present"
else
  command -v apt-get >/dev/null 2>&1 ||
    die "${missing_pkgs[*]} missing and apt-get unavailable; install them by hand"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install ${missing_pkgs[*]}"
    sudo_cmd=(sudo)
  fi
  log "installing ${missing_pkgs[*]} (apt-get)"
  start=$SECONDS
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_pkgs[@]}" </dev/null
  log "installed ${missing_pkgs[*]} in $((SECONDS - start))s"
  hash -r
fi

# --- 5. geckodriver (crates.io) -----------------------------------------------------------
if command -v geckodriver >/dev/null 2>&1; then
  log "geckodriver: present ($(geckodriver --version 2>/dev/null | sed -n 1p))"
else
  log "installing geckodriver $GECKODRIVER_VERSION (cargo install; takes a few minutes)"
  start=$SECONDS
  cargo install geckodriver --version "$GECKODRIVER_VERSION" --locked
  log "installed $(geckodriver --version 2>/dev/null | sed -n 1p) in $((SECONDS - start))s"
fi

# The Debian launcher script prints harmless shell noise on stderr; keep stdout only.
chromium_version="$(chromium --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+){3}' | head -n1 || true)"
driver_version="$(chromedriver --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+){3}' | head -n1 || true)"
[ -n "$chromium_version" ] || die "could not read 'chromium --version'"
[ -n "$driver_version" ] || die "could not read 'chromedriver --version'"
if [ "${chromium_version%%.*}" != "${driver_version%%.*}" ]; then
  die "chromium $chromium_version and chromedriver $driver_version differ in major version; apt-get install --only-upgrade chromium chromium-driver"
fi

log "ready: $(rustc --version), $(wasm-pack --version), wasm-bindgen $WASM_BINDGEN_VERSION,"
log "       chromium $chromium_version, chromedriver $driver_version ($(command -v chromedriver)),"
log "       $(firefox-esr --version 2>/dev/null), $(geckodriver --version 2>/dev/null | sed -n 1p), webkit2gtk-driver $(dpkg-query -W -f='${Version}' webkit2gtk-driver)"
