"""Emulation of the released ImageNet-P videos: every sequence encoded and decoded with H.264 (libx264, PyAV).

The original generators wrote the 8-bit frames as PNGs and called ``ffmpeg -r 1 -framerate 1 -i img%d.png -vcodec
libx264 -preset veryslow`` with ``-tune grain`` for the noise types (default CRF 23) and ``-crf 20`` for the others;
ffmpeg converts the RGB PNGs to ``yuv444p`` (BT.601, limited range) for libx264. The codec removes part of the
frame-to-frame change of the noise sequences and moves smooth ones by about a level, so flip probabilities of
uncompressed frames are not comparable with published ImageNet-P numbers. :func:`h264_roundtrip` reproduces the
round trip (same settings, one frame per second, decoded back to RGB 8 bit).

Cost: a CPU codec, run host-side (the frames are copied to the host and back), one sequence per task over a thread
pool: ``-preset veryslow`` costs 0.6-4 s per 31-frame 224-px sequence on one core (noise types the most; see
``benchmarks/results/h264_release.md``), far more than generating the frames on the device. Off by default.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

__all__ = ["RELEASE_H264", "h264_available", "h264_decode", "h264_encode", "h264_roundtrip", "h264_sequence"]

#: libx264 settings of the released videos: (options for noise types, options for the others).
RELEASE_H264: dict[str, dict[str, str]] = {
    "noise": {"preset": "veryslow", "tune": "grain"},
    "other": {"preset": "veryslow", "crf": "20"},
}


def _x264_asm_option() -> dict[str, str]:
    """x264 CPU flags: at most AVX2 on x86 (host-side choice from the CPU capability).

    libx264's AVX-512 code paths made the encode non-deterministic here (the same frames gave different streams
    from run to run, and streams differing from x264's C code); up to AVX2 the output is identical to the C code's
    and reproducible. Other CPUs keep x264's own detection.
    """
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return {"x264-params": "asm=AVX2"}
    return {}


def h264_available() -> bool:
    """Whether PyAV is installed and its FFmpeg has the libx264 encoder."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


def _require_av():  # noqa: ANN202
    try:
        import av
    except ImportError as err:
        raise ImportError("H.264 release emulation needs PyAV with libx264: pip install av") from err
    if "libx264" not in av.codecs_available:
        raise RuntimeError("H.264 release emulation: this PyAV's FFmpeg has no libx264 encoder")
    return av


def h264_encode(frames: np.ndarray, noise: bool) -> bytes:
    """MP4 bytes of one sequence encoded as the release did (libx264, yuv444p, 1 fps, release options).

    Args:
        frames: (T, H, W, 3) uint8 RGB frames.
        noise: noise type (``-tune grain``, default CRF 23) instead of ``-crf 20``.

    Raises:
        ValueError: wrong shape or dtype.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    av = _require_av()
    t, h, w, _ = frames.shape
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1)  # -r 1 -framerate 1
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv444p"
        stream.options = {**RELEASE_H264["noise" if noise else "other"], **_x264_asm_option()}
        stream.codec_context.thread_count = 1  # one sequence per pool thread
        for i in range(t):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[i]), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 1)  # explicit timestamps: 1 fps (and a deterministic encode)
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def h264_decode(data: bytes) -> np.ndarray:
    """Decode MP4 bytes to (T, H, W, 3) uint8 RGB frames (as the ImageNet-P loaders read the videos)."""
    av = _require_av()
    with av.open(io.BytesIO(data), mode="r") as inp:
        return np.stack([f.to_ndarray(format="rgb24") for f in inp.decode(video=0)])


def h264_sequence(frames: np.ndarray, noise: bool) -> np.ndarray:
    """Encode one sequence as the release did and decode it back: (T, H, W, 3) uint8 -> same.

    Raises:
        ValueError: wrong shape or dtype.
        RuntimeError: the decoder returned another number of frames.
    """
    decoded = h264_decode(h264_encode(frames, noise))
    if len(decoded) != len(frames):
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {len(frames)}")
    return decoded


def h264_roundtrip(frames: Tensor, noise: bool, workers: int | None = None) -> Tensor:
    """The released videos' H.264 round trip of a batch of sequences (host-side, a thread pool over sequences).

    Args:
        frames: (B, T, 3, H, W) frames in [0, 1] (truncated to 8 bit first, as the PNGs were), any device.
        noise: noise types' settings (``-tune grain``) instead of ``-crf 20``.
        workers: pool threads (default ``min(B, os.cpu_count())``).

    Returns:
        Decoded frames, same shape, dtype and device, on the 8-bit grid.

    Example:
        >>> h264_roundtrip(torch.rand(1, 3, 3, 16, 16), noise=False).shape  # doctest: +SKIP
        torch.Size([1, 3, 3, 16, 16])
    """
    if frames.dim() != 5 or frames.shape[2] != 3:
        raise ValueError(f"frames: expected (B, T, 3, H, W), got shape {tuple(frames.shape)}")
    _require_av()
    host = torch.floor(frames.detach().float().clamp(0.0, 1.0) * 255.0 + 1e-4).to(torch.uint8).cpu()
    seqs = host.permute(0, 1, 3, 4, 2).numpy()  # (B, T, H, W, 3)
    n = int(workers) if workers is not None else min(len(seqs), os.cpu_count() or 1)
    if n <= 1:
        out = [h264_sequence(s, noise) for s in seqs]
    else:
        with ThreadPoolExecutor(max_workers=n) as pool:
            out = list(pool.map(lambda s: h264_sequence(s, noise), seqs))
    dec = torch.from_numpy(np.stack(out)).permute(0, 1, 4, 2, 3)
    return (dec.to(torch.float64) / 255.0).to(device=frames.device, dtype=frames.dtype)
