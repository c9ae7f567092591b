"""The relevance loop as a KFP v2 pipeline.

ingest -> teacher train -> teacher evaluate
                        -> label impressions -> features -> student train -> student evaluate

The served model is the ``student`` output (a self-contained bundle: exported student and
item store). Built by a function so that images are resolved at build time, not import time.
"""

from pathlib import Path
from typing import Any, NamedTuple

from kfp import compiler, dsl
from kfp.dsl import Dataset, Metrics, Model

from components import build_components
from searchrel.images import Images

PIPELINE_NAME = "searchrel-relevance-loop"


class LoopOutputs(NamedTuple):
    student: Model
    features: Dataset
    teacher_metrics: Metrics
    student_metrics: Metrics


def build_pipeline(images: Images | None = None) -> Any:  # a kfp GraphComponent
    ops = build_components(images)

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def relevance_loop(source: str = "sample", config_yaml: str = "") -> LoopOutputs:
        data = ops.ingest(source=source, config_yaml=config_yaml).set_display_name("ingest")
        teacher = ops.teacher_train(
            items=data.outputs["items"],
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: fine-tune")
        teacher_eval = ops.teacher_evaluate(
            teacher=teacher.outputs["teacher"],
            items=data.outputs["items"],
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: evaluate")
        labels = ops.label(
            teacher=teacher.outputs["teacher"],
            items=data.outputs["items"],
            impressions=data.outputs["impressions"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: label impressions")
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


def compile_pipeline(out: Path, images: Images | None = None) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(images), str(out))
    return str(out)
