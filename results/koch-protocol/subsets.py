#!/usr/bin/env python3
"""What Koch et al.'s test design would have given a model we measured on all 20 alphabets.

Koch et al. (2015, section 4.2-4.3) test on 10 alphabets (the evaluation set of Lake et al.
2013, which the paper does not name) with 40 trials each: 400 trials in all. This
project tests on all 20 `images_evaluation` alphabets. The model's accuracy differs a lot
between alphabets, so a 400-trial figure on 10 of them mixes three things: the model, which
10 alphabets, and 400 trials' binomial noise. This script separates them, from per-alphabet
figures that `eval --out` wrote (the `.csv` files of sampled within-alphabet trials):

1. every one of the C(20, 10) = 184,756 choices of 10 alphabets, each alphabet weighted
   equally as in Koch's design: the spread of the model's accuracy due to the choice alone;
2. 200,000 simulated Koch-style tests: 10 alphabets drawn at random, each alphabet's accuracy
   drawn from its Jeffreys posterior (Beta(k + 1/2, n - k + 1/2): our per-alphabet figures
   carry their own sampling error), then 40 Bernoulli trials per alphabet.

    results/koch-protocol/subsets.py FILE.csv [FILE.csv ...]

pools the files' per-alphabet counts and prints a Markdown table. Standard library only;
seeded, so its output is the same on every run.
"""
import csv
import itertools
import random
import sys

ALPHABETS_PER_TEST = 10
TRIALS_PER_ALPHABET = 40
TRIALS = ALPHABETS_PER_TEST * TRIALS_PER_ALPHABET  # 400
KOCH_CORRECT = 368  # 92.0% of 400
SIMULATIONS = 200_000


def per_alphabet(files):
    correct, total = {}, {}
    for path in files:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["group"] == "overall":
                    continue
                a = row["group"]
                correct[a] = correct.get(a, 0) + int(row["correct"])
                total[a] = total.get(a, 0) + int(row["total"])
    return {a: (correct[a], total[a]) for a in sorted(correct)}


def quantile(sorted_values, p):
    return sorted_values[round(p * (len(sorted_values) - 1))]


def main(files):
    if not files:
        sys.exit(__doc__)
    counts = per_alphabet(files)
    if len(counts) < ALPHABETS_PER_TEST:
        sys.exit(f"need per-alphabet rows for at least {ALPHABETS_PER_TEST} alphabets")
    acc = {a: k / n for a, (k, n) in counts.items()}
    names = list(counts)
    k_all = sum(k for k, _ in counts.values())
    n_all = sum(n for _, n in counts.values())

    choice = sorted(
        sum(acc[a] for a in s) / ALPHABETS_PER_TEST
        for s in itertools.combinations(names, ALPHABETS_PER_TEST)
    )
    share_choice = sum(m >= KOCH_CORRECT / TRIALS for m in choice) / len(choice)

    rng = random.Random(0)
    sims = []
    for _ in range(SIMULATIONS):
        k = 0
        for a in rng.sample(names, ALPHABETS_PER_TEST):
            c, n = counts[a]
            p = rng.betavariate(c + 0.5, n - c + 0.5)
            k += sum(rng.random() < p for _ in range(TRIALS_PER_ALPHABET))
        sims.append(k)
    sims.sort()
    share_sims = sum(k >= KOCH_CORRECT for k in sims) / len(sims)

    print(f"Per-alphabet counts from {len(files)} file(s): {len(names)} alphabets, "
          f"{k_all:,} of {n_all:,} trials correct ({100 * k_all / n_all:.2f}%); "
          f"alphabets from {100 * min(acc.values()):.1f}% to {100 * max(acc.values()):.1f}%.\n")
    print("| what varies | 5th percentile | median | 95th percentile | share at or above 92.0% |")
    print("|---|---|---|---|---|")
    print(f"| which 10 alphabets (all {len(choice):,} choices, exact) | "
          f"{100 * quantile(choice, 0.05):.1f}% | {100 * quantile(choice, 0.5):.1f}% | "
          f"{100 * quantile(choice, 0.95):.1f}% | {100 * share_choice:.0f}% |")
    print(f"| which {ALPHABETS_PER_TEST} alphabets and {TRIALS} trials ({SIMULATIONS:,} simulated tests) | "
          f"{100 * quantile(sims, 0.05) / TRIALS:.2f}% | {100 * quantile(sims, 0.5) / TRIALS:.2f}% | "
          f"{100 * quantile(sims, 0.95) / TRIALS:.2f}% | {100 * share_sims:.0f}% |")


if __name__ == "__main__":
    main(sys.argv[1:])
