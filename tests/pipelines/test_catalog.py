"""The pipelines a platform team uploads: the committed YAML is what the code compiles, GPU
stages ask for GPU nodes, caching is set on purpose, the deploy sits behind the gate, and
submissions are checked before anything reaches a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from searchrel.config import LabelConfig
from searchrel.images import REGISTRY_ENV, TAG_ENV, resolve_images
from searchrel.pipelines.catalog import COMPILED_DIR, PIPELINES, compile_all, compile_one
from searchrel.pipelines.submit import (
    SubmitError,
    check_cron,
    package,
    parse_params,
    pipeline_arguments,
)

GPU_STEPS = {"exec-teacher-train", "exec-label-shard", "exec-caption-items"}


def load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = yaml.safe_load_all((COMPILED_DIR / f"{name}.yaml").read_text())
    return spec, platform


def all_tasks(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task of the pipeline, those inside loops and conditions too."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_the_committed_yaml_is_what_the_code_compiles(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    monkeypatch.delenv(TAG_ENV, raising=False)
    fresh = compile_all(tmp_path)
    assert sorted(p.name for p in fresh) == sorted(p.name for p in COMPILED_DIR.glob("*.yaml"))
    stale = [p.name for p in fresh if p.read_text() != (COMPILED_DIR / p.name).read_text()]
    assert not stale, f"{stale} are stale: run `make compile` and commit {COMPILED_DIR}"


def test_there_are_the_three_cluster_pipelines_and_the_demo_loop() -> None:
    assert {"teacher_training", "daily_distillation", "drift_watch", "relevance_loop"} == set(
        PIPELINES
    )


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_gpu_stages_land_on_gpu_nodes_and_nothing_else_does(name: str) -> None:
    spec, platform = load(name)
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for executor, body in spec["deploymentSpec"]["executors"].items():
        if "importer" in body:
            continue
        accelerator = body["container"].get("resources", {}).get("accelerator")
        if executor in GPU_STEPS:
            assert accelerator["resourceType"] == "nvidia.com/gpu", executor
            assert kube[executor]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
            assert kube[executor]["tolerations"][0]["key"] == "nvidia.com/gpu"
            assert kube[executor]["emptyDirMounts"][0]["medium"] == "Memory"
        else:
            assert accelerator is None, f"{executor} asks for a GPU"


@pytest.mark.parametrize(
    ("name", "task", "cached"),
    [
        ("teacher_training", "ingest", False),  # a path may hold new tables
        ("teacher_training", "teacher-train", True),
        ("daily_distillation", "ingest", False),
        ("daily_distillation", "label-shard", True),  # GPU hours are not paid twice
        ("daily_distillation", "caption-items", True),
        ("daily_distillation", "gate-student", False),  # the served model changes
        ("daily_distillation", "deploy-student", False),
        ("drift_watch", "drift-check", False),  # each run looks at the window as it is
    ],
)
def test_caching_is_set_on_purpose(name: str, task: str, cached: bool) -> None:
    spec, _ = load(name)
    options = all_tasks(spec)[task].get("cachingOptions", {})
    assert bool(options.get("enableCache")) is cached


def test_the_deploy_runs_only_inside_the_gate() -> None:
    spec, _ = load("daily_distillation")
    root = spec["root"]["dag"]["tasks"]
    assert "deploy-student" not in root
    (branch,) = [t for n, t in root.items() if n.startswith("condition")]
    condition = branch["triggerPolicy"]["condition"]
    assert "gate-student" in condition and "'deploy'" in condition
    body = spec["components"][branch["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"deploy-student"}


def test_the_labeling_shards_retry(tmp_path: Path) -> None:
    spec, _ = load("daily_distillation")
    assert all_tasks(spec)["label-shard"]["retryPolicy"]["maxRetryCount"] == 2


def test_every_daily_label_shard_gets_the_previous_labels_and_the_date_parameters() -> None:
    spec, _ = load("daily_distillation")
    params = spec["root"]["inputDefinitions"]["parameters"]
    for name in ("previous_labels", "label_date"):  # optional: "" labels every pair, every date
        assert params[name] == {"defaultValue": "", "isOptional": True, "parameterType": "STRING"}
    (loop,) = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    into_loop = loop["inputs"]["parameters"]
    assert into_loop["pipelinechannel--previous_labels"] == {
        "componentInputParameter": "previous_labels"
    }
    assert into_loop["pipelinechannel--label_date"] == {"componentInputParameter": "label_date"}
    shard = all_tasks(spec)["label-shard"]["inputs"]["parameters"]
    assert shard["previous_labels"] == {
        "componentInputParameter": "pipelinechannel--previous_labels"
    }
    assert shard["date"] == {"componentInputParameter": "pipelinechannel--label_date"}


def compiled_label_shard(name: str) -> Any:
    """The label_shard function exactly as the compiled YAML ships it to the GPU node."""
    spec, _ = load(name)
    source = spec["deploymentSpec"]["executors"]["exec-label-shard"]["container"]["command"][-1]
    namespace: dict[str, Any] = {}
    exec(compile(source, f"{name}.yaml:exec-label-shard", "exec"), namespace)
    return namespace["label_shard"]


@pytest.mark.parametrize("name", ["daily_distillation", "drift_watch", "relevance_loop"])
def test_the_compiled_label_shard_passes_previous_labels_and_date_to_the_labeler(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from searchrel.components import runtime

    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(runtime, "run_cli", lambda *args: calls.append(args))
    monkeypatch.setattr(runtime, "config_file", lambda text: "/tmp/config.yaml")
    label_shard = compiled_label_shard(name)
    artifact = SimpleNamespace(path="/artifact")
    args = {"teacher": artifact, "items": artifact, "impressions": artifact, "config_yaml": "",
            "shard": 1, "n_shards": 2, "shard_labels": artifact}  # fmt: skip
    label_shard(**args, previous_labels="/gcs/b/run-1/teacher_labels", date="2026-11-02")
    label_shard(**args)  # the defaults: no earlier labels, every date
    reused, fresh = calls
    assert reused[0] == fresh[0] == "label"
    flags = dict(zip(reused[1::2], reused[2::2], strict=True))
    assert flags["--previous"] == "/gcs/b/run-1/teacher_labels"
    assert flags["--date"] == "2026-11-02"
    assert flags["--shard"] == "1" and flags["--shards"] == "2"
    assert "--previous" not in fresh and "--date" not in fresh


# --- submissions -------------------------------------------------------------------------------


def test_a_five_field_cron_is_refused_with_the_six_field_form() -> None:
    with pytest.raises(SubmitError, match="6-field cron"):
        check_cron("0 3 * * *")
    assert check_cron("0  0 3 * * *") == "0 0 3 * * *"


def test_parameters_are_checked_against_the_pipeline() -> None:
    path = package("daily_distillation")
    repo = {"gitops_repo": "https://git.example.com/gitops.git"}
    config = "data:\n  levels: 5\n"
    args = pipeline_arguments(path, {"source": "s3://b/day", "teacher_uri": "s3://b/t", **repo},
                              config)  # fmt: skip
    assert args["config_yaml"] == config
    with pytest.raises(SubmitError, match="config_yaml: x: Extra inputs are not permitted"):
        pipeline_arguments(path, {"source": "s3://b/day", "teacher_uri": "s3://b/t"}, "x: 1")
    with pytest.raises(SubmitError, match="no parameter sorce"):
        pipeline_arguments(path, {"sorce": "s3://b/day", "teacher_uri": "s3://b/t"}, "")
    with pytest.raises(SubmitError, match="needs --param teacher_uri"):
        pipeline_arguments(path, {"source": "s3://b/day"}, "")
    with pytest.raises(SubmitError, match="NAME=VALUE"):
        parse_params(["source"])
    with pytest.raises(SubmitError, match="no pipeline"):
        package("nightly")


def test_the_cli_turns_a_bad_schedule_into_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "pipelines", "schedule", "--host",
         "http://127.0.0.1:9", "--cron", "0 3 * * *"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "6-field cron" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name", ["teacher_training", "daily_distillation", "relevance_loop"])
def test_the_teacher_and_the_features_read_the_captioned_items(name: str) -> None:
    spec, platform = load(name)
    readers = 0
    for task_name, task in all_tasks(spec).items():
        items = task.get("inputs", {}).get("artifacts", {}).get("items")
        if items and task_name != "caption-items":
            readers += 1
            source = items.get("taskOutputArtifact") or items.get("componentInputArtifact")
            assert source in (
                {"producerTask": "caption-items", "outputArtifactKey": "captioned_items"},
                "pipelinechannel--caption-items-captioned_items",  # inside a loop or branch
            ), (task_name, items)
    assert readers >= 2
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (pvc,) = kube["exec-caption-items"]["pvcMount"]
    assert pvc["mountPath"] == "/caption-cache"


# --- label backend: where the shards run ------------------------------------------------------


def test_a_judge_backend_compiles_label_shards_onto_cpu_nodes(tmp_path: Path) -> None:
    """A judge shard only calls the served LLM: it must not hold a GPU node, while the
    teacher's training (and captioning) still do."""
    out = compile_one("daily_distillation", tmp_path / "daily.yaml",
                      label=LabelConfig(backend="judge", shards=3))  # fmt: skip
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = spec["deploymentSpec"]["executors"]
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    shard = executors["exec-label-shard"]["container"]["resources"]
    assert "accelerator" not in shard
    assert shard["resourceCpuLimit"] == "2" and shard["resourceMemoryLimit"] == "8G"
    images = resolve_images()  # the CPU image: no multi-GB CUDA pull on a CPU node
    assert executors["exec-label-shard"]["container"]["image"] == images.cpu
    assert executors["exec-caption-items"]["container"]["image"] == images.gpu
    assert "nodeSelector" not in kube["exec-label-shard"]
    assert "tolerations" not in kube["exec-label-shard"]
    (secret,) = kube["exec-label-shard"]["secretAsEnv"]  # the judge endpoint's token
    assert secret["secretName"] == "searchrel-judge-credentials" and secret["optional"] is True
    assert secret["keyToEnv"] == [{"secretKey": "api_key", "envVar": "SEARCHREL_JUDGE_API_KEY"}]
    assert all_tasks(spec)["label-shard"]["retryPolicy"]["maxRetryCount"] == 2
    (loop,) = [t for t in spec["root"]["dag"]["tasks"].values() if "parameterIterator" in t]
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == [0, 1, 2]
    assert "accelerator" in executors["exec-caption-items"]["container"]["resources"]


def test_a_config_whose_backend_differs_from_the_compiled_one_is_refused(tmp_path: Path) -> None:
    params = {"source": "s3://b/day", "teacher_uri": "s3://b/t", "gitops_repo": "https://g/r.git"}
    gpu_compiled = package("daily_distillation")  # the committed YAML: the teacher backend
    assert pipeline_arguments(gpu_compiled, params, "label:\n  backend: teacher\n")
    assert pipeline_arguments(gpu_compiled, params, "")  # no config: the default backend
    with pytest.raises(SubmitError, match=r"label shards on GPU nodes.*backend 'judge'"):
        pipeline_arguments(gpu_compiled, params, "label:\n  backend: judge\n")
    judge = LabelConfig(backend="judge")
    cpu_compiled = compile_one("daily_distillation", tmp_path / "daily.yaml", label=judge)
    assert pipeline_arguments(cpu_compiled, params, "label:\n  backend: judge\n")
    with pytest.raises(SubmitError, match=r"on CPU nodes.*backend 'teacher'"):
        pipeline_arguments(cpu_compiled, params, "")


def test_the_cli_compiles_with_the_label_section_of_the_config_it_is_given(tmp_path: Path) -> None:
    config = tmp_path / "judge.yaml"
    config.write_text("label:\n  backend: judge\n  shards: 4\n")
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "pipelines", "compile", "--out-dir",
         str(tmp_path / "out"), "--config", str(config)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert len(proc.stdout.split()) == len(PIPELINES)
    spec, platform = yaml.safe_load_all((tmp_path / "out" / "drift_watch.yaml").read_text())
    shard = spec["deploymentSpec"]["executors"]["exec-label-shard"]["container"]["resources"]
    assert "accelerator" not in shard
    shard_kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][
        "exec-label-shard"
    ]
    assert set(shard_kube) == {"secretAsEnv"}  # no node selector, toleration or /dev/shm
    loops = [t for t in all_tasks(spec).values() if "parameterIterator" in t]
    assert [json.loads(t["parameterIterator"]["items"]["raw"]) for t in loops] == [[0, 1, 2, 3]]


def test_a_config_whose_shard_count_differs_from_the_compiled_one_is_refused() -> None:
    params = {"source": "s3://b/day", "teacher_uri": "s3://b/t", "gitops_repo": "https://g/r.git"}
    path = package("daily_distillation")  # compiled with the default 8 shards
    assert pipeline_arguments(path, params, "label:\n  shards: 8\n")
    with pytest.raises(SubmitError, match=r"compiled with 8 label shards.*label.shards 2"):
        pipeline_arguments(path, params, "label:\n  shards: 2\n")
    drift = package("drift_watch")  # its loop sits inside the drift condition
    names = ["reference_uri", "requests_dir", "state_path", "teacher_uri", "items_uri",
             "judgments_uri", "impressions_uri"]  # fmt: skip
    with pytest.raises(SubmitError, match="compiled with 8 label shards"):
        pipeline_arguments(drift, {n: "s3://x" for n in names}, "label:\n  shards: 3\n")


def test_the_daily_pipeline_needs_a_gitops_repository_before_it_is_submitted() -> None:
    """Without one the gate fails only after hours of labeling."""
    params = {"source": "s3://b/day", "teacher_uri": "s3://b/t"}
    path = package("daily_distillation")
    with pytest.raises(SubmitError, match="deploys through GitOps"):
        pipeline_arguments(path, params, "")
    assert pipeline_arguments(path, params, "deploy:\n  repo: https://g/r.git\n")


@pytest.mark.parametrize(
    ("name", "executor"),
    [("daily_distillation", "exec-label-collect"), ("drift_watch", "exec-label-collect"),
     ("drift_watch", "exec-drift-check"), ("relevance_loop", "exec-label-collect")],
)  # fmt: skip
def test_steps_that_push_metrics_know_their_namespace(name: str, executor: str) -> None:
    _, platform = load(name)
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert {"fieldPath": "metadata.namespace", "name": "POD_NAMESPACE"} in kube[executor][
        "fieldPathAsEnv"
    ]


def test_a_config_naming_another_git_token_variable_is_refused() -> None:
    """The token Secret is mounted under the default name when compiled: another name would
    leave the gate and the deploy without it."""
    params = {"source": "s3://b/day", "teacher_uri": "s3://b/t", "gitops_repo": "https://g/r.git"}
    config = "deploy:\n  token_env: MY_TOKEN\n"
    with pytest.raises(SubmitError, match=r"deploy\.token_env 'MY_TOKEN'"):
        pipeline_arguments(package("daily_distillation"), params, config)


def test_an_invalid_config_is_refused_naming_the_field() -> None:
    params = {"source": "s3://b/day", "teacher_uri": "s3://b/t", "gitops_repo": "https://g/r.git"}
    with pytest.raises(SubmitError, match=r"label\.shards"):
        pipeline_arguments(package("daily_distillation"), params, "label:\n  shards: 0\n")
