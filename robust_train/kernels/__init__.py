"""Triton kernels (layer 1), each the twin of a torch reference in ``robust_train/functional``.

A subpackage shipped in the wheel, but its modules are not imported by ``robust_train``:
``robust_train.functional._dispatch`` loads them lazily by file path (``load_kernel_module``, one copy per Triton
interpreter mode), so importing ``robust_train`` never needs triton or a compiler. See ``README.md``.
"""
