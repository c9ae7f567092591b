"""How a GPU step asks for its node: one GPU, the GPU node pool, its taint, shared memory;
and the downward-API namespace that steps pushing metrics group them by.

kfp-kubernetes settings land in the compiled YAML (the KFP backend applies them on a
cluster); KFP's local runner ignores them.
"""

from __future__ import annotations

from typing import Any

from kfp import kubernetes

GPU_RESOURCE = "nvidia.com/gpu"  # the device plugin's resource name
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")  # set by NVIDIA's GPU feature discovery
GPU_TAINT_KEY = "nvidia.com/gpu"  # GPU node pools are usually tainted so CPU pods stay off
SHM_SIZE = "8Gi"  # /dev/shm for torch's data loader and NCCL (the default 64 MiB is too small)


def on_gpu(task: Any, gpus: int = 1, memory: str = "32G", cpu: str = "8") -> Any:
    """Request GPUs, land on the GPU pool, tolerate its taint, mount a RAM-backed /dev/shm."""
    task.set_accelerator_type(GPU_RESOURCE).set_accelerator_limit(gpus)
    task.set_memory_limit(memory).set_cpu_limit(cpu)
    kubernetes.add_node_selector(task, label_key=GPU_NODE_LABEL[0], label_value=GPU_NODE_LABEL[1])
    kubernetes.add_toleration(task, key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=SHM_SIZE
    )
    return task


def with_pod_namespace(task: Any) -> Any:
    """``POD_NAMESPACE`` from the downward API: searchrel.pushmetrics groups a step's pushed
    metrics by it, so dev's and prod's runs do not overwrite each other's."""
    kubernetes.use_field_path_as_env(
        task, env_name="POD_NAMESPACE", field_path="metadata.namespace"
    )
    return task
