#!/usr/bin/env bash
# Per-trial scores for score fusion (validation-screens.md, "Score fusion with the modified
# Hausdorff distance", and "The image distortion model as the second opinion"): the modified
# Hausdorff baseline (canvas and ink-box framing), the image distortion model (ink-box) and each
# network given as an argument, on the screens' validation trials (stratified split, 2,000
# within-alphabet 20-way trials at seeds 99, 1234 and 7, 2,000 random at seed 99), written to
# runs/fusion/NAME-PROTOCOL-SEED.trials.csv. Never touches images_evaluation.
#
# EVAL_FLAGS go to every network's eval (the table scored v-full-eighths-s0 with --turns 4).
#
#   results/fusion/make.sh v-full-inkbox-ls20-s0 v-full-sam-s0 ...   # folders under runs/
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${OMNIGLOT_SIAMESE:-target/release/omniglot-siamese}"
mkdir -p runs/fusion
for proto in within-alphabet random; do
    seeds="99 1234 7"
    [[ $proto == random ]] && seeds=99
    for seed in $seeds; do
        common=(--split background --alphabets stratified --ways 20 --trials 2000 --protocol "$proto" --seed "$seed")
        "$bin" eval --baseline idm --framing ink-box "${common[@]}" --out "runs/fusion/idm-$proto-$seed" >/dev/null
        for framing in canvas ink-box; do
            name=mhd
            [[ $framing == ink-box ]] && name=mhd_ink-box
            "$bin" eval --baseline mhd --framing "$framing" "${common[@]}" --out "runs/fusion/$name-$proto-$seed" >/dev/null
        done
        for run in "$@"; do
            # shellcheck disable=SC2086
            "$bin" eval --checkpoint "runs/$run/last.safetensors" "${common[@]}" ${EVAL_FLAGS:-} --out "runs/fusion/$run-$proto-$seed" >/dev/null
        done
    done
done
