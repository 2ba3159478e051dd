#!/bin/bash
# The device check, run on the GPU machine from the repository root after `results/gpu/build.sh`
# (device tool: command `bash results/gpu/check.sh`, carry `.gpu`). Per-device tests, the
# shipped model's evaluation on both devices, then training throughput and GPU memory of the
# reference and shipped recipes on CUDA and on the same machine's CPU. About 6 minutes;
# everything lands in $OUT (log.txt, work.tgz).
set -u
G=$PWD/.gpu
OUT=${OUT:-/tmp/out}
W=/tmp/work
mkdir -p "$OUT" $W
exec > >(tee "$OUT/log.txt") 2>&1
t0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - t0 )) s] $*"; }
stamp start
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
nproc
python3 -c "import tarfile; tarfile.open('$G/bin.tar.xz').extractall('/tmp/gbin')"
B=/tmp/gbin
dirs=""
for l in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  f=$(timeout 30 find /usr/local/cuda/ /opt /usr/local -name "$l" 2>/dev/null | head -1)
  echo "$l -> $f"
  [ -n "$f" ] && dirs="$dirs:$(dirname "$f")"
done
export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:/usr/local/nvidia/lib${dirs}:${LD_LIBRARY_PATH:-}"
ldd "$B/omniglot-siamese" | grep -E "not found|cuda|cublas|curand|cudart"

stamp "per-device tests (model)"
timeout 150 "$B/devices" --test-threads 1 --nocapture 2>&1 | tee "$W/tests-model.txt"
stamp "per-device tests (train)"
timeout 120 "$B/training" accelerator --nocapture 2>&1 | tee "$W/tests-train.txt"

stamp "data"
mkdir -p data/omniglot
for z in images_background images_evaluation; do
  python3 -c "import zipfile; zipfile.ZipFile('$G/$z.zip').extractall('data/omniglot')"
done

# The shipped model on both devices: the same 4,000 trials must score the same.
for d in cuda cpu; do
  stamp "eval shipped model on $d"
  timeout 90 "$B/omniglot-siamese" eval --device $d --protocol within-alphabet --trials 4000 \
    --seed 1 --out "$W/eval-$d" 2>&1 | tail -4
done

R=/tmp/runs
run() { # name seconds args...
  local name=$1 secs=$2; shift 2
  stamp "train $name ($*)"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$W/$name.mem" &
  local smi=$!
  timeout "$secs" "$B/omniglot-siamese" train --no-progress --out-dir $R --name "$name" "$@" \
    > "$W/$name.log" 2>&1
  echo "exit $?"; kill $smi
  grep -v "^ *[0-9]*: \|^ *at " "$W/$name.log" | grep -iv " info " | tail -3
  echo "peak GPU memory $(sort -n "$W/$name.mem" | tail -1) MiB"
  cp "$R/$name/metrics.jsonl" "$W/$name.jsonl" 2>/dev/null
}
run ref-cuda 90 --preset reference --device cuda --stop-after 1000
run ref-cpu 45 --preset reference --device cpu --stop-after 30
run final-cuda 100 --preset final --device cuda --stop-after 6000
run final-cpu 40 --preset final --device cpu --stop-after 300

stamp summary
python3 - "$W" <<'PY'
import json, sys, glob, os, statistics
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl"))):
    tr = [r for r in map(json.loads, open(f)) if r["kind"] == "train"]
    if not tr:
        print(os.path.basename(f), "no records"); continue
    rates = [r["pairs_per_s"] for r in tr[1:]] or [tr[0]["pairs_per_s"]]
    print(f"{os.path.basename(f)}: steps {tr[-1]['step']}, median rate {statistics.median(rates):.2f}/s "
          f"(records {len(tr)}), loss {tr[0]['loss']:.3f} -> {tr[-1]['loss']:.3f}")
PY
tar czf "$OUT/work.tgz" -C /tmp work
stamp done
