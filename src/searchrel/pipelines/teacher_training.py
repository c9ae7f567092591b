"""teacher_training: fine-tune the LLM teacher on human labels and evaluate it.

ingest (validate the tables) -> captions (BLIP) -> teacher: fine-tune (qLoRA on a GPU node)
-> teacher: evaluate.
Run when the human labels or the backbone change; the daily pipeline imports the teacher it
produced by URI.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Model

from searchrel.components import build_components
from searchrel.images import Images
from searchrel.pipelines.shared_steps import ingest_and_caption, train_teacher

PIPELINE_NAME = "searchrel-teacher-training"


class TeacherOutputs(NamedTuple):
    teacher: Model
    teacher_metrics: Metrics


def build_teacher_training(images: Images | None = None) -> Any:
    ops = build_components(images)

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def teacher_training(source: str, config_yaml: str = "") -> TeacherOutputs:
        data, items = ingest_and_caption(ops, source, config_yaml)
        trained = train_teacher(ops, items, data.outputs["judgments"], config_yaml)
        return TeacherOutputs(
            teacher=trained.teacher.outputs["teacher"],
            teacher_metrics=trained.evaluation.outputs["metrics"],
        )

    return teacher_training
