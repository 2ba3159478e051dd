#!/bin/bash
# `recognize --min-score` with the shipped model when some queries show none of the labels:
# in every alphabet of images_evaluation, the odd-numbered characters are the labels (drawer 01
# the one example each) and drawers 06-20 of every character the queries, so about half the
# queries have their character in the support and half do not. Prints, for a few thresholds,
# how the two halves fare. Final figures only; nothing was chosen on them.
# Usage: results/recognize/test-open-set.sh [BINARY]   (from the project root; ~1 min)
set -e
BIN=${1:-target/release/omniglot-siamese}
E=data/omniglot/images_evaluation
W=$(mktemp -d)
for A in "$E"/*/; do
  A=$(basename "$A")
  for c in "$E/$A"/character*; do
    ch=$(basename "$c"); n=$((10#${ch#character}))
    mkdir -p "$W/$A/q/$ch"
    for f in "$c"/*.png; do
      dr=$((10#${f: -6:2}))
      if [ "$dr" -eq 1 ] && [ $((n % 2)) -eq 1 ]; then mkdir -p "$W/$A/s/$ch"; cp "$f" "$W/$A/s/$ch/"; fi
      if [ "$dr" -ge 6 ]; then cp "$f" "$W/$A/q/$ch/"; fi
    done
  done
  RUST_BACKTRACE=0 "$BIN" recognize --support "$W/$A/s" "$W/$A/q" --top 1 --out "$W/$A.csv" >/dev/null
done
python3 - "$W" <<'PY'
import csv, glob, os, sys
rows = []
for f in glob.glob(os.path.join(sys.argv[1], '*.csv')):
    for r in csv.DictReader(open(f)):
        truth = r['query'].split('/')[-2]
        inside = int(truth[len('character'):]) % 2 == 1
        rows.append((inside, r['predicted'] == truth, float(r['score'])))
ins = [r for r in rows if r[0]]
outs = [r for r in rows if not r[0]]
print(f'{len(ins)} queries of a support label, {len(outs)} of none')
print('| min score | sigmoid | support-label queries labelled right | labelled wrong | left unlabelled | other queries left unlabelled |')
print('|---|---|---|---|---|---|')
import math
for s in (None, -2.0, -1.0, 0.0, 1.0, 2.0):
    ok = lambda r: s is None or r[2] >= s
    right = sum(1 for r in ins if ok(r) and r[1])
    wrong = sum(1 for r in ins if ok(r) and not r[1])
    left = sum(1 for r in ins if not ok(r))
    rej = sum(1 for r in outs if not ok(r))
    pct = lambda k, n: f'{100*k/n:.1f}%'
    name = 'none' if s is None else f'{s:g}'
    sig = '' if s is None else f'{1/(1+math.exp(-s)):.2f}'
    print(f'| {name} | {sig} | {pct(right,len(ins))} | {pct(wrong,len(ins))} | {pct(left,len(ins))} | {pct(rej,len(outs))} |')
PY
rm -rf "$W"
