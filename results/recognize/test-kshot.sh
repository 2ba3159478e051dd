#!/bin/bash
# `recognize` with the shipped model on every alphabet of images_evaluation: each alphabet's
# characters are the labels, drawers 06-20 the queries, and the support is drawer 01 (one
# shot) or drawers 01-05 (five shots). Final figures only; nothing was chosen on them.
# Usage: results/recognize/test-kshot.sh [BINARY]   (from the project root; ~1 min)
set -e
. "$(dirname "$0")/split-drawers.sh"
BIN=${1:-target/release/omniglot-siamese}
E=data/omniglot/images_evaluation
[ -d "$E" ] || { echo "no $E: run cargo xtask download first" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for A in "$E"/*/; do
  A=$(basename "$A")
  for c in "$E/$A"/character*; do
    split_drawers "$c" "$W/$A" "$(basename "$c")"
  done
  for k in 1 5; do
    line=$(RUST_BACKTRACE=0 "$BIN" recognize --support "$W/$A/s$k" "$W/$A/q" --labelled \
      --out "$W/$A/out$k.csv" | grep '^accuracy')
    echo "$A,$k,$(ls "$E/$A" | wc -l),$(echo "$line" | sed -E 's/.*\(([0-9]+) of ([0-9]+) right.*/\1,\2/')"
  done
done
