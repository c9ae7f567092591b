"""What a pipeline component does at run time: run one `searchrel` command, fail loudly.

KFP components stay thin (image + arguments); this is the only code they share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def cli_command(*args: str) -> list[str]:
    """`python -m searchrel args...` in the component's interpreter."""
    return [sys.executable, "-m", "searchrel", *args]


def run_cli(*args: str) -> None:
    """Run `searchrel args...`; a non-zero exit fails the task."""
    cmd = cli_command(*args)
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def config_file(config_yaml: str) -> str:
    """The pipeline's config (a YAML string parameter) as a file the stages can read."""
    fd, name = tempfile.mkstemp(suffix=".yaml", prefix="searchrel-config-")
    with open(fd, "w", encoding="utf-8") as handle:
        handle.write(config_yaml or "{}\n")
    return name


def read_json(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def scalar_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric top-level entries of a metrics dict, for KFP's Metrics artifact."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
