# Sourced by the scripts: the pinned nightly toolchain of the multi-threaded wasm build.
# Pinned so a new nightly cannot break the build; rust-src is needed to rebuild std with atomics.
NIGHTLY_TOOLCHAIN="${NIGHTLY_TOOLCHAIN:-nightly-2026-10-30}"
