#!/usr/bin/env python3
"""Which validation trials several networks miss together.

Reads the per-trial files `eval --out` writes (PREFIX.trials.csv) for every network and
trial seed below, all drawn on the same trials (same input side and framing, same seeds), and
prints each network's errors, how many trials k of the networks miss, the errors of a
majority vote of their choices, how many of the trials every network misses are missed with
the same wrong choice, and the errors per alphabet. Make the files with (from the repository
root, for each RUN and SEED):

    omniglot-siamese eval --checkpoint runs/RUN/last.safetensors --split background \
        --alphabets stratified --ways 20 --trials 2000 --protocol within-alphabet \
        --seed SEED --turns 4 --out DIR/RUN-SEED

    results/error-analysis/overlap.py DIR RUN [RUN ...]
"""
import collections
import csv
import sys

SEEDS = [99, 1234, 7]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    folder, runs = sys.argv[1], sys.argv[2:]
    rows = {}
    for run in runs:
        for seed in SEEDS:
            with open(f"{folder}/{run}-{seed}.trials.csv", newline="") as f:
                for row in csv.DictReader(f):
                    rows[(run, seed, int(row["trial"]))] = row
    trials = sorted({(s, t) for (_, s, t) in rows})
    missed = {r: {k for k in trials if rows[(r, *k)]["correct"] != "true"} for r in runs}
    print(f"{len(trials)} trials")
    for r in runs:
        print(f"{r}: {len(missed[r])} errors")
    by_count = collections.Counter(sum(k in missed[r] for r in runs) for k in trials)
    print("trials missed by k networks:", {k: by_count[k] for k in range(1, len(runs) + 1)})
    vote_errors = 0
    same_choice = 0
    everyone = [k for k in trials if all(k in missed[r] for r in runs)]
    for k in trials:
        choices = [rows[(r, *k)]["predicted"] for r in runs]
        top = collections.Counter(choices).most_common(1)[0][0]
        vote_errors += top != rows[(runs[0], *k)]["answer"]
    for k in everyone:
        same_choice += len({rows[(r, *k)]["predicted"] for r in runs}) == 1
    print(f"majority vote (ties to the earlier network): {vote_errors} errors")
    print(f"missed by every network: {len(everyone)}, {same_choice} of them with one wrong choice")
    total = collections.Counter()
    first = collections.Counter()
    common = collections.Counter()
    for k in trials:
        alphabet = rows[(runs[0], *k)]["query"].split("/")[0]
        total[alphabet] += 1
        first[alphabet] += k in missed[runs[0]]
        common[alphabet] += k in everyone
    for a in sorted(total, key=lambda a: -first[a]):
        print(f"{a}: {total[a]} trials, {first[a]} missed by {runs[0]}, {common[a]} by every network")


if __name__ == "__main__":
    main()
