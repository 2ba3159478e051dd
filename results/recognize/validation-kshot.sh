#!/bin/bash
# How `recognize` should combine several examples of a label, chosen on the validation split:
# a network trained with the six `stratified` validation alphabets held out scores every query
# (drawers 06-20) against every support drawing (drawers 01-05), each drawing a label of its
# own so that the CSV lists each logit; validation-kshot.py then compares the rules.
# Usage (from the project root; ~1 min):
#   results/recognize/validation-kshot.sh runs/v-full-inkbox-ls20-s0/best.safetensors OUT_DIR
#   python3 results/recognize/validation-kshot.py OUT_DIR
set -e
M=${1:?checkpoint trained with the stratified validation alphabets held out}
W=${2:?output folder}
BIN=${BIN:-target/release/omniglot-siamese}
B=data/omniglot/images_background
for A in Sanskrit Grantha "Syriac_(Estrangelo)" Armenian "Japanese_(hiragana)" Anglo-Saxon_Futhorc; do
  d="$W/$A"; rm -rf "$d"; mkdir -p "$d/support" "$d/queries"
  for c in "$B/$A"/character*; do
    ch=$(basename "$c")
    mkdir -p "$d/queries/$ch"
    for f in "$c"/*.png; do
      dr=${f: -6:2}
      if [ $((10#$dr)) -le 5 ]; then cp "$f" "$d/support/$ch~$dr.png"; else cp "$f" "$d/queries/$ch/"; fi
    done
  done
  RUST_BACKTRACE=0 "$BIN" recognize --checkpoint "$M" --support "$d/support" "$d/queries" \
    --top 1000 --out "$d/out.csv" | head -1
done
