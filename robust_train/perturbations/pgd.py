"""Projected gradient descent (Madry et al. 2018) on the device: ``attack(model, x, y) -> delta``, ``apply``.

The attack maximises the cross-entropy of ``model`` (a callable from ``[0, 1]`` images to logits; normalisation
happens inside it) within an L-inf (or L2) ball of radius ``eps`` around ``x``, keeping ``x + delta`` in [0, 1]:

* random start (``random_start=True``): ``delta ~ U(-eps, eps)`` per element for L-inf, a uniform-radius random
  direction for L2; the noise is a counter-based hash of a per-sample int64 seed, so it is the same on every device
  and replays from the seeds;
* ``steps`` iterations of ``delta <- proj(delta + step_size * sign(grad))`` (L2: the per-sample normalised gradient),
  each followed by the box clamp.

Gradients are taken with ``torch.autograd.grad`` with respect to ``delta`` only, so the model's ``.grad`` fields are
never touched. **Model mode:** with ``eval_mode=True`` (default) the network is put in eval mode for the attack and
every submodule's previous mode is restored afterwards. Batch-norm statistics then come from the running averages and
are not updated by the attack's forward passes, which is what most PyTorch re-implementations of PGD and ALP training
do (e.g. TRADES). Madry et al.'s TensorFlow CIFAR code built the attack on the training-mode graph (batch statistics);
use ``eval_mode=False`` for that behaviour (running statistics are then updated by every attack step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..functional.checks import check_image
from ..functional.rng import field_normal, field_uniform, stream_id
from ..registry import Registry
from .projections import clamp_to_image, lp_norm, project

__all__ = ["PERTURBATIONS", "PGD", "Attack", "eval_mode_of"]

PERTURBATIONS: Registry = Registry("perturbation")

ModelFn = Callable[[Tensor], Tensor]


class eval_mode_of:  # noqa: N801 - used like a function in a ``with`` statement
    """Context manager: put the ``nn.Module`` behind ``model`` in eval mode, then restore every submodule's mode.

    ``model`` may be an ``nn.Module``, a bound method of one (``lit_module.forward_normalized``) or any callable
    (then nothing is changed).
    """

    def __init__(self, model: Any, enabled: bool = True) -> None:
        module = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
        self.module = module if (enabled and isinstance(module, nn.Module)) else None
        self.modes: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> eval_mode_of:
        if self.module is not None:
            self.modes = [(m, m.training) for m in self.module.modules()]
            self.module.eval()
        return self

    def __exit__(self, *exc: object) -> None:
        for m, mode in self.modes:
            m.training = mode


class Attack(nn.Module):
    """Base class of perturbations: budgets in the constructor, ``attack`` returns ``delta``, ``apply`` is pure.

    Args:
        eps: radius of the threat model (in [0, 1] pixel units, e.g. 8/255).
        norm: ``"linf"`` or ``"l2"``.
        eval_mode: run the attack with the model in eval mode (module docstring).
        seed: seed of the generator for random starts; ``None`` uses the global generator.
    """

    def __init__(self, eps: float, norm: str = "linf", eval_mode: bool = True, seed: int | None = None) -> None:
        super().__init__()
        if norm not in ("linf", "l2"):
            raise ValueError(f"norm: expected 'linf' or 'l2', got {norm!r}")
        if not float(eps) >= 0:
            raise ValueError(f"eps: expected a non-negative budget, got {eps}")
        self.eps = float(eps)
        self.norm = norm
        self.eval_mode = bool(eval_mode)
        self.generator: torch.Generator | None = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def sample_seeds(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """Per-sample int64 seeds of the random start (CPU)."""
        g = generator if generator is not None else self.generator
        return torch.randint(-(2**62), 2**62, (batch_size,), generator=g, dtype=torch.int64)

    def attack(self, model: ModelFn, x: Tensor, y: Tensor, seeds: Tensor | None = None) -> Tensor:
        """Return the perturbation ``delta`` (same shape as ``x``, detached) such that ``x + delta`` is in [0, 1]."""
        raise NotImplementedError

    @staticmethod
    def apply(x: Tensor, delta: Tensor) -> Tensor:
        """``clamp(x + delta, 0, 1)`` (pure).

        Example:
            >>> Attack.apply(torch.rand(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.1)).shape
            torch.Size([2, 3, 4, 4])
        """
        return (x + delta).clamp(0.0, 1.0)

    def forward(self, model: ModelFn, x: Tensor, y: Tensor, seeds: Tensor | None = None) -> Tensor:
        """Adversarial images ``apply(x, attack(model, x, y))``."""
        return self.apply(x, self.attack(model, x, y, seeds))


@PERTURBATIONS.register("pgd")
class PGD(Attack):
    """PGD with random start under an L-inf or L2 budget.

    Args:
        eps: budget (L-inf default 8/255).
        step_size: step per iteration (default 2/255).
        steps: number of iterations (default 10).
        random_start: start from a random point of the ball.
        norm: ``"linf"`` or ``"l2"``.
        loss: ``(logits, y) -> per-sample or summed loss`` to maximise; default summed cross-entropy.
        eval_mode: attack with the model in eval mode (module docstring).
        seed: seed of the random-start generator.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> x, y = torch.rand(2, 3, 8, 8), torch.tensor([0, 1])
        >>> delta = PGD(eps=8 / 255, steps=3, seed=0).attack(net, x, y)
        >>> delta.shape, bool(delta.abs().max() <= 8 / 255 + 1e-6)
        (torch.Size([2, 3, 8, 8]), True)
    """

    def __init__(
        self,
        eps: float = 8 / 255,
        step_size: float = 2 / 255,
        steps: int = 10,
        random_start: bool = True,
        norm: str = "linf",
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
        eval_mode: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(eps=eps, norm=norm, eval_mode=eval_mode, seed=seed)
        if not float(step_size) >= 0:
            raise ValueError(f"step_size: expected >= 0, got {step_size}")
        if int(steps) < 0:
            raise ValueError(f"steps: expected >= 0, got {steps}")
        self.step_size = float(step_size)
        self.steps = int(steps)
        self.random_start = bool(random_start)
        self.loss_fn = loss

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(logits, y).sum()
        return F.cross_entropy(logits, y, reduction="sum")

    def init_delta(self, x: Tensor, seeds: Tensor) -> Tensor:
        """Random start from per-sample seeds (zeros without ``random_start``), clamped to the image box."""
        if not self.random_start or self.eps == 0:
            return torch.zeros_like(x)
        shape = tuple(x.shape[1:])
        if self.norm == "linf":
            u = field_uniform(seeds, shape, stream_id("pgd/start"), dtype=x.dtype, device=x.device)
            delta = (2.0 * u - 1.0) * self.eps
        else:
            z = field_normal(seeds, shape, stream_id("pgd/start"), dtype=x.dtype, device=x.device)
            r = field_uniform(seeds, (1,), stream_id("pgd/radius"), dtype=x.dtype, device=x.device)
            n = lp_norm(z, "l2").clamp_min(1e-12).view(-1, *([1] * len(shape)))
            delta = z / n * r.view(-1, *([1] * len(shape))) * self.eps
        return clamp_to_image(x, delta)

    def attack(self, model: ModelFn, x: Tensor, y: Tensor, seeds: Tensor | None = None) -> Tensor:
        """Run PGD and return ``delta``: detached, shaped like ``x``, ``||delta|| <= eps`` and ``x + delta`` in [0, 1].

        Args:
            model: ``[0, 1]`` images -> logits (an ``nn.Module`` or a bound method of one).
            x: images, shape (B, C, H, W), float in [0, 1].
            y: labels, shape (B,).
            seeds: per-sample int64 seeds of the random start, shape (B,); drawn when ``None``.
        """
        check_image(x, channels=None)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"y: expected {x.shape[0]} labels, got shape {tuple(y.shape)}")
        x = x.detach()
        if seeds is None:
            seeds = self.sample_seeds(x.shape[0])
        delta = self.init_delta(x, seeds)
        with eval_mode_of(model, self.eval_mode), torch.enable_grad():
            for _ in range(self.steps):
                delta = delta.detach().requires_grad_(True)
                loss = self._loss(model(x + delta), y)
                (grad,) = torch.autograd.grad(loss, delta)
                if self.norm == "linf":
                    step = grad.sign()
                else:
                    gn = lp_norm(grad, "l2").clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                    step = grad / gn
                delta = project(delta.detach() + self.step_size * step, self.eps, self.norm)
                delta = clamp_to_image(x, delta)
        return delta.detach()

    def extra_repr(self) -> str:
        """Settings shown in ``repr``."""
        return (
            f"eps={self.eps:.5g}, step_size={self.step_size:.5g}, steps={self.steps}, "
            f"random_start={self.random_start}, norm={self.norm!r}, eval_mode={self.eval_mode}"
        )
