#!/usr/bin/env bash
# The re-test every validation screen in validation-screens.md uses: a run's last weights on
# the stratified validation split (6 held-out background alphabets), 2,000 within-alphabet
# 20-way trials at each of the seeds 99, 1234 and 7, and 2,000 random 20-way trials at seed 99,
# each with the model's default paired turns and upright (`--turns 1`).
#
#   results/retest.sh RUN [CHECKPOINT] [-- EVAL FLAGS...]     # RUN is a folder under runs/
#
# Flags after `--` go to every `eval` (e.g. `--local-block 3 --local-weight 10` for a model
# trained with that term).
#
# Prints the totals the screens' tables quote, one line for paired turns and one upright, and
# writes the same to runs/logs/retest-RUN.txt (eval's own log goes to retest-RUN.err). Never
# touches images_evaluation, the test split.
set -euo pipefail
cd "$(dirname "$0")/.."

run="${1:?usage: results/retest.sh RUN [CHECKPOINT] [-- EVAL FLAGS...]}"
shift
checkpoint="runs/$run/last.safetensors"
if [[ $# -gt 0 && "$1" != "--" ]]; then
    checkpoint="$1"
    shift
fi
[[ $# -gt 0 && "$1" == "--" ]] && shift
flags=("$@")
bin="${OMNIGLOT_SIAMESE:-target/release/omniglot-siamese}"
[[ -x "$bin" ]] || { echo "no $bin: run cargo build --release -p cli first" >&2; exit 1; }
[[ -f "$checkpoint" ]] || { echo "no checkpoint $checkpoint" >&2; exit 1; }
mkdir -p runs/logs
log="runs/logs/retest-$run.txt"
err="runs/logs/retest-$run.err"
: > "$log"
: > "$err"

# Prints the number of correct trials of one evaluation (the "N correct of M" summary line).
score() {
    "$bin" eval --checkpoint "$checkpoint" --split background --alphabets stratified \
        --ways 20 --trials 2000 "${flags[@]}" "$@" 2>>"$err" |
        sed -n 's/.*: \([0-9]*\) correct of [0-9]*,.*/\1/p' | head -n 1 || true
}

for turns in default 1; do
    extra=()
    [[ "$turns" == 1 ]] && extra=(--turns 1)
    within=0
    per_seed=()
    for seed in 99 1234 7; do
        n="$(score --protocol within-alphabet --seed "$seed" "${extra[@]}")"
        [[ -n "$n" ]] || { echo "eval failed (within-alphabet, seed $seed, turns $turns): see $err" >&2; exit 1; }
        within=$((within + n))
        per_seed+=("$n")
    done
    random="$(score --protocol random --seed 99 "${extra[@]}")"
    [[ -n "$random" ]] || { echo "eval failed (random, turns $turns): see $err" >&2; exit 1; }
    echo "$run turns=$turns within=$within of 6000 (${per_seed[0]} / ${per_seed[1]} / ${per_seed[2]} at seeds 99 / 1234 / 7) random=$random of 2000" |
        tee -a "$log"
done
