#!/bin/sh
# Builds the CUDA binaries for a device check here, on a host with neither a GPU nor a CUDA
# toolkit: NVIDIA's CUDA 13.0 wheels from PyPI supply nvcc, the headers and the libraries to
# link against (the H200 machines run driver 580, CUDA 13.0), and the driver library is a
# stub carrying the symbols cudarc declares (the real one is found on the device at run
# time). Writes .gpu/bin.tar.xz (the CLI and the two per-device test binaries, stripped) and
# copies the Omniglot zips beside it; `results/gpu/check.sh` runs them on the device.
# About 20 minutes on 2 cores the first time (candle's kernels go through nvcc).
set -eu
cd "$(dirname "$0")/../.."
CUDA=${CUDA_WORK:-/tmp/cuda}
C=$CUDA/root/nvidia/cu13
mkdir -p "$CUDA/whl" .gpu
if [ ! -x "$C/bin/nvcc" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$CUDA/whl" \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cuda-cccl==13.0.*" \
    "nvidia-cublas==13.0.*" "nvidia-curand==10.4.*"
  for w in "$CUDA"/whl/*.whl; do unzip -qo "$w" -d "$CUDA/root"; done
fi
for l in cublas cublasLt curand nvrtc cudart; do
  ln -sfn "$(cd "$C/lib" && ls lib$l.so.* | head -1)" "$C/lib/lib$l.so"
done
mkdir -p "$C/lib/stubs"
cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* | tail -1)
grep -ohP '^\s+fn \Kcu[A-Za-z0-9_]+(?=\()' "$cudarc/src/driver/sys/mod.rs" | sort -u |
  awk '{print "void " $1 "(void) {}"}' > "$CUDA/libcuda-stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$C/lib/stubs/libcuda.so" "$CUDA/libcuda-stub.c"

export CUDA_HOME="$C" CUDA_PATH="$C" PATH="$C/bin:$PATH" CUDA_COMPUTE_CAP=90 \
  CUDARC_CUDA_VERSION=13000 LIBRARY_PATH="$C/lib:$C/lib/stubs" CARGO_TARGET_DIR="$CUDA/target"
cargo build --release --locked -p cli --features cuda
tests=$(cargo test --release --locked -p model -p train --features model/cuda,train/cuda \
  --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] in ("devices", "training") and m.get("executable"):
        print(m["target"]["name"], m["executable"])')
rm -rf "$CUDA/pkg" && mkdir -p "$CUDA/pkg"
cp "$CUDA/target/release/omniglot-siamese" "$CUDA/pkg/"
echo "$tests" | while read -r name path; do cp "$path" "$CUDA/pkg/$name"; done
strip "$CUDA"/pkg/*
ls "$CUDA/pkg"
tar cJf .gpu/bin.tar.xz -C "$CUDA/pkg" .
cp ../shared/omniglot/images_background.zip ../shared/omniglot/images_evaluation.zip .gpu/
ls -la .gpu
