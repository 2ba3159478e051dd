#!/bin/bash
# `recognize` with the shipped model on every alphabet of images_evaluation: each alphabet's
# characters are the labels, drawers 06-20 the queries, and the support is drawer 01 (one
# shot) or drawers 01-05 (five shots). Final figures only; nothing was chosen on them.
# Usage: results/recognize/test-kshot.sh [BINARY]   (from the project root; ~1 min)
set -e
BIN=${1:-target/release/omniglot-siamese}
E=data/omniglot/images_evaluation
W=$(mktemp -d)
for A in "$E"/*/; do
  A=$(basename "$A")
  for c in "$E/$A"/character*; do
    ch=$(basename "$c")
    mkdir -p "$W/$A/s1/$ch" "$W/$A/s5/$ch" "$W/$A/q/$ch"
    for f in "$c"/*.png; do
      dr=$((10#${f: -6:2}))
      if [ "$dr" -eq 1 ]; then cp "$f" "$W/$A/s1/$ch/"; fi
      if [ "$dr" -le 5 ]; then cp "$f" "$W/$A/s5/$ch/"; else cp "$f" "$W/$A/q/$ch/"; fi
    done
  done
  for k in 1 5; do
    line=$(RUST_BACKTRACE=0 "$BIN" recognize --support "$W/$A/s$k" "$W/$A/q" --labelled \
      --out "$W/$A/out$k.csv" | grep '^accuracy')
    echo "$A,$k,$(ls "$E/$A" | wc -l),$(echo "$line" | sed -E 's/.*\(([0-9]+) of ([0-9]+) right.*/\1,\2/')"
  done
done
rm -rf "$W"
