"""Components: the deploy gate and the GitOps deploy of a student that passed it."""

from kfp.dsl import Artifact, Dataset, Input, Model, Output


def gate_student(
    candidate: Input[Model],
    items: Input[Dataset],
    judgments: Input[Dataset],
    serving_model_uri: str,
    gitops_repo: str,
    config_yaml: str,
    report: Output[Artifact],
) -> str:
    """The candidate against the serving student on held-out human labels: deploy or hold.

    ``serving_model_uri`` "" reads what the GitOps overlay serves; "none" is a first deploy."""
    import json
    import os

    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "student", "gate",
        "--candidate", candidate.path,
        "--items", items.path,
        "--judgments", judgments.path,
        "--serving", serving_model_uri,
        "--gitops-repo", gitops_repo,
        "--out", report.path,
        "--config", config_file(config_yaml),
    )  # fmt: skip
    with open(os.path.join(report.path, "gate.json"), encoding="utf-8") as fh:
        decision = json.load(fh)
    print("gate:", decision["reason"], flush=True)
    return "deploy" if decision["passed"] else "hold"


def deploy_student(
    candidate: Input[Model],
    report: Input[Artifact],
    gitops_repo: str,
    run_name: str,
    config_yaml: str,
) -> str:
    """Commit the candidate's URI to the GitOps overlay (Argo CD syncs it); returns the commit."""
    import json
    import subprocess

    from searchrel.components.runtime import cli_command, config_file

    cmd = cli_command(
        "deploy",
        "--model-uri", candidate.uri,
        "--gate", report.path,
        "--repo", gitops_repo,
        "--run", run_name,
        "--config", config_file(config_yaml),
    )  # fmt: skip
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True)
    print(out.stdout, out.stderr, sep="\n", flush=True)  # the one-line reason, on failure too
    if out.returncode != 0:
        raise RuntimeError(f"deploy failed (exit {out.returncode}): see the log above")
    return str(json.loads(out.stdout).get("commit", ""))
