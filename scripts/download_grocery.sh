#!/usr/bin/env bash
# Downloads the public GroceryStoreDataset (MIT licence) into DIR, for the demo catalog when
# ../shared/data/grocery-packages is not there.
set -euo pipefail
dir="${1:-models/GroceryStoreDataset}"
if [ -d "$dir/dataset/iconic-images-and-descriptions/Packages" ]; then exit 0; fi
git clone --depth 1 https://github.com/marcusklasson/GroceryStoreDataset.git "$dir" || {
  echo "cannot download GroceryStoreDataset; set CLIPMATCH_GROCERY to a folder with iconic/ product images" >&2
  exit 1
}
