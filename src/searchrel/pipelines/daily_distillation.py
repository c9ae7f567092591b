"""daily_distillation: label a day's impressions with the teacher, distil a new student, and
deploy it through GitOps if it beats the one being served.

ingest the day's tables -> caption new items -> label shards on GPU nodes (ParallelFor) ->
collect -> features -> student: distil -> evaluate -> gate (new vs serving student on
held-out human labels) -> dsl.If(deploy) -> commit the new model URI to the GitOps overlay
(Argo CD syncs it).
The teacher comes from teacher_training by URI. The serving student is what the GitOps overlay
serves now (``serving_model_uri`` "" reads it from ``gitops_repo``; "none": a first deploy).
``previous_labels``: the previous day's teacher_labels (a path the label tasks can read, such
as a mounted bucket); pairs unchanged since are copied, not relabeled ("": label all).
``label_date``: the impressions partition to label, YYYY-MM-DD ("": every date in them).
"""

from typing import Any, NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Artifact, Metrics, Model

from searchrel.components import build_components
from searchrel.config import DeployConfig, LabelConfig
from searchrel.images import Images
from searchrel.pipelines.relabel import relabel_and_distil
from searchrel.pipelines.shared_steps import ingest_and_caption

PIPELINE_NAME = "searchrel-daily-distillation"
DEPLOY = "deploy"
GITOPS_SECRET = "searchrel-gitops-credentials"  # key `token`: an HTTPS token that may push


class DailyOutputs(NamedTuple):
    student: Model
    student_metrics: Metrics
    gate: Artifact


def with_git_token(task: Any) -> Any:
    """The GitOps token from a Secret in the run's namespace, never from parameters (optional:
    a repository reachable without a token needs none)."""
    kubernetes.use_secret_as_env(
        task,
        secret_name=GITOPS_SECRET,
        secret_key_to_env={"token": DeployConfig().token_env},
        optional=True,
    )
    return task


def build_daily_distillation(images: Images | None = None, label: LabelConfig | None = None) -> Any:
    ops = build_components(images)
    labeling = label or LabelConfig()  # shard count and backend: fixed when compiled

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def daily_distillation(
        source: str,
        teacher_uri: str,
        serving_model_uri: str = "",
        gitops_repo: str = "",
        config_yaml: str = "",
        previous_labels: str = "",
        label_date: str = "",
    ) -> DailyOutputs:
        data, items = ingest_and_caption(ops, source, config_yaml)
        teacher = dsl.importer(artifact_uri=teacher_uri, artifact_class=Model, reimport=False)
        done = relabel_and_distil(
            ops,
            teacher.output,
            items,
            data.outputs["judgments"],
            data.outputs["impressions"],
            config_yaml,
            labeling,
            previous_labels,
            label_date,
        )
        check = ops.gate_student(
            candidate=done.student.outputs["student"],
            items=items,
            judgments=data.outputs["judgments"],
            serving_model_uri=serving_model_uri,
            gitops_repo=gitops_repo,
            config_yaml=config_yaml,
        ).set_display_name("gate: new vs serving student")
        check.set_caching_options(False)  # the serving model changes between runs
        with_git_token(check)  # it clones the GitOps repository to read the served model
        with dsl.If(check.outputs["Output"] == DEPLOY, name="gate-passed"):
            deploy = ops.deploy_student(
                candidate=done.student.outputs["student"],
                report=check.outputs["report"],
                gitops_repo=gitops_repo,
                run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                config_yaml=config_yaml,
            ).set_display_name("deploy: commit to GitOps")
            deploy.set_caching_options(False)
            with_git_token(deploy)
        return DailyOutputs(
            student=done.student.outputs["student"],
            student_metrics=done.student_eval.outputs["metrics"],
            gate=check.outputs["report"],
        )

    return daily_distillation
