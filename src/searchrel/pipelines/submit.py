"""Runs on a Kubeflow Pipelines cluster through ``kfp.Client``: one run now, or a recurring run.

Both upload the compiled YAML shipped in searchrel/pipelines/compiled/ (what CI checked fresh),
after checking the parameters against the pipeline's own inputs, so a typo fails here in one
line rather than in the cluster an hour later.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from searchrel.config import Config, ConfigError, DeployConfig, LabelConfig, format_config_error
from searchrel.model_source import is_uri
from searchrel.pipelines.catalog import COMPILED_DIR, PIPELINES

TOKEN_ENV = "KFP_TOKEN"  # a bearer token for the KFP API (e.g. behind Kubeflow's auth proxy)
SERVICE_ACCOUNT = "searchrel-pipeline-runner"  # manifests/pipelines/rbac.yaml
CRON_FIELDS = 6  # KFP's cron has seconds first: "0 0 3 * * *" is 03:00 every day
MOUNTED_PATH_PARAMETERS = {"previous_labels"}  # read by tasks as files: a URI cannot work
LABEL_SHARD_TASK = "label-shard"  # the compiled label task: its placement and fan-out are fixed
DEPLOYING_PIPELINES = {"daily_distillation"}  # end by committing to the GitOps repository

log = logging.getLogger(__name__)


class SubmitError(ConfigError):
    """A submission that cannot be made (a user's mistake): the CLI prints it as one line."""


def check_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != CRON_FIELDS:
        raise SubmitError(
            f"KFP recurring runs take a 6-field cron (seconds first, e.g. '0 0 3 * * *' for "
            f"03:00 daily); {expression!r} has {len(fields)} fields"
        )
    return " ".join(fields)


def parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--param {pair!r} is not NAME=VALUE")
        params[key] = value
    return params


def package(name: str, compiled_dir: Path = COMPILED_DIR) -> Path:
    if name not in PIPELINES:
        raise SubmitError(f"no pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    path = compiled_dir / f"{name}.yaml"
    if not path.is_file():
        raise SubmitError(f"{path} is missing: run `searchrel pipelines compile`")
    return path


def pipeline_arguments(path: Path, params: dict[str, str], config_yaml: str) -> dict[str, Any]:
    """The run's arguments, checked against the compiled pipeline's parameters."""
    spec = next(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    arguments: dict[str, Any] = {**params, **({"config_yaml": config_yaml} if config_yaml else {})}
    unknown = sorted(set(arguments) - set(declared))
    if unknown:
        raise SubmitError(f"{path.stem} has no parameter {', '.join(unknown)}; "
                          f"it takes {', '.join(declared)}")  # fmt: skip
    missing = sorted(
        n for n, p in declared.items() if not p.get("isOptional") and n not in arguments
    )
    if missing:
        raise SubmitError(f"{path.stem} needs --param {'=... --param '.join(missing)}=...")
    cfg = run_config(config_yaml)
    if not config_yaml:
        log.warning("no --config: the run uses the built-in defaults (a laptop-sized MiniLM "
                    "teacher), not configs/cluster.yaml")  # fmt: skip
    check_label_placement(spec, path.stem, cfg.label)
    if cfg.deploy.token_env != DeployConfig().token_env:
        raise SubmitError(
            f"deploy.token_env {cfg.deploy.token_env!r}: on a cluster the Git token comes from "
            f"the Secret mounted as {DeployConfig().token_env} (compiled in); leave it unset"
        )
    if path.stem in DEPLOYING_PIPELINES and not (arguments.get("gitops_repo") or cfg.deploy.repo):
        raise SubmitError(
            f"{path.stem} deploys through GitOps: pass --param gitops_repo=<https URL> or set "
            f"deploy.repo in the config (otherwise the gate fails after the labeling)"
        )
    for name in sorted(set(arguments) & MOUNTED_PATH_PARAMETERS):
        if is_uri(arguments[name]):
            raise SubmitError(
                f"{name}={arguments[name]} is a URI; the tasks read it as a local path (a "
                f"volume mounted in them, e.g. a PVC added with kfp-kubernetes)"
            )
    return arguments


def run_config(config_yaml: str) -> Config:
    """The config the run's tasks will read (the defaults where none is sent)."""
    try:
        raw = yaml.safe_load(config_yaml) if config_yaml else None
    except yaml.YAMLError as exc:
        raise SubmitError(f"config_yaml: not valid YAML ({exc})".splitlines()[0]) from exc
    if raw is not None and not isinstance(raw, dict):
        raise SubmitError("config_yaml: the top level must be a mapping")
    try:
        return Config.model_validate(raw or {})
    except ValidationError as exc:
        raise SubmitError(format_config_error("config_yaml", exc)) from exc


def compiled_label_fan_out(spec: dict[str, Any]) -> tuple[bool, int] | None:
    """(on GPU nodes, shard count) of the compiled label task; None if the pipeline labels
    nothing."""
    executor = spec.get("deploymentSpec", {}).get("executors", {}).get(f"exec-{LABEL_SHARD_TASK}")
    if executor is None:
        return None
    on_gpu = "accelerator" in executor.get("container", {}).get("resources", {})
    components = spec.get("components", {})
    for dag in [spec["root"], *components.values()]:
        for task in dag.get("dag", {}).get("tasks", {}).values():
            body = components.get(task.get("componentRef", {}).get("name", ""), {})
            if "parameterIterator" in task and LABEL_SHARD_TASK in body.get("dag", {}).get(
                "tasks", {}
            ):
                return on_gpu, len(json.loads(task["parameterIterator"]["items"]["raw"]))
    raise SubmitError(f"the compiled {LABEL_SHARD_TASK} task has no shard loop around it")


def check_label_placement(spec: dict[str, Any], name: str, label: LabelConfig) -> None:
    """The run's label backend and shard count must be the ones the pipeline was compiled for:
    both are fixed at compile time (GPU nodes for the teacher, CPU nodes for a served judge;
    one task per shard). The wrong backend would still run, but the teacher would crawl on CPU
    nodes, or every judge shard would hold a GPU it never uses; another shard count would be
    ignored without a word."""
    compiled = compiled_label_fan_out(spec)
    if compiled is None:
        return  # this pipeline labels nothing
    on_gpu, shards = compiled
    fix = "put that label section in configs/cluster.yaml and run `make compile`"
    if on_gpu != (label.backend == "teacher"):
        nodes = "GPU" if on_gpu else "CPU"
        raise SubmitError(
            f"{name} was compiled with its label shards on {nodes} nodes, but this config "
            f"labels with backend {label.backend!r}: {fix} (the backend is fixed when compiled)"
        )
    if shards != label.shards:
        raise SubmitError(
            f"{name} was compiled with {shards} label shards, but this config sets "
            f"label.shards {label.shards}: {fix} (the fan-out is fixed when compiled)"
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links to stdout; our commands' stdout is their JSON result."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _client(host: str, namespace: str | None) -> Any:
    import kfp

    return kfp.Client(
        host=host, namespace=namespace or "kubeflow", existing_token=os.environ.get(TOKEN_ENV)
    )


def submit(
    host: str,
    name: str,
    params: dict[str, str],
    config_yaml: str = "",
    experiment: str = "searchrel",
    namespace: str | None = None,
    run_name: str | None = None,
    service_account: str = SERVICE_ACCOUNT,
) -> dict[str, Any]:
    path = package(name)
    arguments = pipeline_arguments(path, params, config_yaml)
    client = _client(host, namespace)
    with _quiet():
        result = client.create_run_from_pipeline_package(
            str(path),
            arguments=arguments,
            run_name=run_name,
            experiment_name=experiment,
            namespace=namespace,
            enable_caching=None,  # keep each step's own caching setting
            service_account=service_account or None,
        )
    return {"pipeline": name, "run_id": result.run_id, "url": f"{host.rstrip('/')}/#/runs/details/"
            f"{result.run_id}"}  # fmt: skip


def schedule(
    host: str,
    name: str,
    cron: str,
    params: dict[str, str],
    config_yaml: str = "",
    experiment: str = "searchrel",
    namespace: str | None = None,
    job_name: str | None = None,
    service_account: str = SERVICE_ACCOUNT,
) -> dict[str, Any]:
    cron = check_cron(cron)
    path = package(name)
    arguments = pipeline_arguments(path, params, config_yaml)
    client = _client(host, namespace)
    with _quiet():
        experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
        job = client.create_recurring_run(
            experiment_id=experiment_id,
            job_name=job_name or f"{name}-{cron.replace(' ', '_').replace('*', 'x')}",
            cron_expression=cron,
            pipeline_package_path=str(path),
            params=arguments,
            max_concurrency=1,  # a day's run never overlaps the next
            no_catchup=True,  # a paused schedule does not replay every missed day when resumed
            enabled=True,
            service_account=service_account or None,
        )
    return {"pipeline": name, "cron": cron, "recurring_run_id": job.recurring_run_id}
