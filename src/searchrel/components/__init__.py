"""KFP components of searchrel: thin wrappers that run one `python -m searchrel <command>`.

Component functions are plain module-level functions; ``build_components`` turns them into
KFP components with the image from ``searchrel.images`` *when a pipeline is built* (never at
import time). They are lightweight Python components because ``kfp.local.SubprocessRunner``
runs only those; their bodies do nothing but call ``searchrel.components.runtime.run_cli``,
exactly as a container component with ``command: [python, -m, searchrel, ...]`` would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl

from searchrel.components import captions, data, deploy, drift, labeling, student, teacher
from searchrel.images import Images, resolve_images


@dataclass(frozen=True)
class Components:
    ingest: Any
    caption_items: Any
    teacher_train: Any
    teacher_evaluate: Any
    label_shard: Any  # on the GPU image: the fine-tuned teacher
    label_shard_cpu: Any  # on the CPU image: a judge shard only calls a served LLM
    label_collect: Any
    build_features: Any
    student_train: Any
    student_evaluate: Any
    drift_check: Any
    gate_student: Any
    deploy_student: Any


def _component(func: Callable[..., Any], image: str) -> Any:
    # install_kfp_package=False: the image already has kfp; nothing is pip-installed at run time.
    return dsl.component(func, base_image=image, install_kfp_package=False)


def build_components(images: Images | None = None) -> Components:
    images = images or resolve_images()
    return Components(
        ingest=_component(data.ingest, images.cpu),
        caption_items=_component(captions.caption_items, images.gpu),
        teacher_train=_component(teacher.teacher_train, images.gpu),
        teacher_evaluate=_component(teacher.teacher_evaluate, images.gpu),
        label_shard=_component(labeling.label_shard, images.gpu),
        label_shard_cpu=_component(labeling.label_shard, images.cpu),
        label_collect=_component(labeling.label_collect, images.cpu),
        build_features=_component(student.build_features, images.cpu),
        student_train=_component(student.student_train, images.cpu),
        student_evaluate=_component(student.student_evaluate, images.cpu),
        drift_check=_component(drift.drift_check, images.cpu),
        gate_student=_component(deploy.gate_student, images.cpu),
        deploy_student=_component(deploy.deploy_student, images.cpu),
    )
