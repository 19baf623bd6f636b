#!/usr/bin/env bash
# The GPU checks, in one script (`make gpu-check`), for the day a GPU is lent:
#   1. the GPU-marked tests and the device-parametrised tests on CUDA (kernels against their torch references);
#   2. the corruption benchmark on CUDA (ours vs the CPU reference, default fusion mode);
#   3. the end-to-end ImageNet-C evaluation of a ResNet-50 (batch 256, bf16): corruption vs model time per batch,
#      host syncs per batch (torch.cuda.set_sync_debug_mode), peak memory.
# Each step's exit status is kept; the script fails if any step failed. Results land in benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
if ! $PYTHON -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no CUDA device visible to torch; nothing to check" >&2
    exit 2
fi
status=0
step() { echo ">> $*"; "$@" || { echo "!! failed: $*" >&2; status=1; }; }
step $PYTHON -m pytest -q -m gpu
step env RT_TEST_DEVICE=cuda $PYTHON -m pytest -q -m "not slow" tests/kernels tests/corruptions tests/functional
step $PYTHON benchmarks/corruptions.py --device cuda --sizes 224 --batch 224:256
step $PYTHON benchmarks/imagenet_c_e2e.py --device cuda --severities 1,2,3,4,5
exit $status
