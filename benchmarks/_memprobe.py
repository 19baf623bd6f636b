"""Child process of :func:`benchmarks.common.peak_memory_subprocess`: set up, then measure one call's peak RSS.

Usage (from the repository root): ``python -m benchmarks._memprobe package.module:setup '{"kwarg": 1}'``. The set-up
function loads inputs, warms up, and returns the no-argument callable to measure. Prints one JSON line.
"""

from __future__ import annotations

import importlib
import json
import sys

from benchmarks.common import measure_peak_rss


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or ":" not in args[0]:
        print("usage: python -m benchmarks._memprobe package.module:setup_function '<json kwargs>'", file=sys.stderr)
        return 2
    module, _, name = args[0].partition(":")
    setup = getattr(importlib.import_module(module), name)
    run = setup(**json.loads(args[1]))
    print(json.dumps(measure_peak_rss(run)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
