"""Every object every kustomization renders is one the API server would accept: core kinds by
kubernetes-validate --strict (the cluster's version), custom kinds by their CRD's schema from
../shared/k8s/crds with unknown fields rejected. Broken fixtures prove both checks bite. And the
GitOps wiring holds: Argo CD deploys what exists, Secrets are referenced and never inlined, the
PrometheusRule is the rules file Prometheus' tests ran on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrel.pipelines.catalog import COMPILED_DIR
from searchrel.prometheus_rule import MANIFEST, RULES, render

from .crds import crd_errors, is_custom
from .tools import MANIFESTS, REPO, kustomize

KUSTOMIZATIONS = sorted(
    str(p.parent.relative_to(MANIFESTS)) for p in MANIFESTS.rglob("kustomization.yaml")
)
KUBERNETES_VERSION = "1.32.0"  # the oldest Kubernetes we support (kubectl 1.32 here)
CUSTOM_KINDS = {"InferenceService", "ServingRuntime", "Application", "AppProject",
                "PrometheusRule", "ServiceMonitor"}  # fmt: skip
FIXTURES = Path(__file__).parent / "fixtures"


build = kustomize


def core_errors(doc: dict[str, Any]) -> list[str]:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate"
    )
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '$'}: {exc.message}"]
    except kubernetes_validate.InvalidSchemaError as exc:
        return [f"no schema: {exc}"]
    return []


def errors_of(doc: dict[str, Any]) -> list[str]:
    return crd_errors(doc) if doc["kind"] in CUSTOM_KINDS else core_errors(doc)


def test_every_directory_with_manifests_is_checked() -> None:
    assert {"base", "overlays/dev", "overlays/prod", "argocd", "pipelines"} <= set(KUSTOMIZATIONS)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_is_valid_for_the_api_server(kustomization: str) -> None:
    problems = {
        f"{d['kind']}/{d['metadata']['name']}": errors_of(d)
        for d in build(kustomization)
        if errors_of(d)
    }
    assert not problems, problems


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_custom_kinds_are_the_ones_we_have_crds_for(kustomization: str) -> None:
    for doc in build(kustomization):
        assert is_custom(doc) == (doc["kind"] in CUSTOM_KINDS), doc["kind"]


def test_the_core_check_rejects_unknown_and_mistyped_fields() -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "broken_core.yaml").read_text()))
    found = {f"{d['kind']}/{d['metadata']['name']}": errors_of(d) for d in docs}
    assert "'replica' was unexpected" in found["Deployment/unknown-field"][0]
    assert "is not of type" in found["Service/mistyped-port"][0]
    assert found["ConfigMap/fine"] == []  # and a valid object passes


def test_the_crd_check_rejects_broken_monitoring_and_argocd_objects() -> None:
    docs = list(yaml.safe_load_all((FIXTURES / "broken_custom.yaml").read_text()))
    found = {f"{d['kind']}/{d['metadata']['name']}": errors_of(d) for d in docs}
    assert any("'interval' was unexpected" in e for e in found["ServiceMonitor/bad"]), found
    assert any("'expr' is a required property" in e for e in found["PrometheusRule/bad"]), found
    assert any("'destinaton' was unexpected" in e for e in found["Application/bad"]), found


def test_no_secret_is_inlined_anywhere() -> None:
    for kustomization in KUSTOMIZATIONS:
        kinds = {d["kind"] for d in build(kustomization)}
        assert "Secret" not in kinds, kustomization
    for path in MANIFESTS.rglob("*.yaml"):
        assert "kind: Secret\n" not in path.read_text(), path


def test_prod_references_the_model_store_secret_for_the_predictor() -> None:
    docs = build("overlays/prod")
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    account = isvc["spec"]["predictor"]["serviceAccountName"]
    (sa,) = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account]
    assert sa["secrets"] == [{"name": "searchrel-model-store"}]


def test_argo_cd_deploys_overlays_that_exist_into_namespaces_the_project_allows() -> None:
    docs = build("argocd")
    (project,) = [d for d in docs if d["kind"] == "AppProject"]
    allowed = {d["namespace"] for d in project["spec"]["destinations"]}
    apps = [d for d in docs if d["kind"] == "Application"]
    assert {"searchrel-dev", "searchrel-prod", "searchrel-pipelines"} == {
        a["metadata"]["name"] for a in apps
    }
    for app in apps:
        source, destination = app["spec"]["source"], app["spec"]["destination"]
        assert source["repoURL"] in project["spec"]["sourceRepos"]
        path = source["path"].removeprefix("manifests/")
        assert path in KUSTOMIZATIONS, source["path"]
        assert destination["namespace"] in allowed
        rendered = build(path)
        namespaced = [d for d in rendered if d["kind"] != "Namespace"]
        # Each Application's destination is the namespace its kustomization renders into ...
        assert {d["metadata"].get("namespace") for d in namespaced} == {destination["namespace"]}
        # ... and the project lets every kind it renders through.
        whitelist = {
            (w["group"], w["kind"])
            for w in project["spec"]["namespaceResourceWhitelist"]
            + project["spec"]["clusterResourceWhitelist"]
        }
        for doc in rendered:
            group = doc["apiVersion"].rpartition("/")[0]
            assert (group, doc["kind"]) in whitelist, (app["metadata"]["name"], doc["kind"])


def test_the_servicemonitor_scrapes_the_predictor_on_its_metrics_port() -> None:
    docs = build("overlays/prod")
    (isvc,) = [d for d in docs if d["kind"] == "InferenceService"]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector == {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
    (container,) = isvc["spec"]["predictor"]["containers"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["targetPort"] == container["ports"][0]["containerPort"]
    assert endpoint["path"] == isvc["spec"]["predictor"]["annotations"]["prometheus.io/path"]


def test_the_prometheusrule_is_the_rules_file_rendered_fresh() -> None:
    committed = (REPO / MANIFEST).read_text(encoding="utf-8")
    fresh = render((REPO / RULES).read_text(encoding="utf-8"))
    assert committed == fresh, "stale: run `make manifests` and commit the result"
    (rule,) = [d for d in build("base") if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"] == yaml.safe_load((REPO / RULES).read_text())["groups"]


@pytest.mark.parametrize("executor", ["exec-gate-student", "exec-deploy-student"])
def test_the_daily_pipeline_reads_the_git_token_from_a_secret(executor: str) -> None:
    """The gate clones the GitOps repository (the served model) and the deploy pushes to it:
    both need the token of a private repository."""
    compiled = COMPILED_DIR / "daily_distillation.yaml"
    _spec, platform = yaml.safe_load_all(compiled.read_text())
    kube = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (secret,) = kube[executor]["secretAsEnv"]
    assert secret["secretName"] == "searchrel-gitops-credentials"
    assert secret["keyToEnv"] == [{"secretKey": "token", "envVar": "SEARCHREL_GIT_TOKEN"}]
    assert secret["optional"] is True
