"""How many CPU threads the local teacher may use: the CPUs this process may run on.

``os.cpu_count()`` (and torch's default) counts the node's cores; a pod with a CPU limit of 8
on a 64-core node would start 64 threads, 8 of which the CFS quota lets run at a time, and
spend the rest of each period throttled. The usable count is the smaller of the CPU affinity
mask and the cgroup v2 quota (``cpu.max``: "QUOTA PERIOD", or "max" for none).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2; absent on v1 hosts and macOS


def cgroup_cpu_limit(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """The CPUs a cgroup v2 quota allows, rounded down and at least 1; None: no quota (the
    file says "max", is missing or cannot be read)."""
    try:
        fields = Path(cpu_max).read_text(encoding="utf-8").split()
    except OSError:
        return None
    if not fields or fields[0] == "max":
        return None
    try:
        quota = int(fields[0])
        period = int(fields[1]) if len(fields) > 1 else 100_000  # the kernel's default period
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, quota // period)


def usable_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """min(CPUs in this process's affinity mask, the cgroup quota)."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cpu_max)
    return min(affinity, limit) if limit else affinity


def configure_torch_threads(threads: int, cpu_max: Path | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (0: ``usable_cpus``) and its inter-op pool
    to 1 thread (labeling runs one op at a time) where that pool has not started yet.
    Returns the intra-op thread count."""
    import torch

    n = threads or usable_cpus(cpu_max or CGROUP_CPU_MAX)
    torch.set_num_threads(n)
    # torch allows this once, before any inter-op work; after that it raises: already decided
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n
