#!/usr/bin/env bash
# Downloads openai/clip-vit-base-patch32 from the Hugging Face hub into DIR (default
# models/clip-vit-base-patch32). model.safetensors is checked against the sha256 the hub
# publishes for it (the X-Linked-Etag of its LFS object). Exits non-zero, saying why, when the hub
# cannot be reached.
set -euo pipefail
dir="${1:-models/clip-vit-base-patch32}"
repo="https://huggingface.co/openai/clip-vit-base-patch32/resolve/main"
mkdir -p "$dir"
if [ -f "$dir/.complete" ]; then echo "model already in $dir"; exit 0; fi
for f in config.json tokenizer.json preprocessor_config.json; do
  curl -fsSL --connect-timeout 10 -o "$dir/$f.part" "$repo/$f" || { echo "cannot download $f from the hub" >&2; exit 1; }
  mv "$dir/$f.part" "$dir/$f"
done
expected=$(curl -fsSI --connect-timeout 10 "$repo/model.safetensors" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-linked-etag" {gsub(/"/, "", $2); print $2}')
if [ -z "$expected" ]; then echo "the hub did not say the sha256 of model.safetensors" >&2; exit 1; fi
curl -fL --connect-timeout 10 -o "$dir/model.safetensors.part" "$repo/model.safetensors"
actual=$(sha256sum "$dir/model.safetensors.part" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
  echo "model.safetensors is damaged: sha256 $actual, the hub says $expected" >&2
  rm -f "$dir/model.safetensors.part"; exit 1
fi
mv "$dir/model.safetensors.part" "$dir/model.safetensors"
touch "$dir/.complete"
echo "model downloaded to $dir (sha256 $actual verified)"
