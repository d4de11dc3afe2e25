#!/usr/bin/env bash
# Downloads the public GroceryStoreDataset (MIT licence) into DIR, for the demo catalog when
# ../shared/data/grocery-packages is not there. Pinned to one commit (the one the shared copy
# was taken from), so the demo catalog is the same wherever it is built.
set -euo pipefail
dir="${1:-models/GroceryStoreDataset}"
commit="fc80ba90f803d79d0383df52c5a4ac5de99ff6fc"
if [ -d "$dir/dataset/iconic-images-and-descriptions/Packages" ] &&
   [ "$(git -C "$dir" rev-parse HEAD 2>/dev/null)" = "$commit" ]; then
  exit 0
fi
rm -rf "$dir.part"
{
  git init -q "$dir.part" &&
  git -C "$dir.part" fetch -q --depth 1 https://github.com/marcusklasson/GroceryStoreDataset.git "$commit" &&
  git -C "$dir.part" checkout -q FETCH_HEAD &&
  [ "$(git -C "$dir.part" rev-parse HEAD)" = "$commit" ]
} || {
  rm -rf "$dir.part"
  echo "cannot download GroceryStoreDataset at commit $commit; set CLIPMATCH_GROCERY to a folder with iconic/ product images" >&2
  exit 1
}
rm -rf "$dir"
mv "$dir.part" "$dir"
