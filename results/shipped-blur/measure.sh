#!/bin/sh
# Scores the shipped model (models/default.safetensors) once on every test sample its card
# reports: the Lake-style runs (20, 100 and 400), sampled within-alphabet and random 20-way
# trials (400, 4,000 and 8,000), in paired turns and upright, writing `eval --out` reports
# here. Measures only: these figures choose nothing. About 8 minutes on 2 cores.
#   results/shipped-blur/measure.sh                       # the shipped model, reports here
#   results/shipped-blur/measure.sh CHECKPOINT OUT_DIR    # another model's weights, same samples
set -eu
cd "$(dirname "$0")/../.."
OUT=${2:-results/shipped-blur}
BIN=./target/release/omniglot-siamese
CKPT=
if [ $# -ge 1 ]; then
  [ -f "$1" ] || { echo "measure.sh: no checkpoint at $1" >&2; exit 1; }
  CKPT="--checkpoint $1"
fi
mkdir -p "$OUT"
cargo build --quiet --release -p cli
for spec in "data/runs 20 0" "data/runs100 100 1" "data/runs400 400 2"; do
  # shellcheck disable=SC2086
  set -- $spec
  [ -d "$1" ] || cargo xtask make-runs --count "$2" --ways 20 --seed "$3" --dest "$1"
done
for T in 4 1; do
  $BIN eval $CKPT --protocol runs --runs-dir data/runs --turns $T --out $OUT/runs20-turns$T
  $BIN eval $CKPT --protocol runs --runs-dir data/runs100 --turns $T --out $OUT/runs100-turns$T
  $BIN eval $CKPT --protocol runs --runs-dir data/runs400 --turns $T --out $OUT/runs400-turns$T
  $BIN eval $CKPT --protocol within-alphabet --trials 400 --seed 0 --turns $T --out $OUT/within400-turns$T
  $BIN eval $CKPT --protocol within-alphabet --trials 4000 --seed 1 --turns $T --out $OUT/within4000-turns$T
  $BIN eval $CKPT --protocol within-alphabet --trials 8000 --seed 2 --turns $T --out $OUT/within8000-turns$T
  $BIN eval $CKPT --protocol random --trials 4000 --seed 1 --turns $T --out $OUT/random4000-turns$T
  $BIN eval $CKPT --protocol random --trials 8000 --seed 2 --turns $T --out $OUT/random8000-turns$T
done
