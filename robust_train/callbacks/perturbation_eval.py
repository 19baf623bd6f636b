"""``PerturbationEvalCallback``: prediction stability on ImageNet-P style sequences at validation / test epoch end.

Generates the suite's perturbation sequences on the device for a fixed, seeded subset (sequence seeds depend on
``(seed, perturbation, dataset index)`` only) and logs ``<stage>/p/<name>/fp``, ``<stage>/p/<name>/t5d``,
``<stage>/mfp`` (unnormalised mean flip probability, the CIFAR-10-P number), ``<stage>/mt5d_unnorm`` and, with a
baseline file, ``<stage>/mfr`` and ``<stage>/mt5d``. Same options as
:class:`~robust_train.callbacks.corruption_eval.SuiteEvalCallback`.
"""

from __future__ import annotations

from .corruption_eval import SuiteEvalCallback

__all__ = ["PerturbationEvalCallback"]


class PerturbationEvalCallback(SuiteEvalCallback):
    """Perturbation-sequence evaluation (kind-p suites).

    Example:
        >>> from robust_train.evaluation import EvalSuite
        >>> PerturbationEvalCallback(EvalSuite("p", kind="p", corruptions=["rotate"], num_images=8)).suite.names
        ['rotate']
    """

    kind = "p"
