"""teacher_training: fine-tune the LLM teacher on human labels and evaluate it.

ingest (validate the tables) -> captions (BLIP) -> teacher: fine-tune (qLoRA on a GPU node)
-> teacher: evaluate.
Run when the human labels or the backbone change; the daily pipeline imports the teacher it
produced by URI.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import Metrics, Model

from components import build_components
from pipelines.captioning import caption
from pipelines.gpu import on_gpu
from searchrel.images import Images

PIPELINE_NAME = "searchrel-teacher-training"


class TeacherOutputs(NamedTuple):
    teacher: Model
    teacher_metrics: Metrics


def build_teacher_training(images: Images | None = None) -> Any:
    ops = build_components(images)

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def teacher_training(source: str, config_yaml: str = "") -> TeacherOutputs:
        data = ops.ingest(source=source, config_yaml=config_yaml).set_display_name("ingest")
        data.set_caching_options(False)  # a source path may hold new tables under the same name
        items = caption(ops, data.outputs["items"], config_yaml).outputs["captioned_items"]
        teacher = ops.teacher_train(
            items=items,
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: fine-tune")
        on_gpu(teacher).set_caching_options(True)  # same tables and config: same teacher
        evaluation = ops.teacher_evaluate(
            teacher=teacher.outputs["teacher"],
            items=items,
            judgments=data.outputs["judgments"],
            config_yaml=config_yaml,
        ).set_display_name("teacher: evaluate")
        evaluation.set_caching_options(True)
        return TeacherOutputs(
            teacher=teacher.outputs["teacher"], teacher_metrics=evaluation.outputs["metrics"]
        )

    return teacher_training
