#!/usr/bin/env bash
# Downloads openai/clip-vit-base-patch32 from the Hugging Face hub into DIR (default
# models/clip-vit-base-patch32), pinned to one revision (a commit of the hub repository, so the
# files cannot change under the same URL).
#
# Checks, before a file is moved into place:
#   - model.safetensors and tokenizer.json: size and sha256 pinned below;
#   - config.json and preprocessor_config.json: their git blob id, which the hub sends as the
#     ETag of a non-LFS file at that revision, recomputed here (`git hash-object`); their sha256
#     is then printed and written to DIR/SHA256SUMS.
# A file that fails its check is deleted and the script exits non-zero, saying which file.
# Exits non-zero, saying why, when the hub cannot be reached.
#
#   CLIPMATCH_MODEL_REVISION  another revision (then only sizes printed by the hub are checked for
#                             the pinned files, and the script says so)
set -euo pipefail
dir="${1:-models/clip-vit-base-patch32}"
repo_id="openai/clip-vit-base-patch32"
pinned_revision="b33cedfd0df4e43b8238760678fcc89e1a0d38b3"
revision="${CLIPMATCH_MODEL_REVISION:-$pinned_revision}"
base="https://huggingface.co/$repo_id/resolve/$revision"
# name : bytes : sha256 (at the pinned revision)
pinned="
model.safetensors:605157884:99d28a652e6ec46629ab7047a0ac82c69b1fe11e0ce672c43af65d3a9a3fc05d
tokenizer.json:2224041:b556ac8c99757ffb677208af34bc8c6721572114111a6e0aaf5fa69ff0b8d842
"

mkdir -p "$dir"
if [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$revision" ]; then
  echo "model already in $dir (revision $revision)"; exit 0
fi

fail() { echo "download_model.sh: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

fetch() { # name -> $dir/name.part
  curl -fsSL --connect-timeout 10 --retry 2 -o "$dir/$1.part" "$base/$1" ||
    { rm -f "$dir/$1.part"; fail "cannot download $1 of $repo_id at $revision from the hub"; }
}

for name in model.safetensors tokenizer.json; do
  line="$(printf '%s\n' "$pinned" | grep "^$name:")"
  want_bytes="$(echo "$line" | cut -d: -f2)"; want_sha="$(echo "$line" | cut -d: -f3)"
  fetch "$name"
  got_bytes="$(wc -c < "$dir/$name.part" | tr -d ' ')"; got_sha="$(sha256 "$dir/$name.part")"
  if [ "$revision" = "$pinned_revision" ] && { [ "$got_bytes" != "$want_bytes" ] || [ "$got_sha" != "$want_sha" ]; }; then
    rm -f "$dir/$name.part"
    fail "$name is $got_bytes bytes with sha256 $got_sha; the pin says $want_bytes bytes and $want_sha"
  fi
  [ "$revision" = "$pinned_revision" ] || echo "warning: revision $revision is not the pinned one; $name not checked against a pin" >&2
  mv "$dir/$name.part" "$dir/$name"
done

for name in config.json preprocessor_config.json; do
  etag="$(curl -fsSI --connect-timeout 10 "$base/$name" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="etag" {gsub(/"|W\//, "", $2); print $2}')"
  [ -n "$etag" ] || fail "the hub did not give the git blob id of $name"
  fetch "$name"
  blob="$(git hash-object "$dir/$name.part")"
  if [ "$blob" != "$etag" ]; then
    rm -f "$dir/$name.part"
    fail "$name has git blob id $blob; the hub says $etag for revision $revision"
  fi
  mv "$dir/$name.part" "$dir/$name"
done

(cd "$dir" && sha256sum model.safetensors tokenizer.json config.json preprocessor_config.json > SHA256SUMS)
echo "$revision" > "$dir/.complete"
echo "model downloaded to $dir (revision $revision); sha256 of each file in $dir/SHA256SUMS"
