#!/usr/bin/env python3
"""Trials won when each candidate's score is the mean of several evaluations' scores.

    results/fills/fuse.py A.trials.csv B.trials.csv [...]

Every file must hold the same trials (the same split, protocol and seed), as `eval --out`
writes them. Prints each file's own count and the mean's. Ties go to the earlier candidate,
as `eval` breaks them.
"""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        return {int(r["trial"]): r for r in csv.DictReader(f)}


def best(scores):
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def main():
    files = [load(p) for p in sys.argv[1:]]
    first = files[0]
    for path, rows in zip(sys.argv[1:], files):
        assert rows.keys() == first.keys(), f"{path}: other trials"
        own = sum(best([float(x) for x in r["scores"].split(";")]) == int(r["answer"]) for r in rows.values())
        print(f"{own:5d}  {path}")
    correct = 0
    for t, r in first.items():
        assert all(rows[t]["candidates"] == r["candidates"] for rows in files), f"trial {t} differs"
        per = [[float(x) for x in rows[t]["scores"].split(";")] for rows in files]
        mean = [sum(col) / len(col) for col in zip(*per)]
        correct += best(mean) == int(r["answer"])
    print(f"{correct:5d}  mean of {len(files)}")


if __name__ == "__main__":
    main()
