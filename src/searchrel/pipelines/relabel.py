"""The relabel-and-distil part that both pipelines run: label the impressions by shard (one
task each: on a GPU node with the fine-tuned teacher, on a CPU node with a served LLM judge),
collect, build features, distil the student, evaluate it.

A function that adds tasks to the pipeline being defined, so relevance_loop and drift_watch
share one definition of the steps (and their GPU settings) instead of two copies.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kfp import dsl, kubernetes

from searchrel.components import Components
from searchrel.config import JudgeConfig, LabelConfig
from searchrel.pipelines.gpu import on_gpu, with_pod_namespace

# A judge shard only sends requests to the LLM server and writes Parquet: no GPU node for it.
JUDGE_SHARD_CPU = "2"  # the client's worker threads and the Parquet writer
JUDGE_SHARD_MEMORY = "8G"  # one shard's impressions and labels in memory
JUDGE_SECRET = "searchrel-judge-credentials"  # key `api_key`: the judge endpoint's bearer token


class Distilled(NamedTuple):
    features: Any
    student: Any
    student_eval: Any


def relabel_and_distil(
    ops: Components,
    teacher: Any,
    items: Any,
    judgments: Any,
    impressions: Any,
    config_yaml: Any,
    label: LabelConfig,
    previous_labels: Any = None,
    label_date: Any = None,
) -> Distilled:
    """``label``: the compile-time part of the label config (shard count; backend, which
    decides where the shard tasks run). ``previous_labels``: an earlier teacher_labels
    location (a pipeline parameter) that every shard task copies unchanged pairs from ("" at
    run time: none); ``label_date``: the impressions partition to label ("": every date).
    None: the pipeline has no such parameter and the component's default ("") applies."""
    optional = {"previous_labels": previous_labels, "date": label_date}
    with dsl.ParallelFor(items=list(range(label.shards)), name="label-shards") as shard:
        label_shard = ops.label_shard if label.backend == "teacher" else ops.label_shard_cpu
        shard_task = label_shard(
            teacher=teacher,
            items=items,
            impressions=impressions,
            config_yaml=config_yaml,
            shard=shard,
            n_shards=label.shards,
            **{name: value for name, value in optional.items() if value is not None},
        ).set_display_name("teacher: label a shard")
        if label.backend == "teacher":
            on_gpu(shard_task)
        else:
            shard_task.set_cpu_limit(JUDGE_SHARD_CPU).set_memory_limit(JUDGE_SHARD_MEMORY)
            # The judge endpoint's bearer token, from a Secret (optional: an open endpoint
            # needs none); the env name is the judge config's default, fixed when compiled.
            kubernetes.use_secret_as_env(
                shard_task,
                secret_name=JUDGE_SECRET,
                secret_key_to_env={"api_key": JudgeConfig().api_key_env},
                optional=True,
            )
        shard_task.set_retry(num_retries=2, backoff_duration="60s")
        # Cacheable: the same teacher on the same impressions gives the same labels, so a
        # Retry after a failure downstream does not pay for the GPUs (or the judge) again.
        # (KFP keys the cache on input artifact identities: a fresh ingest means a fresh key.)
        shard_task.set_caching_options(True)
    labels = ops.label_collect(
        shard_labels=dsl.Collected(shard_task.outputs["shard_labels"]), config_yaml=config_yaml
    ).set_display_name("teacher: collect labels")
    labels.set_caching_options(True)
    with_pod_namespace(labels)  # its metrics push is grouped by namespace
    features = ops.build_features(
        items=items,
        judgments=judgments,
        teacher_labels=labels.outputs["teacher_labels"],
        impressions=impressions,
        config_yaml=config_yaml,
    ).set_display_name("features")
    features.set_caching_options(True)  # a pure function of its inputs and the config
    student = ops.student_train(
        features=features.outputs["features"], config_yaml=config_yaml
    ).set_display_name("student: distil")
    student.set_caching_options(True)
    student_eval = ops.student_evaluate(
        student=student.outputs["student"], features=features.outputs["features"]
    ).set_display_name("student: evaluate")
    student_eval.set_caching_options(True)
    return Distilled(features, student, student_eval)
