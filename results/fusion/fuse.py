#!/usr/bin/env python3
"""Score fusion on the validation trials: a network's scores plus weighted baseline cues.

For each trial every method's scores are standardised over the 20 candidates (z-scores), and
the candidate with the largest z_net + a * z_mhd + b * z_size wins (ties to the earlier
candidate, as `eval` breaks them). z_mhd is minus the modified Hausdorff distance on the
whole canvas (`--base mhd`) or on the ink box (`--base mhd_ink-box`), or with `--base idm` the
image distortion model's score (`eval --baseline idm --framing ink-box`); z_size is minus
|log(width ratio)| + |log(height ratio)| of the two drawings' ink bounding boxes on the
105 px canvas, the size the network's ink-box framing discards.

    results/fusion/make.sh RUN ...             # the per-trial files, runs/fusion/
    results/fusion/fuse.py RUN [RUN ...] [--base mhd] [--grid A:B,A:B,...] [--seeds 99,1234,7]
        [--protocol within-alphabet]

prints, for each RUN and each (a, b), the correct trials of 2,000 per seed and their total,
and the trials the fusion gains and loses against the network alone.
"""
import argparse
import csv
import glob
import math
import statistics
import struct
import zlib

FOLDER = "runs/fusion"
ROOT = "data/omniglot/images_background"


def load(path):
    with open(path, newline="") as f:
        return {
            int(r["trial"]): (r["query"], r["candidates"].split(";"), int(r["answer"]),
                              [float(x) for x in r["scores"].split(";")])
            for r in csv.DictReader(f)
        }


def z(values):
    mean, sd = statistics.fmean(values), statistics.pstdev(values)
    return [(x - mean) / (sd or 1.0) for x in values]


def read_png(path):
    """Omniglot's 1-bit greyscale PNGs as rows of 0 (ink) and 1 (paper)."""
    data = open(path, "rb").read()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 1 and colour == 0, f"{path}: not a 1-bit greyscale PNG"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), (width + 7) // 8
    prev, rows, i = bytearray(stride), [], 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a, b, c = (line[x - 1] if x else 0), prev[x], (prev[x - 1] if x else 0)
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([(line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        prev = line
    return rows


def ink_box(path):
    ink = [(x, y) for y, row in enumerate(read_png(path)) for x, v in enumerate(row) if v == 0]
    xs, ys = [p[0] for p in ink], [p[1] for p in ink]
    return max(xs) - min(xs) + 1, max(ys) - min(ys) + 1


def boxes(alphabets):
    """Ink bounding boxes of every drawing of these alphabets, by `eval`'s image names."""
    out = {}
    for a in sorted(alphabets):
        for path in glob.glob(f"{ROOT}/{a}/*/*.png"):
            parts = path.split("/")
            drawer = parts[-1].split("_")[1][:2]
            out[f"{parts[-3]}/{parts[-2]}/drawer{drawer}"] = ink_box(path)
    return out


def size_score(box, q, c):
    (wq, hq), (wc, hc) = box[q], box[c]
    return -(abs(math.log(wq / wc)) + abs(math.log(hq / hc)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--base", default="mhd")
    p.add_argument("--grid", default="0:0,0.1:0,0.2:0,0.3:0,0:0.1,0:0.2,0.15:0.1")
    p.add_argument("--seeds", default="99,1234,7")
    p.add_argument("--protocol", default="within-alphabet")
    args = p.parse_args()
    grid = [tuple(float(x) for x in pair.split(":")) for pair in args.grid.split(",")]
    seeds = args.seeds.split(",")
    box = None
    for run in args.runs:
        trials = []
        for seed in seeds:
            net = load(f"{FOLDER}/{run}-{args.protocol}-{seed}.trials.csv")
            base = load(f"{FOLDER}/{args.base}-{args.protocol}-{seed}.trials.csv")
            if box is None:
                box = boxes({q.split("/")[0] for q, *_ in net.values()})
            rows = []
            for t, (q, cands, answer, scores) in net.items():
                assert base[t][:3] == (q, cands, answer), f"{run} seed {seed}: trial {t} differs"
                rows.append((answer, z(scores), z(base[t][3]), z([size_score(box, q, c) for c in cands])))
            trials.append(rows)
        for a, b in grid:
            per_seed, gained, lost = [], 0, 0
            for rows in trials:
                correct = 0
                for answer, zn, zm, zs in rows:
                    fused = [n + a * m + b * s for n, m, s in zip(zn, zm, zs)]
                    pick = max(range(len(fused)), key=lambda i: (fused[i], -i))
                    alone = max(range(len(zn)), key=lambda i: (zn[i], -i))
                    correct += pick == answer
                    gained += pick == answer and alone != answer
                    lost += pick != answer and alone == answer
                per_seed.append(correct)
            print(f"{run} {args.protocol} a={a} ({args.base}) b={b} (size): {sum(per_seed)} "
                  f"({' / '.join(map(str, per_seed))}), gained {gained}, lost {lost}", flush=True)


if __name__ == "__main__":
    main()
