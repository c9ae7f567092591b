"""The labeler's CPU threads: label.threads 0 means the CPUs this process may use, the smaller
of its affinity mask and the cgroup v2 quota (a pod's CPU limit), not the node's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from searchrel.labeling.threads import cgroup_cpu_limit, configure_torch_threads, usable_cpus


def cpu_max(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(text + "\n")
    return path


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000", None),  # no quota
        ("800000 100000", 8),  # a pod with limits.cpu: 8
        ("150000 100000", 1),  # 1.5 CPUs: rounded down
        ("50000 100000", 1),  # half a CPU: still one thread
        ("400000 50000", 8),  # another period
    ],
)
def test_the_cgroup_quota_is_read_as_whole_cpus(tmp_path: Path, text: str, cpus: int) -> None:
    assert cgroup_cpu_limit(cpu_max(tmp_path, text)) == cpus


def test_no_cgroup_file_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_usable_cpus_is_the_smaller_of_the_affinity_and_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(cpu_max(tmp_path, "max 100000")) == affinity
    assert usable_cpus(cpu_max(tmp_path, "100000 100000")) == 1
    assert usable_cpus(cpu_max(tmp_path, f"{(affinity + 5) * 100000} 100000")) == affinity


def test_zero_threads_sets_torch_to_the_quota_and_a_number_is_taken_as_given(
    tmp_path: Path,
) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        assert configure_torch_threads(0, cpu_max(tmp_path, "100000 100000")) == 1
        assert torch.get_num_threads() == 1
        assert configure_torch_threads(2, cpu_max(tmp_path, "100000 100000")) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
