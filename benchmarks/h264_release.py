"""H.264 release emulation of ImageNet-P: how much the codec changes the frames, and what it costs.

For every perturbation type (ImageNet preset, Resize(256) context of the scikit-image photos, crop 224): mean
|decoded - uncompressed| in 8-bit levels, the frame-to-frame change the metrics see (consecutive frames; noise
types: against the clean frame) before and after the codec, and the wall time of the round trip per 31-frame
sequence (one thread; a pool runs one sequence per thread).

    PYTHONPATH=$PWD python benchmarks/h264_release.py [--out benchmarks/results/h264_release.md]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from robust_train.sequences import create_sequence, list_sequences
from robust_train.sequences.h264 import h264_roundtrip
from tests.evaluation._p_reference import resize_short

PHOTOS = ("astronaut", "chelsea", "coffee")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="markdown file for the table")
    args = ap.parse_args()
    rows = [
        "| type | mean abs(decoded - png) | change png | change decoded | removed | s / sequence |",
        "|---|---|---|---|---|---|",
    ]
    for name in list_sequences("p14"):
        diffs, ch0, ch1, secs = [], [], [], []
        for i, photo in enumerate(PHOTOS):
            x = torch.from_numpy(resize_short(photo)).permute(2, 0, 1)[None].float() / 255.0
            op = create_sequence(name, preset="imagenet", crop=224)
            f = op(x, op.params_for_indices([i], 0))
            t0 = time.perf_counter()
            d = h264_roundtrip(f, noise=op.noise, workers=1)
            secs.append((time.perf_counter() - t0) * 31 / f.shape[1])  # per 31 frames (translate has 41)
            diffs.append(float((d - f).abs().mean()) * 255)
            if op.noise:
                ch0.append(float((f[:, 1:] - f[:, :1]).abs().mean()) * 255)
                ch1.append(float((d[:, 1:] - d[:, :1]).abs().mean()) * 255)
            else:
                ch0.append(float((f[:, 1:] - f[:, :-1]).abs().mean()) * 255)
                ch1.append(float((d[:, 1:] - d[:, :-1]).abs().mean()) * 255)
        a, b = np.mean(ch0), np.mean(ch1)
        rows.append(
            f"| {name} | {np.mean(diffs):.2f} | {a:.2f} | {b:.2f} | {100 * (1 - b / a):.1f}% | {np.mean(secs):.2f} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
