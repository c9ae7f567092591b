"""The caption step every pipeline runs right after ingest: BLIP captions for items that have
an image and no caption, so the teacher and the student read them in the item text.

On a GPU node (BLIP; a `captions.backend: vlm` config only calls an endpoint from it), cached by
KFP for the same items and config, and with the caption cache on a PVC so that a daily run
captions only images it has not seen (configs/cluster.yaml points captions.cache_dir at it).
"""

from typing import Any

from kfp import kubernetes

from searchrel.components import Components
from searchrel.pipelines.gpu import on_gpu

CACHE_PVC = "searchrel-caption-cache"  # manifests/pipelines/caption-cache.yaml
CACHE_MOUNT = "/caption-cache"  # = captions.cache_dir in configs/cluster.yaml


def caption(ops: Components, items: Any, config_yaml: Any) -> Any:
    """Add the caption task; its ``captioned_items`` output replaces the ingested items."""
    task = ops.caption_items(items=items, config_yaml=config_yaml).set_display_name(
        "captions: BLIP"
    )
    on_gpu(task, memory="16G", cpu="4").set_caching_options(True)
    kubernetes.mount_pvc(task, pvc_name=CACHE_PVC, mount_path=CACHE_MOUNT)
    return task
