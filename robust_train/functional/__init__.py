"""Layer 1: functional ops, pure device maths on the tensors they are given (STYLE.md sections 1 and 1b).

Families (one module each, the numerics of ``robust_train.corruptions``): :mod:`.noise`, :mod:`.blur`,
:mod:`.weather`, :mod:`.digital` (with the exact torch JPEG codec in :mod:`.jpeg`), :mod:`.sequences` (ImageNet-P),
:mod:`.augment_ops` (AugMix ops; :mod:`.augment_ops_pil` their 8-bit Pillow arithmetic), :mod:`.adain`, and their
building blocks :mod:`.filters` and :mod:`.color`.

Public helpers every op builds on:

* :mod:`.rng`: the counter-based hash random fields (``field_uniform``, ``field_normal``, ``combine_seeds``, ...):
  every random quantity is a function of ``(seed, stream, element)``, identical on every device and batch.
* :mod:`.checks`: argument and image validation (``check_image``, ``per_sample``, ``check_per_sample``): host values
  are checked at once, device values without stalling the stream.

Private modules hold execution machinery: ``_fused`` (compiled kernels, fusion modes), ``_execution`` (CPU cache
blocking), ``_dispatch`` (Triton kernels), ``_assets`` (frost textures).
"""

from . import checks, rng

__all__ = ["checks", "rng"]
