"""Component: the drift check that decides whether to relabel."""

from kfp.dsl import Artifact, Dataset, Input, Output


def drift_check(
    reference: Input[Dataset],
    requests_dir: str,
    state_path: str,
    config_yaml: str,
    report: Output[Artifact],
) -> str:
    """Evidently drift of the served window vs the training rows; returns relabel or hold."""
    import json
    import os

    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "drift",
        "--reference", os.path.join(reference.path, "student_features.parquet"),
        "--requests", requests_dir,
        "--out", report.path,
        "--state", state_path,
        "--config", config_file(config_yaml),
    )  # fmt: skip
    with open(os.path.join(report.path, "drift.json"), encoding="utf-8") as fh:
        decision = json.load(fh)["decision"]
    print("drift decision:", decision, flush=True)
    return "relabel" if decision["relabel"] else "hold"
