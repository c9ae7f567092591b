"""Every pipeline of searchrel by name, and where its compiled YAML lives.

The compiled files under src/searchrel/pipelines/compiled/ are committed and shipped in the
package (a platform team uploads them as they are; `searchrel pipelines submit` sends them), and
CI recompiles and checks they are fresh. They are compiled with the default
images (searchrel.images with no environment override) and the ``label`` section of
configs/cluster.yaml (shard count; backend, which puts the label shards on GPU or CPU nodes).
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler

from searchrel.checkout import checkout_path
from searchrel.config import LabelConfig, load_config
from searchrel.images import Images

COMPILED_DIR = Path(__file__).resolve().parent / "compiled"
CLUSTER_CONFIG = Path("configs/cluster.yaml")  # what the cluster runs, in the repository


def _teacher_training(images: Images | None, label: LabelConfig) -> Any:
    from searchrel.pipelines.teacher_training import build_teacher_training

    return build_teacher_training(images)


def _daily_distillation(images: Images | None, label: LabelConfig) -> Any:
    from searchrel.pipelines.daily_distillation import build_daily_distillation

    return build_daily_distillation(images, label)


def _drift_watch(images: Images | None, label: LabelConfig) -> Any:
    from searchrel.pipelines.drift_watch import build_drift_watch

    return build_drift_watch(images, label)


def _relevance_loop(images: Images | None, label: LabelConfig) -> Any:
    from searchrel.pipelines.relevance_loop import build_pipeline

    return build_pipeline(images, label)


# name -> builder(images, label config); the name is also the compiled file's stem.
PIPELINES: dict[str, Callable[[Images | None, LabelConfig], Any]] = {
    "teacher_training": _teacher_training,  # human labels -> teacher (GPU)
    "daily_distillation": _daily_distillation,  # impressions -> labels -> student -> gate -> deploy
    "drift_watch": _drift_watch,  # scheduled: drift -> relabel -> student
    "relevance_loop": _relevance_loop,  # the whole loop in one run (the demo)
}


def build(name: str, images: Images | None = None, label: LabelConfig | None = None) -> Any:
    if name not in PIPELINES:
        raise KeyError(f"no pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    return PIPELINES[name](images, label or LabelConfig())


def compile_one(
    name: str, out: Path, images: Images | None = None, label: LabelConfig | None = None
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(name, images, label), str(out))
    return out


def cluster_label_config(config: Path | None = None) -> LabelConfig:
    """The label section the pipelines are compiled with: ``config``'s (default: the
    checkout's configs/cluster.yaml; defaults where the file sets none). Shard count and
    backend are graph structure, not run-time parameters."""
    return load_config(config or checkout_path(CLUSTER_CONFIG)).label


def compile_all(
    out_dir: Path = COMPILED_DIR, images: Images | None = None, label: LabelConfig | None = None
) -> list[Path]:
    """Every pipeline; ``label`` None: configs/cluster.yaml's label section."""
    label = label or cluster_label_config()
    return [compile_one(n, out_dir / f"{n}.yaml", images, label) for n in PIPELINES]
