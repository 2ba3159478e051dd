#!/usr/bin/env python3
"""Drawings of the kinds users hand `verify` and `recognize`, written into the folder given
(default /tmp/user-drawings): an "H" and a "T" drawn with a round pen of radius 1.5 px on a
105 px page, the same on a transparent page (black strokes on transparent black, as a web
canvas saves them), with a pen of radius 2.5 px on an 800 px page, and on a page twice as
wide as high; an "H" drawn with a pen of radius 12 px on an 800 px page, clean and with dust
(one page pixel in 500 inked at random); and a blank page. Pure Python (zlib), no imaging
library. See check.sh."""
import random
import os
import sys
import struct
import zlib
def write_png(path, w, h, pixels, mode):  # pixels: list of rows of tuples
    ct, n = {"L": (0, 1), "RGBA": (6, 4), "RGB": (2, 3)}[mode]
    raw = b"".join(b"\x00" + bytes(v for px in row for v in (px if isinstance(px, tuple) else (px,))) for row in pixels)
    def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ct, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
def draw(side, width, segs):
    img = [[0]*side for _ in range(side)]
    for (x0,y0,x1,y1) in segs:
        for t in range(2000):
            u = t/1999; x = (x0+(x1-x0)*u)*side; y = (y0+(y1-y0)*u)*side
            r = width/2
            for yy in range(int(y-r), int(y+r)+1):
                for xx in range(int(x-r), int(x+r)+1):
                    if 0<=xx<side and 0<=yy<side and (xx-x)**2+(yy-y)**2 <= r*r: img[yy][xx] = 1
    return img
A = [(0.3,0.2,0.3,0.8),(0.3,0.5,0.7,0.5),(0.7,0.2,0.7,0.8)]   # an H
B = [(0.3,0.2,0.7,0.2),(0.5,0.2,0.5,0.8)]                      # a T
os.makedirs(OUT := (sys.argv[1] if len(sys.argv) > 1 else "/tmp/user-drawings"), exist_ok=True)
os.chdir(OUT)
for name, segs in [("H", A), ("T", B)]:
    s = draw(105, 3, segs); write_png(f"{name}105.png", 105, 105, [[0 if v else 255 for v in r] for r in s], "L")
    write_png(f"{name}105-transparent.png", 105, 105, [[(0,0,0,255) if v else (0,0,0,0) for v in r] for r in s], "RGBA")
    s = draw(800, 5, segs); write_png(f"{name}800-thin.png", 800, 800, [[0 if v else 255 for v in r] for r in s], "L")
    s = draw(105, 3, segs); write_png(f"{name}-wide.png", 210, 105, [[0 if v else 255 for v in r] + [255]*105 for r in s], "L")
s = draw(800, 24, A)
write_png("H800-bold.png", 800, 800, [[0 if v else 255 for v in r] for r in s], "L")
random.seed(1)
for _ in range(800 * 800 // 500):
    s[random.randrange(800)][random.randrange(800)] = 1
write_png("H800-dusty.png", 800, 800, [[0 if v else 255 for v in r] for r in s], "L")
write_png("blank.png", 50, 50, [[255]*50 for _ in range(50)], "L")
