"""Shared benchmark infrastructure (kornia ``benchmarks/`` contract, STYLE.md section 11).

* :func:`ensure_allocator` pins glibc malloc settings for the whole run (re-executes the script once) and
  :func:`allocator_metadata` records them. Why: on CPU, torch allocates large tensors (a 64 x 3 x 224 x 224 float32
  batch is 38.5 MB) with ``posix_memalign``; glibc serves requests above its *dynamic* mmap threshold (128 KiB
  rising to at most 32 MiB) with a fresh ``mmap`` and unmaps them on free, so every call page-faults its
  temporaries in again and timings swing with whatever the threshold happens to be. With the fixed settings every
  allocation below 1 GiB comes from the heap, freed memory is kept (no trimming) and reused without page faults.
* :func:`time_call` times a callable with ``torch.utils.benchmark.Timer.blocked_autorange`` (warm-up, CUDA sync,
  median and IQR); :func:`summarize_times` gives the same statistics for times measured by hand.
* :func:`measure_peak_rss` (CPU: ``VmHWM`` after resetting it through ``/proc/self/clear_refs``) runs inside a
  fresh process started by :func:`peak_memory_subprocess` (``python -m benchmarks._memprobe``);
  :func:`cuda_peak_memory` uses ``torch.cuda.max_memory_allocated``.
* :func:`collect_metadata`, :func:`markdown_table`, :func:`write_results` (``{metadata, results}`` JSON + markdown).

This module imports only the standard library at import time (torch lazily), so process-pool workers that
re-import a benchmark script's main module stay light.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "RESULTS_DIR",
    "FIXED_MALLOC",
    "ALLOCATOR_KEYS",
    "allocator_env",
    "ensure_allocator",
    "allocator_metadata",
    "cpu_cores",
    "cpu_accounting",
    "foreign_cpu",
    "collect_metadata",
    "time_call",
    "summarize_times",
    "measure_peak_rss",
    "peak_memory_subprocess",
    "cuda_peak_memory",
    "geomean",
    "markdown_table",
    "fmt",
    "sanitize",
    "write_results",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"

#: glibc malloc settings of a ``--allocator fixed`` run (environment variables read by glibc at start-up).
FIXED_MALLOC: dict[str, str] = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),  # requests < 1 GiB come from the heap, never from a fresh mmap
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),  # never give freed heap memory back to the OS (no re-faulting)
    "MALLOC_TOP_PAD_": str(1 << 28),  # grow the heap 256 MiB at a time (virtual; pages are touched on use)
}
#: Every environment variable that changes glibc malloc behaviour and is recorded in the metadata.
ALLOCATOR_KEYS: tuple[str, ...] = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_ARENA_MAX",
    "GLIBC_TUNABLES",
)
_ALLOCATOR_MODES = ("fixed", "default", "inherit")
_REEXEC_FLAG = "RT_BENCH_REEXEC"
_MODE_FLAG = "RT_BENCH_ALLOCATOR"


# ---------------------------------------------------------------------------------------------------- allocator
def allocator_env(mode: str) -> dict[str, str | None]:
    """Environment a run with allocator ``mode`` needs (``None`` = variable must be unset).

    Args:
        mode: ``"fixed"`` (:data:`FIXED_MALLOC`), ``"default"`` (glibc defaults: the malloc variables unset) or
            ``"inherit"`` (leave the environment alone).

    Raises:
        ValueError: unknown mode.
    """
    if mode not in _ALLOCATOR_MODES:
        raise ValueError(f"allocator mode must be one of {_ALLOCATOR_MODES}, got {mode!r}")
    if mode == "inherit":
        return {}
    keys = (*FIXED_MALLOC, "MALLOC_MMAP_MAX_")
    if mode == "fixed":
        return {k: FIXED_MALLOC.get(k) for k in keys}
    return dict.fromkeys(keys)


def ensure_allocator(mode: str) -> None:
    """Make the current process run with allocator ``mode``, re-executing it once if the environment differs.

    glibc reads its malloc variables only at start-up, so the settings are applied by ``os.execv`` of the same
    command line (``sys.orig_argv``) with a corrected environment. Child processes (process pools, memory probes)
    inherit it. Call this first thing in ``main()``, before any large allocation. No-op on non-glibc systems.

    Raises:
        ValueError: unknown mode.
        RuntimeError: the environment is still wrong after the re-execution.
    """
    want = allocator_env(mode)
    os.environ[_MODE_FLAG] = mode
    if not want or platform.libc_ver()[0] != "glibc":
        return
    if all(os.environ.get(k) == v for k, v in want.items()):
        return
    if os.environ.get(_REEXEC_FLAG) == "1":
        raise RuntimeError(f"allocator settings {want} did not take effect after re-executing {sys.orig_argv}")
    for k, v in want.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    os.environ[_REEXEC_FLAG] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _large_alloc_is_mmapped(nbytes: int = 64 << 20) -> bool | None:
    """Whether glibc serves a ``nbytes`` malloc with mmap right now (``None`` if it cannot be checked)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        before = libc.mallinfo2().hblkhd
        ptr = libc.malloc(ctypes.c_size_t(nbytes))
        after = libc.mallinfo2().hblkhd
        libc.free(ctypes.c_void_p(ptr))
        return after - before >= nbytes
    except (OSError, AttributeError):
        return None


def allocator_metadata() -> dict[str, Any]:
    """The allocator settings in effect: mode, glibc version, the malloc variables, and a 64 MiB malloc probe."""
    libc, version = platform.libc_ver()
    return {
        "mode": os.environ.get(_MODE_FLAG, "inherit"),
        "libc": f"{libc} {version}".strip(),
        "env": {k: os.environ.get(k) for k in ALLOCATOR_KEYS},
        "malloc_64MiB_uses_mmap": _large_alloc_is_mmapped() if libc == "glibc" else None,
        "reexecuted": os.environ.get(_REEXEC_FLAG) == "1",
    }


# ---------------------------------------------------------------------------------------------------- metadata
def cpu_accounting() -> dict[str, float] | None:
    """A snapshot for :func:`foreign_cpu`: monotonic wall time, machine-wide busy and steal CPU seconds
    (``/proc/stat``: user, nice, system, irq, softirq; steal separately) and this process's own CPU seconds,
    including its waited-for children (the reference pool and the memory probes). ``None`` without ``/proc``."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    t = os.times()
    return {
        "wall_s": time.monotonic(),
        "busy_s": sum(ticks[i] for i in (0, 1, 2, 5, 6) if i < len(ticks)) / hz,
        "steal_s": (ticks[7] if len(ticks) > 7 else 0) / hz,
        "own_s": t.user + t.system + t.children_user + t.children_system,
    }


def foreign_cpu(start: Mapping[str, float] | None, end: Mapping[str, float] | None, cores: int) -> dict[str, float]:
    """CPU time used by *other* processes (and stolen by the hypervisor) between two :func:`cpu_accounting`
    snapshots, as shares of the machine's capacity ``wall * cores``: the benchmark's own load does not count
    (a load average does include it). Empty when a snapshot is missing."""
    if not start or not end:
        return {}
    wall = max(end["wall_s"] - start["wall_s"], 1e-9)
    foreign = max((end["busy_s"] - start["busy_s"]) - (end["own_s"] - start["own_s"]), 0.0)
    steal = max(end["steal_s"] - start["steal_s"], 0.0)
    return {
        "wall_s": wall,
        "foreign_cpu_s": foreign,
        "foreign_share": foreign / (wall * cores),
        "steal_share": steal / (wall * cores),
    }


def cpu_cores() -> int:
    """CPU cores this process may run on (affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_metadata(device: str, threads: int, packages: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    """Everything needed to interpret and reproduce a benchmark result.

    Args:
        device: device the torch side ran on (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        threads: torch intra-op threads used for timing.
        packages: extra distribution names whose versions are recorded (reference packages, ...).
        **extra: run configuration, stored under ``"config"``.

    Returns:
        JSON-serialisable dict: date, command, git commit/dirty flag, Python/torch/CUDA/cuDNN versions, GPU name,
        CPU model, core count, thread settings, allocator settings, load average, package versions, config.
    """
    import torch

    dirty = _git("status", "--porcelain", "--untracked-files=no")
    cuda = torch.cuda.is_available()
    gpu = None
    if cuda and str(device).startswith("cuda"):
        gpu = torch.cuda.get_device_name(torch.device(device))
    versions = {p: _version(p) for p in ("torch", "torchvision", "numpy", "robust-train", *packages)}
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(getattr(sys, "orig_argv", sys.argv)),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if dirty is None else bool(dirty),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "device": str(device),
        "gpu_name": gpu,
        "cpu_model": _cpu_model(),
        "cpu_cores": cpu_cores(),
        "torch_threads": int(threads),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "allocator": allocator_metadata(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "packages": versions,
        "config": extra,
    }


# ---------------------------------------------------------------------------------------------------- timing
def tier_warmup(fn: Callable[[], Any], min_seconds: float = 0.0) -> dict[str, Any]:
    """Warm up ``fn`` (a robust_train call) until fusion ``"auto"`` has compiled every kernel it would compile.

    The default mode compiles a kernel signature from its ``TIER_CPU_CALLS``-th call (or earlier once its eager runs
    took ``TIER_CPU_SECONDS``), so ``TIER_CPU_CALLS + 1`` calls reach the steady state of a long job (an evaluation
    suite, an epoch) for every signature ``fn`` repeats; ``min_seconds`` keeps calling at least that long. Returns
    the calls made and the seconds spent (excluded from the timing that follows).
    """
    from robust_train.functional import _fused

    start = time.perf_counter()
    calls = 0
    while calls < _fused.TIER_CPU_CALLS + 1 or time.perf_counter() - start < min_seconds:
        fn()
        calls += 1
    return {"tier_warmup_calls": calls, "tier_warmup_s": time.perf_counter() - start}


def time_call(
    fn: Callable[[], Any],
    *,
    threads: int,
    min_run_time: float = 1.0,
    warmup: int = 1,
    label: str = "",
    sub_label: str = "",
    description: str = "",
) -> dict[str, Any]:
    """Time ``fn()`` with ``torch.utils.benchmark.Timer.blocked_autorange``.

    ``fn`` first runs ``warmup`` times untimed (first-call effects: lazy imports, caches, allocator growth). The
    Timer then picks the block size (those runs are not counted either), synchronises CUDA around each block and
    runs with ``threads`` intra-op threads.

    Args:
        fn: the callable to time (no arguments).
        threads: torch intra-op threads during the measurement.
        min_run_time: seconds of measured runs at least.
        warmup: untimed calls before the Timer starts.
        label: Timer label (e.g. the benchmark name).
        sub_label: Timer sub-label (e.g. the corruption).
        description: Timer description (e.g. the configuration).

    Returns:
        ``median_s`` and ``iqr_s`` (per call), ``mean_s``, ``runs`` (measured blocks), ``number_per_run`` (calls per
        block), ``times_s`` (per-call time of each block), and two load-independent diagnostics averaged over every
        call the Timer made (after the warm-up): ``cpu_s_per_call`` (process user + system CPU time, all threads)
        and ``minor_faults_per_call`` (page faults; high values mean fresh memory is being mapped on every call).
    """
    from torch.utils.benchmark import Timer

    calls = [0]

    def counted() -> Any:
        calls[0] += 1
        return fn()

    timer = Timer(
        stmt="fn()",
        globals={"fn": counted},
        num_threads=int(threads),
        label=label,
        sub_label=sub_label,
        description=description,
    )
    for _ in range(warmup):
        fn()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    m = timer.blocked_autorange(min_run_time=min_run_time)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    n = max(calls[0], 1)
    times = [float(t) for t in m.times]
    return {
        "median_s": float(m.median),
        "iqr_s": float(m.iqr),
        "mean_s": float(m.mean),
        "runs": len(times),
        "number_per_run": int(m.number_per_run),
        "times_s": times,
        "cpu_s_per_call": (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / n,
        "minor_faults_per_call": (r1.ru_minflt - r0.ru_minflt) / n,
    }


def summarize_times(times: Sequence[float]) -> dict[str, Any]:
    """Median and IQR (linear interpolation, as torch's ``Measurement``) of hand-measured times.

    Raises:
        ValueError: empty ``times``.
    """
    if not times:
        raise ValueError("summarize_times needs at least one time, got none")
    ts = sorted(float(t) for t in times)
    iqr = 0.0
    if len(ts) > 1:
        q = statistics.quantiles(ts, n=4, method="inclusive")
        iqr = q[2] - q[0]
    return {
        "median_s": statistics.median(ts),
        "iqr_s": iqr,
        "mean_s": statistics.fmean(ts),
        "runs": len(ts),
        "times_s": ts,
    }


# ---------------------------------------------------------------------------------------------------- memory
def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    """Give free heap memory back to the OS (glibc ``malloc_trim(0)``), so it is not counted in the baseline."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(ctypes.c_size_t(0))
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak_rss(fn: Callable[[], Any]) -> dict[str, Any]:
    """Resident-memory high-water mark of one call of ``fn`` in *this* process (use a fresh process).

    Linux: first returns free heap memory to the OS (glibc ``malloc_trim``; otherwise memory freed during set-up
    would be reused by the call without showing up), resets ``VmHWM`` to the current RSS by writing ``5`` to
    ``/proc/self/clear_refs``, then reads it after the call. Fallback: ``getrusage(RUSAGE_SELF).ru_maxrss``
    (high-water mark since process start, so set-up and warm-up must be smaller than the call). tracemalloc does
    not see torch's allocations, so it is not used.

    Returns:
        ``baseline_mb`` (RSS before the call), ``peak_mb`` (high-water mark during it), ``extra_mb`` (their
        difference: the call's own peak footprint) and ``method``.
    """
    gc.collect()
    _malloc_trim()
    if _reset_peak_rss() and _status_bytes("VmHWM") is not None:
        base = _status_bytes("VmRSS") or 0
        fn()
        peak = _status_bytes("VmHWM") or 0
        method = "VmHWM after clear_refs=5"
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        method = "ru_maxrss"
    mb = 1024.0 * 1024.0
    return {"baseline_mb": base / mb, "peak_mb": peak / mb, "extra_mb": max(peak - base, 0) / mb, "method": method}


def peak_memory_subprocess(
    target: str, kwargs: Mapping[str, Any], *, env: Mapping[str, str] | None = None, timeout: float = 900.0
) -> dict[str, Any]:
    """Measure the peak RSS of one call in a fresh Python process.

    The child runs ``python -m benchmarks._memprobe target kwargs_json`` from the repository root: it imports
    ``target`` (``"package.module:function"``), calls it with ``kwargs`` to set up (load inputs, warm up) and
    get back a no-argument callable, then reports :func:`measure_peak_rss` of that callable.

    Args:
        target: ``"module:function"`` of the set-up function.
        kwargs: JSON-serialisable keyword arguments for it.
        env: environment overrides for the child (e.g. single-threaded BLAS).
        timeout: seconds before the child is killed.

    Returns:
        The :func:`measure_peak_rss` dict, or ``{"error": message}`` if the child failed.
    """
    cmd = [sys.executable, "-m", "benchmarks._memprobe", target, json.dumps(dict(kwargs))]
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"memory probe timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"memory probe failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def cuda_peak_memory(fn: Callable[[], Any], device: str) -> dict[str, Any]:
    """Peak CUDA memory allocated by one call of ``fn`` beyond what was allocated before it."""
    import torch

    dev = torch.device(device)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    fn()
    torch.cuda.synchronize(dev)
    peak = torch.cuda.max_memory_allocated(dev)
    mb = 1024.0 * 1024.0
    return {
        "baseline_mb": base / mb,
        "peak_mb": peak / mb,
        "extra_mb": (peak - base) / mb,
        "method": "torch.cuda.max_memory_allocated",
    }


# ---------------------------------------------------------------------------------------------------- output
def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of positive numbers (``None`` for an empty input).

    Raises:
        ValueError: a value is not positive.
    """
    vals = [float(v) for v in values]
    if not vals:
        return None
    if any(not v > 0 for v in vals):
        raise ValueError(f"geomean needs positive values, got {vals}")
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def fmt(value: Any, spec: str = ".3g") -> str:
    """Format a table cell: ``None``/NaN -> ``-``, numbers with ``spec``, anything else with ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return format(value, spec)
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str | Callable, str]]) -> str:
    """A GitHub markdown table.

    Args:
        rows: one mapping per row.
        columns: ``(header, key or callable(row), format spec)`` per column; see :func:`fmt`.

    Returns:
        The table as a string (header, separator, one line per row).
    """
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for _, key, spec in columns:
            value = key(row) if callable(key) else row.get(key)
            cells.append(fmt(value, spec).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sanitize(obj: Any) -> Any:
    """Recursively make ``obj`` strict-JSON-safe: NaN/inf -> ``None``, tuples -> lists, keys -> str."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [sanitize(v) for v in obj]
    return obj


def write_results(stem: str | Path, metadata: Mapping[str, Any], results: Any, markdown: str) -> tuple[Path, Path]:
    """Write ``<stem>.json`` (``{"metadata": ..., "results": ...}``) and ``<stem>.md``.

    Returns:
        The two paths.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = Path(f"{stem}.json"), Path(f"{stem}.md")
    payload = sanitize({"metadata": dict(metadata), "results": results})
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path
