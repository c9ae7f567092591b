"""Components: teacher training and evaluation (GPU stages on a cluster)."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output


def teacher_train(
    items: Input[Dataset],
    judgments: Input[Dataset],
    config_yaml: str,
    teacher: Output[Model],
) -> None:
    """Fine-tune the LoRA cross-encoder teacher on human judgments."""
    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "teacher", "train",
        "--items", items.path,
        "--judgments", judgments.path,
        "--out", teacher.path,
        "--config", config_file(config_yaml),
    )  # fmt: skip


def teacher_evaluate(
    teacher: Input[Model],
    items: Input[Dataset],
    judgments: Input[Dataset],
    config_yaml: str,
    metrics: Output[Metrics],
) -> None:
    """Score the teacher on the held-out queries; headline numbers go to KFP's Metrics."""
    import os

    from searchrel.components.runtime import config_file, read_json, run_cli, scalar_metrics

    out = metrics.path  # a directory: metrics.json, metrics.md, PNG plots
    run_cli(
        "teacher", "evaluate",
        "--model", teacher.path,
        "--items", items.path,
        "--judgments", judgments.path,
        "--out", out,
        "--config", config_file(config_yaml),
    )  # fmt: skip
    for name, value in scalar_metrics(read_json(os.path.join(out, "metrics.json"))).items():
        metrics.log_metric(name, value)
