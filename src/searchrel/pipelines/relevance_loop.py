"""The relevance loop as a KFP v2 pipeline.

ingest -> captions -> teacher train -> teacher evaluate
                        -> ParallelFor(shard): label shard -> collect -> features
                           -> student train -> student evaluate

The served model is the ``student`` output (a self-contained bundle: exported student and
item store). Built by a function so that images are resolved at build time, not import time.
"""

from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics, Model

from searchrel.components import build_components
from searchrel.config import LabelConfig
from searchrel.images import Images
from searchrel.pipelines.relabel import relabel_and_distil
from searchrel.pipelines.shared_steps import ingest_and_caption, train_teacher

PIPELINE_NAME = "searchrel-relevance-loop"


class LoopOutputs(NamedTuple):
    teacher: Model
    student: Model
    features: Dataset
    teacher_metrics: Metrics
    student_metrics: Metrics


def build_pipeline(
    images: Images | None = None, label: LabelConfig | None = None
) -> Any:  # a kfp GraphComponent
    """The pipeline; ``label.shards`` labeling tasks run in parallel, on the nodes
    ``label.backend`` needs (both fixed when compiled)."""
    ops = build_components(images)
    labeling = label or LabelConfig()  # shard count and backend: fixed when compiled

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def relevance_loop(source: str = "sample", config_yaml: str = "") -> LoopOutputs:
        data, items = ingest_and_caption(ops, source, config_yaml)
        trained = train_teacher(ops, items, data.outputs["judgments"], config_yaml)
        teacher, teacher_eval = trained.teacher, trained.evaluation
        done = relabel_and_distil(
            ops,
            teacher.outputs["teacher"],
            items,
            data.outputs["judgments"],
            data.outputs["impressions"],
            config_yaml,
            labeling,
        )
        features, student, student_eval = done.features, done.student, done.student_eval
        return LoopOutputs(
            teacher=teacher.outputs["teacher"],
            student=student.outputs["student"],
            features=features.outputs["features"],
            teacher_metrics=teacher_eval.outputs["metrics"],
            student_metrics=student_eval.outputs["metrics"],
        )

    return relevance_loop


def compile_pipeline(
    out: Path, images: Images | None = None, label: LabelConfig | None = None
) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(images, label), str(out))
    return str(out)
