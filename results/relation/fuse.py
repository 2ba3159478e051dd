#!/usr/bin/env python3
"""Re-ranking a Siamese network's top candidates with the relation network's logits.

    results/relation/fuse.py RELATION_DIR RUN [RUN ...] [--grid 0,0.25,...] [--seeds 99,1234,7]
        [--protocol within-alphabet]

For each RUN (its trials in runs/fusion/RUN-PROTOCOL-SEED.trials.csv) and each weight a, the
trials won when each of the Siamese top-K candidates scores s + a * r (s the Siamese logit,
r the relation logit in RELATION_DIR/RUN-PROTOCOL-SEED.relation.csv, written by
`cargo run --release -p train --example relation -- score`); candidates outside the top K
keep s and cannot win. Ties go to the earlier candidate, as `eval` breaks them. a = inf is
the relation network alone among the top K.
"""
import argparse
import csv
import math


def load(path):
    with open(path, newline="") as f:
        return {int(r["trial"]): r for r in csv.DictReader(f)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("relation")
    p.add_argument("runs", nargs="+")
    p.add_argument("--grid", default="0,0.1,0.25,0.5,0.75,1,1.5,2,inf")
    p.add_argument("--seeds", default="99,1234,7")
    p.add_argument("--protocol", default="within-alphabet")
    args = p.parse_args()
    grid = [float(a) for a in args.grid.split(",")]
    for run in args.runs:
        print(f"## {run} ({args.protocol})")
        totals = {a: [] for a in grid}
        flips = {a: [0, 0] for a in grid}
        for seed in args.seeds.split(","):
            name = f"{run}-{args.protocol}-{seed}"
            trials = load(f"runs/fusion/{name}.trials.csv")
            rel = load(f"{args.relation}/{name}.relation.csv")
            for a in grid:
                correct = 0
                for t, r in trials.items():
                    s = [float(x) for x in r["scores"].split(";")]
                    answer = int(r["answer"])
                    top = [int(i) for i in rel[t]["candidates"].split(";")]
                    rs = [float(x) for x in rel[t]["relation"].split(";")]
                    fused = list(s)
                    for i, v in zip(top, rs):
                        fused[i] = v if math.isinf(a) else s[i] + a * v
                    if math.isinf(a):
                        fused = [fused[i] if i in top else -1e30 for i in range(len(s))]
                    best = max(range(len(s)), key=lambda i: (fused[i], -i))
                    ok = best == answer
                    base = max(range(len(s)), key=lambda i: (s[i], -i)) == answer
                    correct += ok
                    if ok and not base:
                        flips[a][0] += 1
                    if base and not ok:
                        flips[a][1] += 1
                totals[a].append(correct)
        for a in grid:
            c = totals[a]
            print(f"a={a:<5} " + " / ".join(map(str, c)) + f"  total {sum(c)}"
                  f"  gained {flips[a][0]} lost {flips[a][1]}")


if __name__ == "__main__":
    main()
