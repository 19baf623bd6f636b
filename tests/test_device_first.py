"""Device-first proofs without a GPU (issue #10, STYLE.md section 1b).

1. Every corruption (19 x 3 presets), every perturbation sequence (14), AugMix (float and PIL-exact), PRIME, PixMix,
   Noise2Net, the corruption-training augment, one PGD step and the metric updates run with their images on a fake
   ``"cuda"`` device (:func:`tests._device.fake_cuda`): any read of a device value, NumPy round trip or device
   mismatch fails the test. The remaining host reads go through :func:`robust_train.functional.checks.host_flag`;
   they are counted per call and must match :data:`DOCUMENTED_SYNCS`.
2. ATen ops per call are equal at batch sizes 2 and 32 for every corruption and sequence, AugMix (float and
   PIL-exact), PRIME, PixMix and Noise2Net (no per-sample loops).
"""

from __future__ import annotations

import collections

import pytest
import torch

import robust_train as rt
from robust_train.functional import checks
from robust_train.functional._execution import cache_blocking
from tests._device import count_aten_ops, fake_cuda

SIZES = {"imagenet": 224, "tinyimagenet": 64, "cifar": 32}
CORRUPTIONS = rt.list_corruptions("c19")
SEQUENCES = rt.sequences.list_sequences()

#: The host reads that remain, at most per call: op -> {what: count}. Everything else must read nothing.
DOCUMENTED_SYNCS: dict[str, dict[str, int]] = {
    # Canny's hysteresis grows edges until nothing changes: one convergence check per 16 growth steps on a device;
    # the spatter layers converge within the first block (the fake device answers "converged" at the first check).
    "spatter": {"canny hysteresis": 1},
}


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    reads: collections.Counter[str] = collections.Counter()

    def fake_flag(flag: object, what: str) -> bool:
        reads[what] += 1
        return True

    monkeypatch.setattr(checks, "host_flag", fake_flag)
    return reads


@pytest.mark.parametrize("preset", list(SIZES))
@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_on_fake_cuda(name: str, preset: str, host_reads: collections.Counter[str]) -> None:
    size = SIZES[preset]
    op = rt.create_corruption(name, severity=(1.0, 5.0), preset=preset, seed=0)
    params = op.sample_params(3)  # host parameters, fractional severities
    with fake_cuda():
        x = torch.empty(3, 3, size, size, device="cuda")
        out = op(x, params=params)
    assert out.device.type == "cuda" and out.shape == x.shape and out.dtype == x.dtype
    allowed = DOCUMENTED_SYNCS.get(name, {})
    assert all(n <= allowed.get(what, 0) for what, n in host_reads.items()), dict(host_reads)


@pytest.mark.parametrize("jpeg", [None, 85])
def test_released_emulation_on_fake_cuda(jpeg: int | None, host_reads: collections.Counter[str]) -> None:
    op = rt.create_corruption("fog", severity=3, preset="imagenet", jpeg_quality=jpeg)
    params = op.params_for_indices(torch.arange(2), seed=1)
    with fake_cuda():
        out = op(torch.empty(2, 3, 224, 224, device="cuda"), params=params)
    assert out.device.type == "cuda"


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_on_fake_cuda(name: str, host_reads: collections.Counter[str]) -> None:
    op = rt.sequences.create_sequence(name, preset="cifar")
    params = op.params_for_indices(torch.arange(2), 0)
    with fake_cuda():
        frames = op(torch.empty(2, 3, 32, 32, device="cuda"), params)
    assert frames.device.type == "cuda" and frames.shape[0] == 2 and frames.shape[2:] == (3, 32, 32)
    allowed = DOCUMENTED_SYNCS.get(name, {})
    assert all(n <= allowed.get(what, 0) for what, n in host_reads.items()), dict(host_reads)


def _count(fn, batch: int) -> collections.Counter[str]:  # noqa: ANN001
    """ATen ops of ``fn(batch)`` as an accelerator issues them: CPU cache blocking (execution policy) off."""
    with cache_blocking(False):
        fn(batch)  # warm the per-process caches (alias tables, textures, kernels) outside the count
        return count_aten_ops(lambda: fn(batch))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruption_ops_do_not_grow_with_batch(name: str) -> None:
    # JPEG: the torch codec (the device path); the CPU default codes each image with libjpeg in host threads
    kwargs = {"codec": "torch"} if name == "jpeg_compression" else {}
    op = rt.create_corruption(name, severity=(1.0, 5.0), preset="cifar", **kwargs)

    def run(b: int) -> None:
        params = op.sample_params(b, torch.Generator().manual_seed(0))
        params["severity"][:] = 3.0  # the same plan (kernel sizes, tap counts) at both batch sizes
        params = op.make_params(params["seed"], params["severity"], params["apply"])
        op(torch.rand(b, 3, 32, 32), params=params)

    small, large = _count(run, 2), _count(run, 32)
    assert small == large, {k: (small[k], large[k]) for k in small.keys() | large.keys() if small[k] != large[k]}


@pytest.mark.parametrize("name", SEQUENCES)
def test_sequence_ops_do_not_grow_with_batch(name: str) -> None:
    op = rt.sequences.create_sequence(name, preset="cifar")

    def run(b: int) -> None:
        op(torch.rand(b, 3, 32, 32), op.params_for_indices(torch.zeros(b, dtype=torch.int64), 0))

    small, large = _count(run, 2), _count(run, 32)
    assert small == large, {k: (small[k], large[k]) for k in small.keys() | large.keys() if small[k] != large[k]}


def _augment(name: str):  # noqa: ANN202
    from functools import partial

    from robust_train.augment import AugMix, CorruptionAugment, Noise2Net, PixMix, Prime

    table = {
        "augmix": AugMix,
        # the reference's PIL arithmetic on 8-bit levels, with every op kind
        "augmix_pil": partial(AugMix, pil_exact=True, all_ops=True, jsd=True),
        "corrupt": CorruptionAugment,
        "noise2net": Noise2Net,
        "pixmix": PixMix,
        "pixmix_jsd": partial(PixMix, jsd=True),
        "prime": Prime,
        "prime_jsd": partial(Prime, jsd=True),
        "prime_imagenet": partial(Prime, preset="imagenet"),
        # the ImageNet colour band (lowest frequency per sample) with a small diffeomorphism mode grid (fast on a CPU)
        "prime_band": partial(Prime, preset="imagenet", diffeo_cut=(2, 40)),
    }
    return table[name](seed=0)


@pytest.mark.parametrize(
    "name",
    ["augmix", "augmix_pil", "corrupt", "noise2net", "pixmix", "pixmix_jsd", "prime", "prime_jsd", "prime_imagenet"],
)
def test_training_augment_on_fake_cuda(name: str, host_reads: collections.Counter[str]) -> None:
    aug = _augment(name)
    params = aug.sample_params(4)
    with fake_cuda():
        out = aug(torch.empty(4, 3, 32, 32, device="cuda"), params)
    views = out if isinstance(out, (tuple, list)) else [out]
    assert all(v.device.type == "cuda" for v in views)
    assert all(n <= DOCUMENTED_SYNCS["spatter"].get(w, 0) for w, n in host_reads.items()), dict(host_reads)


@pytest.mark.parametrize("name", ["augmix", "augmix_pil"])
def test_augmix_ops_do_not_grow_with_batch(name: str) -> None:
    # every op kind of the list runs once per chain step on its host-planned (possibly empty) group of samples
    aug = _augment(name)

    def run(b: int) -> None:
        aug(torch.rand(b, 3, 32, 32), aug.sample_params(b, torch.Generator().manual_seed(0)))

    small, large = _count(run, 2), _count(run, 32)
    assert small == large, {k: (small[k], large[k]) for k in small.keys() | large.keys() if small[k] != large[k]}


@pytest.mark.parametrize("name", ["prime", "prime_band", "pixmix", "pixmix_jsd"])
def test_chain_augment_ops_do_not_grow_with_batch(name: str) -> None:
    """PRIME's primitives and PixMix's op groups (padded) and fractals (rendered batched): the op count is the same at
    every batch size, whichever ops and mixing pictures were drawn."""
    aug = _augment(name)

    def run(b: int) -> None:
        aug(torch.rand(b, 3, 32, 32), aug.sample_params(b, torch.Generator().manual_seed(0)))

    with rt.fusion("off"):
        small, large = _count(run, 2), _count(run, 32)
    assert small == large, {k: (small[k], large[k]) for k in small.keys() | large.keys() if small[k] != large[k]}


def test_noise2net_whole_batch_on_fake_cuda(host_reads: collections.Counter[str]) -> None:
    aug = _augment("noise2net")
    params = aug.sample_params(3)
    params["apply"][:] = True  # every image through its network (grouped convolutions over 3 groups)
    with fake_cuda():
        out = aug(torch.empty(3, 3, 32, 32, device="cuda"), params)
    assert out.device.type == "cuda" and out.shape == (3, 3, 32, 32) and not host_reads


@pytest.mark.parametrize("apply_all", [False, True])
def test_noise2net_ops_do_not_grow_with_batch(apply_all: bool) -> None:
    """Random per-image architectures (kernel size, dilation) and the p=0.5 selection as drawn: every allowed
    (K, D) pair runs on every call (empty groups on one zero image), so the count depends on neither."""
    aug = _augment("noise2net")

    def run(b: int) -> None:
        params = aug.sample_params(b, torch.Generator().manual_seed(0))
        if apply_all:
            params["apply"][:] = True
        aug(torch.rand(b, 3, 32, 32), params)

    small, large = _count(run, 2), _count(run, 32)
    assert small == large, {k: (small[k], large[k]) for k in small.keys() | large.keys() if small[k] != large[k]}


def test_pgd_step_without_host_reads() -> None:
    """One PGD step on ``meta`` tensors (autograd needs a real CUDA context for fake ``"cuda"`` tensors): meta
    tensors carry no data, so any host read of a value raises as it would under the fake device."""
    from robust_train.perturbations import PGD

    attack = PGD(eps=8 / 255, steps=1, seed=0)
    seeds = attack.sample_seeds(4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5)).to("meta")
    x = torch.empty(4, 3, 8, 8, device="meta")
    y = torch.zeros(4, dtype=torch.int64, device="meta")
    delta = attack(model, x, y, seeds)
    assert delta.device.type == "meta" and delta.shape == x.shape


def test_metric_updates_on_fake_cuda() -> None:
    from robust_train.metrics import (
        CorruptionErrors,
        ExpectedCalibrationError,
        PerturbationStability,
        RMSCalibrationError,
    )

    ce = CorruptionErrors(["fog", "snow"])
    ece, rms = ExpectedCalibrationError(), RMSCalibrationError()
    ps = PerturbationStability(["rotate"])
    with fake_cuda():
        for m in (ce, ece, rms, ps):
            m.to("cuda")
        logits = torch.empty(6, 10, device="cuda")
        y = torch.zeros(6, dtype=torch.int64, device="cuda")
        ce.update(logits, y, corruption="fog", severity=3)
        ece.update(logits.softmax(-1), y)
        rms.update(logits.softmax(-1), y)
        ps.update(torch.empty(6, 5, 10, device="cuda"), "rotate")
