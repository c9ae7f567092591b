"""drift_watch: a scheduled check of what the student serves; on drift, relabel and distil.

drift check (Evidently on the served window vs the student's training rows; thresholds,
minimum window, cooldown: searchrel.drift.decide) -> dsl.If(relabel) -> label shards on GPU ->
collect -> features -> student -> evaluate. Its inputs are URIs of the current artifacts (the
serving student's training rows, the teacher, the tables of the drifted window) imported with
dsl.importer, so a recurring run (6-field cron) or `kfp.Client` can start it with parameters.
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Dataset, Model

from searchrel.components import build_components
from searchrel.config import LabelConfig
from searchrel.images import Images
from searchrel.pipelines.gpu import with_pod_namespace
from searchrel.pipelines.relabel import relabel_and_distil

PIPELINE_NAME = "searchrel-drift-watch"
RELABEL = "relabel"


def build_drift_watch(images: Images | None = None, label: LabelConfig | None = None) -> Any:
    ops = build_components(images)
    labeling = label or LabelConfig()  # shard count and backend: fixed when compiled

    @dsl.pipeline(name=PIPELINE_NAME, description=__doc__)
    def drift_watch(
        reference_uri: str,
        requests_dir: str,
        state_path: str,
        teacher_uri: str,
        items_uri: str,
        judgments_uri: str,
        impressions_uri: str,
        config_yaml: str = "",
    ) -> None:
        reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Dataset)
        check = ops.drift_check(
            reference=reference.output,
            requests_dir=requests_dir,
            state_path=state_path,
            config_yaml=config_yaml,
        ).set_display_name("drift check")
        check.set_caching_options(False)  # each scheduled run must look at the window as it is
        with_pod_namespace(check)  # its metrics push is grouped by namespace
        with dsl.If(check.outputs["Output"] == RELABEL, name="drifted"):
            teacher = dsl.importer(artifact_uri=teacher_uri, artifact_class=Model)
            items = dsl.importer(artifact_uri=items_uri, artifact_class=Dataset)
            judgments = dsl.importer(artifact_uri=judgments_uri, artifact_class=Dataset)
            impressions = dsl.importer(artifact_uri=impressions_uri, artifact_class=Dataset)
            relabel_and_distil(ops, teacher.output, items.output, judgments.output,
                               impressions.output, config_yaml, labeling)  # fmt: skip

    return drift_watch


def compile_drift_watch(
    out: Path, images: Images | None = None, label: LabelConfig | None = None
) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_drift_watch(images, label), str(out))
    return str(out)
