#!/usr/bin/env python3
"""A copy of a network file with its ink-box fill changed (the weights untouched).

    results/fills/make.py IN.safetensors FILL OUT.safetensors

The fill is saved with the architecture, so every command frames drawings by the copy's fill:
the same network, seeing every drawing at another scale.
"""
import json
import re
import struct
import sys


def main():
    src, fill, dst = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        body = f.read()
    meta = header["__metadata__"]
    arch = json.loads(meta["arch"])
    if arch["framing"]["kind"] != "ink-box":
        sys.exit(f"{src}: framing {arch['framing']['kind']}, not ink-box")
    arch["framing"]["fill"] = fill
    meta["arch"] = json.dumps(arch, separators=(",", ":"))
    meta["config"] = re.sub(r"(?m)^fill = .*$", f"fill = {fill}", meta["config"])
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        f.write(body)


if __name__ == "__main__":
    main()
