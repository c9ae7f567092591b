"""The relevance loop as a KFP v2 pipeline.

ingest -> teacher train -> teacher evaluate
                        -> ParallelFor(shard): label shard -> collect -> features
                           -> student train -> student evaluate

The served model is the ``student`` output (a self-contained bundle: exported student and
item store). Built by a function so that images are resolved at build time, not import time.
"""

from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics, Model

from components import build_components
from pipelines.gpu import on_gpu
from searchrel.config import LabelConfig
from searchrel.images import Images

PIPELINE_NAME = "searchrel-relevance-loop"


class LoopOutputs(NamedTuple):
    student: Model
    features: Dataset
    teacher_metrics: Metrics
    student_metrics: Metrics


def build_pipeline(
    images: Images | None = None, label_shards: int = LabelConfig().shards
) -> Any:  # a kfp GraphComponent
    """The pipeline; ``label_shards`` labeling tasks run in parallel (fixed when compiled)."""
    ops = build_components(images)

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def relevance_loop(source: str = "sample", config_yaml: str = "") -> LoopOutputs:
        data = ops.ingest(source=source, config_yaml=config_yaml).set_display_name("ingest")
        teacher = ops.teacher_train(
            items=data.outputs["items"],
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: fine-tune")
        on_gpu(teacher)
        teacher_eval = ops.teacher_evaluate(
            teacher=teacher.outputs["teacher"],
            items=data.outputs["items"],
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: evaluate")
        with dsl.ParallelFor(items=list(range(label_shards)), name="label-shards") as shard:
            shard_task = ops.label_shard(
                teacher=teacher.outputs["teacher"],
                items=data.outputs["items"],
                impressions=data.outputs["impressions"],
                config_yaml=config_yaml,
                shard=shard,
                n_shards=label_shards,
            ).set_display_name("teacher: label a shard")
            on_gpu(shard_task).set_retry(num_retries=2, backoff_duration="60s")
        labels = ops.label_collect(
            shard_labels=dsl.Collected(shard_task.outputs["shard_labels"])
        ).set_display_name("teacher: collect labels")
        features = ops.build_features(
            items=data.outputs["items"],
            judgments=data.outputs["judgments"],
            teacher_labels=labels.outputs["teacher_labels"],
            impressions=data.outputs["impressions"],
            config_yaml=config_yaml,
        ).set_display_name("features")
        student = ops.student_train(
            features=features.outputs["features"], config_yaml=config_yaml
        ).set_display_name("student: distil")
        student_eval = ops.student_evaluate(
            student=student.outputs["student"], features=features.outputs["features"]
        ).set_display_name("student: evaluate")
        return LoopOutputs(
            student=student.outputs["student"],
            features=features.outputs["features"],
            teacher_metrics=teacher_eval.outputs["metrics"],
            student_metrics=student_eval.outputs["metrics"],
        )

    return relevance_loop


def compile_pipeline(
    out: Path, images: Images | None = None, label_shards: int = LabelConfig().shards
) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(images, label_shards), str(out))
    return str(out)
