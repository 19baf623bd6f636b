"""Triton kernels (layer 1), each the twin of a torch reference in ``robust_train/functional``.

The modules here are not imported as a package: ``robust_train.functional._dispatch`` loads them lazily by file
path (``load_kernel_module``), so importing ``robust_train`` never needs triton or a compiler. See ``README.md``.
"""
