#!/usr/bin/env bash
# Times `clipmatch build` of 781 photos against `build --update` after 1 % of them (8 photos)
# changed, and a build killed halfway (SIGKILL) against its resumed run; checks that the resumed
# catalog equals the uninterrupted one byte for byte.
#
# The 781 photos: the 131 grocery photos (../shared/data/grocery-packages, iconic + photos) in
# six variants each (as they are, mirrored, cropped, turned, brighter, smaller; Pillow), the first
# 781, written under $WORK. Every file differs, so nothing is embedded twice.
#
#   scripts/bench_grow.sh [--runs-full 3] [--runs-update 5]
#   CLIPMATCH_MODEL (default models/clip-b32-random), WORK (default /tmp/clipmatch-grow-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS_FULL=3
RUNS_UPDATE=5
while [ $# -gt 0 ]; do
    case "$1" in
        --runs-full) RUNS_FULL=$2; shift 2 ;;
        --runs-update) RUNS_UPDATE=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 1 ;;
    esac
done
export CLIPMATCH_MODEL=${CLIPMATCH_MODEL:-models/clip-b32-random}
GROCERY=${CLIPMATCH_GROCERY:-../shared/data/grocery-packages}
WORK=${WORK:-/tmp/clipmatch-grow-bench}
EXE=$PWD/target/release/clipmatch
[ -x "$EXE" ] || cargo build --release
mkdir -p "$WORK"

python3 - "$GROCERY" "$WORK/src" <<'EOF'
import os, sys
from PIL import Image, ImageEnhance, ImageOps
grocery, out = sys.argv[1], sys.argv[2]
if os.path.isdir(out):
    sys.exit(0)
files = sorted(os.path.join(r, f) for sub in ("iconic", "photos") for r, _, fs in os.walk(os.path.join(grocery, sub))
               for f in fs if f.lower().endswith(".jpg"))
variants = [
    ("orig", lambda im: im),
    ("mirror", ImageOps.mirror),
    ("crop", lambda im: im.crop((im.width // 12, im.height // 12, im.width - im.width // 12, im.height - im.height // 12))),
    ("rot", lambda im: im.rotate(90, expand=True)),
    ("bright", lambda im: ImageEnhance.Brightness(im).enhance(1.15)),
    ("small", lambda im: im.resize((im.width * 4 // 5, im.height * 4 // 5))),
]
jobs = [(v, fn, f) for v, fn in variants for f in files][:781]
for v, fn, f in jobs:
    rel = os.path.relpath(f, grocery)
    d = os.path.join(out, v, os.path.dirname(rel))
    os.makedirs(d, exist_ok=True)
    fn(Image.open(f).convert("RGB")).save(os.path.join(d, f"{v}-{os.path.basename(f)}"), quality=90)
EOF
echo "photos: $(find "$WORK/src" -type f | wc -l)"

# The changed source: a copy with every 98th photo turned by 3 degrees (8 of 781).
rm -rf "$WORK/changed"
cp -r "$WORK/src" "$WORK/changed"
python3 - "$WORK/changed" <<'EOF'
import os, sys
from PIL import Image
files = sorted(os.path.join(r, f) for r, _, fs in os.walk(sys.argv[1]) for f in fs)
for f in files[::98]:
    Image.open(f).rotate(3).save(f, quality=90)
print(f"changed {len(files[::98])} of {len(files)} photos")
EOF

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
timed() { local t0 t1; t0=$(date +%s.%N); nice -n 5 "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; return 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }

echo "load before: $(uptime)"
full=()
for r in $(seq "$RUNS_FULL"); do
    rm -rf "$WORK/full"
    full+=("$(timed "$EXE" build "$WORK/src" --out "$WORK/full" --updatable)")
    echo "full build $r: ${full[-1]} s   ($(uptime | sed 's/.*load/load/'))"
done
update=()
for r in $(seq "$RUNS_UPDATE"); do
    rm -rf "$WORK/updated"
    update+=("$(timed "$EXE" build "$WORK/changed" --update "$WORK/full" --out "$WORK/updated")")
    echo "update $r: ${update[-1]} s   ($(uptime | sed 's/.*load/load/'))"
done
nice -n 5 "$EXE" build "$WORK/changed" --update "$WORK/full" --out "$WORK/updated" 2>/dev/null | tail -1

# Killed halfway: SIGKILL once the checkpoint holds about half of the images (2.1 KB a record).
rm -rf "$WORK/resumed" "$WORK/.resumed.build"
nice -n 5 "$EXE" build "$WORK/src" --out "$WORK/resumed" --updatable >/dev/null 2>&1 &
pid=$!
t0=$(date +%s.%N)
while [ "$(stat -c %s "$WORK/.resumed.build/checkpoint.bin" 2>/dev/null || echo 0)" -lt $((390 * 2150)) ]; do sleep 0.05; done
kill -9 $pid; wait $pid 2>/dev/null || true
t1=$(date +%s.%N)
resumed=$(timed "$EXE" build "$WORK/src" --out "$WORK/resumed" --updatable)
identical=yes
cmp -s "$WORK/resumed/vectors.bin" "$WORK/full/vectors.bin" && cmp -s "$WORK/resumed/catalog.json" "$WORK/full/catalog.json" \
    && diff -r -q "$WORK/resumed/thumbs" "$WORK/full/thumbs" >/dev/null || identical=no
echo "load after: $(uptime)"

fm=$(printf '%s\n' "${full[@]}" | median)
um=$(printf '%s\n' "${update[@]}" | median)
echo
echo "full build (781 photos), median of $RUNS_FULL: $fm s   (runs: ${full[*]})"
echo "update (8 changed), median of $RUNS_UPDATE:   $um s   (runs: ${update[*]})   = $(echo "scale=2; 100 * $um / $fm" | bc) % of a full build"
echo "killed after $(echo "$t1 - $t0" | bc) s; resumed run: $resumed s; resumed catalog identical to the uninterrupted one: $identical"
