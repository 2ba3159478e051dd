#!/usr/bin/env bash
# `verify` with the shipped model on the drawings make.py writes: each kind of user file
# against the same letter drawn plainly at 105 px, and the two letters against each other.
#   results/user-drawings/check.sh [BINARY]      (from the project root; a few seconds)
set -euo pipefail
bin="${1:-target/release/omniglot-siamese}"
dir="$(mktemp -d)"
python3 "$(dirname "$0")/make.py" "$dir"
for pair in "H105 T105" "H105 H105-transparent" "H105 H800-thin" "T105 T800-thin" \
    "H800-thin T800-thin" "H105 H-wide" "H105 H800-bold" "H105 H800-dusty" "H105 blank"; do
    set -- $pair
    out="$(RUST_BACKTRACE=0 "$bin" verify "$dir/$1.png" "$dir/$2.png" 2>&1 || true)"
    [[ "$out" == Error* ]] && out="$(tail -n 1 <<< "$out" | sed "s|$dir/||")" || out="$(head -n 1 <<< "$out")"
    printf '%-25s %s\n' "$1 vs $2:" "$out"
done
rm -rf "$dir"
