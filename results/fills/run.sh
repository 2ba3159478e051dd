#!/usr/bin/env bash
# Per-trial scores of each network at each fill on the screens' validation trials, into
# runs/fusion/RUN-fillF-PROTOCOL-SEED.trials.csv (fill 0.8, the trained one, is the network
# itself: runs/fusion/RUN-PROTOCOL-SEED.trials.csv from runs/fusion/make.sh).
#   results/fills/run.sh "RUN ..." "FILL ..." "SEED ..." [PROTOCOL]
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=target/release/omniglot-siamese
protocol="${4:-within-alphabet}"
for run in $1; do
  for fill in $2; do
    net="runs/fusion/$run-fill$fill.safetensors"
    [[ -f $net ]] || python3 results/fills/make.py "runs/$run/last.safetensors" "$fill" "$net"
    for seed in $3; do
      out="runs/fusion/$run-fill$fill-$protocol-$seed"
      [[ -f $out.trials.csv ]] || "$bin" eval --checkpoint "$net" --split background \
        --alphabets stratified --ways 20 --trials 2000 --protocol "$protocol" --seed "$seed" \
        --out "$out" 2>/dev/null | sed -n 1p
    done
  done
done
