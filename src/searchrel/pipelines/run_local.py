"""Run the relevance loop with KFP's local runner (SubprocessRunner, this Python environment)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

from kfp import local

from searchrel.config import load_config
from searchrel.pipelines.catalog import build
from searchrel.pipelines.relevance_loop import build_pipeline


def _init_local(pipeline_root: Path, workspace_root: Path | None = None) -> None:
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # use_venv=False: the steps run in this interpreter, where searchrel is installed, exactly
    # as they run in the image on a cluster; nothing is installed at run time.
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root.resolve()),
        raise_on_error=True,
        **({"workspace_root": str(workspace_root)} if workspace_root else {}),
    )


def run_local(source: str, config_path: Path | None, pipeline_root: Path) -> dict[str, Any]:
    """Run every step as a subprocess; return the local paths of the pipeline's outputs."""
    _init_local(pipeline_root)
    config_yaml = Path(config_path).read_text(encoding="utf-8") if config_path else ""
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Our images are named searchrel-python*, which kfp's "is this a Python image" guess
        # does not recognise; the steps do run in a Python environment.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        label = load_config(config_path).label
        task = build_pipeline(label=label)(source=source, config_yaml=config_yaml)
    outputs = {
        name: task.outputs[name]
        for name in ("teacher", "student", "features", "teacher_metrics", "student_metrics")
    }
    return {
        "pipeline_root": str(pipeline_root.resolve()),
        "seconds": round(time.perf_counter() - started, 1),
        "outputs": {name: art.path for name, art in outputs.items()},
        "metrics": {
            name: dict(outputs[name].metadata) for name in ("teacher_metrics", "student_metrics")
        },
    }


def run_drift_watch_local(
    inputs: dict[str, str], config_path: Path, pipeline_root: Path
) -> dict[str, Any]:
    """drift_watch under kfp.local: ``inputs`` are the pipeline's URI parameters (local paths)."""
    return run_pipeline_local("drift_watch", inputs, config_path, pipeline_root)


def run_pipeline_local(
    name: str, params: dict[str, str], config_path: Path, pipeline_root: Path
) -> dict[str, Any]:
    """Any pipeline of the catalog under kfp.local, with string parameters (URIs: local paths).

    Returns the local paths of its output artifacts (none for drift_watch)."""
    # dsl.importer copies local paths into a workspace, which kfp.local removes when it ends.
    _init_local(pipeline_root, pipeline_root.resolve().with_name(pipeline_root.name + ".workspace"))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        label = load_config(config_path).label
        config_yaml = Path(config_path).read_text(encoding="utf-8")
        task = build(name, label=label)(**params, config_yaml=config_yaml)
    outputs = dict(task.outputs) if task is not None and hasattr(task, "outputs") else {}
    return {
        "pipeline": name,
        "pipeline_root": str(pipeline_root.resolve()),
        "seconds": round(time.perf_counter() - started, 1),
        "outputs": {k: getattr(v, "path", v) for k, v in outputs.items()},
    }
