"""Steps more than one pipeline runs, defined once: ingest + captions, and the teacher's
fine-tune + evaluation. Functions that add tasks to the pipeline being defined (like
relabel.relabel_and_distil), so every pipeline gets the same GPU and caching settings."""

from typing import Any, NamedTuple

from searchrel.components import Components
from searchrel.pipelines.captioning import caption
from searchrel.pipelines.gpu import on_gpu


class Ingested(NamedTuple):
    data: Any  # the ingest task: outputs items, judgments, impressions
    items: Any  # the captioned items, which every later step reads


def ingest_and_caption(ops: Components, source: Any, config_yaml: Any) -> Ingested:
    data = ops.ingest(source=source, config_yaml=config_yaml).set_display_name("ingest")
    data.set_caching_options(False)  # a source path may hold new tables under the same name
    items = caption(ops, data.outputs["items"], config_yaml).outputs["captioned_items"]
    return Ingested(data, items)


class TrainedTeacher(NamedTuple):
    teacher: Any  # the fine-tune task: outputs teacher
    evaluation: Any  # the evaluation task: outputs metrics


def train_teacher(ops: Components, items: Any, judgments: Any, config_yaml: Any) -> TrainedTeacher:
    teacher = ops.teacher_train(
        items=items, judgments=judgments, config_yaml=config_yaml
    ).set_display_name("teacher: fine-tune")
    on_gpu(teacher).set_caching_options(True)  # same tables and config: same teacher
    evaluation = ops.teacher_evaluate(
        teacher=teacher.outputs["teacher"], items=items, judgments=judgments,
        config_yaml=config_yaml,
    ).set_display_name("teacher: evaluate")  # fmt: skip
    evaluation.set_caching_options(True)
    return TrainedTeacher(teacher, evaluation)
