#!/usr/bin/env bash
# The README's main command: builds the wasm package, a demo catalog of the 31 grocery products and
# its browser bundle, then serves the app on http://127.0.0.1:${PORT:-8000}/.
#
#   CLIPMATCH_MODEL=DIR|HUB_ID  a model folder (any supported layout, see README "Getting the model"),
#                         or a supported hub id (e.g. timm/MobileCLIP2-S0-OpenCLIP), downloaded into
#                         models/<name> with every file checked (scripts/download_model.sh); default
#                         openai/clip-vit-base-patch32
#   CLIPMATCH_GROCERY=DIR the grocery data (default ../shared/data/grocery-packages; otherwise the
#                         public GroceryStoreDataset repository is downloaded, MIT licence)
#   PORT                  port to serve on (default 8000); CLIPMATCH_NO_SERVE=1 builds only
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$cargo_bin:"*) ;; *) export PATH="$cargo_bin:$PATH" ;; esac

scripts/setup.sh

echo "== wasm packages (pkg/, pkg/threads/, pkg/candle/, pkg/candle/threads/)"
scripts/build_wasm.sh

echo "== catalog tool"
cargo build --release --bin clipmatch
tool="$root/target/release/clipmatch"

echo "== model"
model="${CLIPMATCH_MODEL:-openai/clip-vit-base-patch32}"
if [ ! -d "$model" ]; then
  hub_id="$model"
  model="$root/models/${hub_id##*/}"
  scripts/download_model.sh "$hub_id" "$model" || {
    cat >&2 <<MSG
error: no model. Set CLIPMATCH_MODEL to a model folder (e.g. openai/clip-vit-base-patch32 or
timm/MobileCLIP2-S0-OpenCLIP downloaded on a machine with access to huggingface.co) or to a
supported hub id. See README.md, "Getting the model".
MSG
    exit 1
  }
fi
echo "model: $model"

echo "== demo catalog"
grocery="${CLIPMATCH_GROCERY:-$root/../shared/data/grocery-packages}"
if [ -d "$grocery/iconic" ]; then
  products="$grocery/iconic"
else
  scripts/download_grocery.sh "$root/models/GroceryStoreDataset"
  products="$root/models/GroceryStoreDataset/dataset/iconic-images-and-descriptions/Packages"
fi
"$tool" build "$products" --name-from folder --model "$model" --out "$root/target/demo-catalog"
"$tool" bundle --catalog "$root/target/demo-catalog" --model "$model" --out "$root/www/demo"

if [ "${CLIPMATCH_NO_SERVE:-0}" = "1" ]; then exit 0; fi
echo "== serving http://127.0.0.1:${PORT:-8000}/ (Ctrl+C stops)"
# Cross-origin isolated (COOP/COEP headers), so the page can use the multi-threaded build.
exec python3 scripts/static_server.py --isolate --csp --port "${PORT:-8000}" --dir "$root"
