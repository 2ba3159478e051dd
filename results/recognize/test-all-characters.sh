#!/bin/bash
# `recognize --labelled` with every character of images_evaluation a label at once (659-way):
# labels named ALPHABET_characterNN, the support drawer 01 (one shot) or drawers 01-05 (five
# shots, each label's prototype), drawers 06-20 the 9,885 queries. Final figures only; nothing
# was chosen on them.
# Usage: results/recognize/test-all-characters.sh [BINARY [CHECKPOINT]]
#        (from the project root; about 2.5 min on 2 cores)
set -e
. "$(dirname "$0")/split-drawers.sh"
BIN=${1:-target/release/omniglot-siamese}
CKPT=()
[ -n "${2:-}" ] && CKPT=(--checkpoint "$2")
E=data/omniglot/images_evaluation
[ -d "$E" ] || { echo "no $E: run cargo xtask download first" >&2; exit 1; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for c in "$E"/*/character*; do
  split_drawers "$c" "$W" "$(basename "$(dirname "$c")")_$(basename "$c")"
done
for k in 1 5; do
  echo "support of $k per label:"
  RUST_BACKTRACE=0 "$BIN" recognize "${CKPT[@]}" --support "$W/s$k" "$W/q" --labelled \
    --out "$W/out$k.csv" | grep '^accuracy'
done
