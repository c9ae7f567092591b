"""The Kubernetes manifests: every kustomization builds, and the InferenceService it renders is
valid for the KServe CRD and keeps the serving contract (image, model mount, port, metrics).

The CRD check emulates the API server with strict field validation: the CRD's openAPIV3Schema
with unknown fields rejected, plus the uniqueness of list-map keys (env names, ports). A broken
fixture proves that the check rejects what the API server would.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrel.config import ServeConfig
from searchrel.images import DEFAULT_REGISTRY, resolve_images

from .crds import crd_errors
from .tools import MANIFESTS, REPO, kustomize

OVERLAYS = sorted(p.parent.name for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))
# The kustomizations that hold the student's InferenceService (argocd/ and pipelines/ do not).
KUSTOMIZATIONS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
BROKEN_FIXTURE = Path(__file__).parent / "fixtures" / "broken_inferenceservice.yaml"

# KServe's webhook: an InferenceService name is a DNS-1035 label (it prefixes Service names).
ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
STORAGE_SCHEMES = ("s3://", "gs://", "pvc://", "hf://", "oci://", "https://", "http://")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


build = kustomize


def inference_services(kustomization: str) -> list[dict[str, Any]]:
    return [d for d in build(kustomization) if d["kind"] == "InferenceService"]


def the_isvc(kustomization: str) -> dict[str, Any]:
    (isvc,) = inference_services(kustomization)
    return isvc


def server_container(isvc: dict[str, Any]) -> dict[str, Any]:
    (container,) = isvc["spec"]["predictor"]["containers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def isvc_errors(doc: dict[str, Any]) -> list[str]:
    """Everything the API server (with KServe's CRD and webhook name rule) would reject."""
    errors = crd_errors(doc)
    name = doc.get("metadata", {}).get("name", "")
    if not ISVC_NAME.match(name) or len(name) > 63:
        errors.append(f"$.metadata.name: {name!r} is not a DNS-1035 label")
    return errors


# --- tests ---------------------------------------------------------------------------------------


def test_there_are_dev_and_prod_overlays() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_kustomization_builds_into_well_formed_objects(kustomization: str) -> None:
    docs = build(kustomization)
    assert docs, f"{kustomization} renders nothing"
    seen = set()
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), doc
        meta = doc.get("metadata") or {}
        assert meta.get("name"), f"{doc['kind']} without a name"
        ident = (doc["apiVersion"], doc["kind"], meta.get("namespace"), meta["name"])
        assert ident not in seen, f"duplicate object {ident}"
        seen.add(ident)
    assert len(inference_services(kustomization)) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_puts_everything_in_its_own_namespace(overlay: str) -> None:
    docs = build(f"overlays/{overlay}")
    (namespace,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == namespace, doc["kind"]
    others = [o for o in OVERLAYS if o != overlay]
    for other in others:
        assert the_isvc(f"overlays/{other}")["metadata"]["namespace"] != namespace


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_inference_service_is_valid_for_the_kserve_crd(kustomization: str) -> None:
    assert isvc_errors(the_isvc(kustomization)) == []


def test_crd_check_rejects_the_broken_fixture() -> None:
    (doc,) = list(yaml.safe_load_all(BROKEN_FIXTURE.read_text(encoding="utf-8")))
    errors = isvc_errors(doc)
    expected = {
        "$.spec.predictor.minReplicas": "is not of type 'integer'",
        "$.spec.predictor.scaleMetric": "is not one of",
        "$.spec.predictor.containers[0]": "'storageUri' was unexpected",
        "$.spec.predictor.containers[0].resources.limits.cpu": "does not match",
        "$.spec.predictor.containers[0].env[2]": "duplicate entry for {'name': 'STORAGE_URI'}",
        "$.metadata.name": "not a DNS-1035 label",
    }
    for path, message in expected.items():
        assert any(e.startswith(f"{path}: ") and message in e for e in errors), (path, errors)
    assert len(errors) == len(expected), errors


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_image_is_the_one_searchrel_images_resolves(kustomization: str) -> None:
    expected = resolve_images(registry=DEFAULT_REGISTRY, tag=project_version()).cpu
    assert server_container(the_isvc(kustomization))["image"] == expected


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_inference_service_keeps_the_serving_contract(kustomization: str) -> None:
    serve = ServeConfig()
    isvc = the_isvc(kustomization)
    predictor = isvc["spec"]["predictor"]
    container = server_container(isvc)
    env = env_of(container)

    assert isvc["metadata"]["name"] == serve.model_name
    # KServe's storage initializer serves a custom container only when it is named so and
    # carries STORAGE_URI; it downloads to /mnt/models, where the server must look.
    assert container["name"] == "kserve-container"
    assert env.get("STORAGE_URI", "").startswith(STORAGE_SCHEMES), env
    command = [*container.get("command", []), *container.get("args", [])]
    assert command[:4] == ["python", "-m", "searchrel", "serve"]
    assert command[command.index("--model-dir") + 1] == "/mnt/models"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [serve.http_port]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == serve.http_port, probe

    annotations = predictor["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(serve.http_port)
    assert annotations["prometheus.io/path"] == "/metrics"

    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"])
    assert int(env["OMP_NUM_THREADS"]) == max(1, int(cpu_cores(limits["cpu"])))

    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    if predictor.get("scaleMetric") in ("cpu", "memory"):
        # KServe accepts cpu/memory scaling only for Standard mode with the HPA class.
        meta_annotations = isvc["metadata"]["annotations"]
        assert meta_annotations["serving.kserve.io/deploymentMode"] == "Standard"
        assert meta_annotations["serving.kserve.io/autoscalerClass"] == "hpa"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_server_runs_as_the_images_non_root_user(kustomization: str) -> None:
    dockerfile = (REPO / "images/python/Dockerfile").read_text(encoding="utf-8")
    (user,) = re.findall(r"^USER (\d+)", dockerfile, flags=re.MULTILINE)
    isvc = the_isvc(kustomization)
    security = server_container(isvc)["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == int(user)
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert (
        isvc["spec"]["predictor"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert isvc["spec"]["predictor"]["serviceAccountName"] in {
        d["metadata"]["name"] for d in build(kustomization) if d["kind"] == "ServiceAccount"
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budget_selects_the_predictor_and_leaves_room_to_drain(overlay: str) -> None:
    docs = build(f"overlays/{overlay}")
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    isvc = the_isvc(f"overlays/{overlay}")
    for pdb in budgets:
        assert pdb["spec"]["selector"]["matchLabels"] == {
            "serving.kserve.io/inferenceservice": isvc["metadata"]["name"],
            "component": "predictor",
        }
        # minAvailable equal to minReplicas would block every node drain.
        assert pdb["spec"]["minAvailable"] < isvc["spec"]["predictor"]["minReplicas"]
    if overlay == "prod":
        assert budgets, "prod runs without a PodDisruptionBudget"
        assert isvc["spec"]["predictor"]["minReplicas"] >= 2


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_request_log_goes_to_a_receiver_service_that_exists(kustomization: str) -> None:
    from urllib.parse import urlparse

    docs = build(kustomization)
    command = server_container(the_isvc(kustomization))["args"]
    url = urlparse(command[command.index("--request-log-url") + 1])
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert url.hostname in services
    assert url.port in [p["port"] for p in services[url.hostname]["spec"]["ports"]]
    (receiver,) = [d for d in docs if d["kind"] == "Deployment"
                   and d["metadata"]["name"] == url.hostname]  # fmt: skip
    container = receiver["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-1] == "request-log-receiver"
    assert str(url.port) in container["args"]
