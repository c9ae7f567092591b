"""Components: features, student distillation and evaluation."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output


def build_features(
    items: Input[Dataset],
    judgments: Input[Dataset],
    teacher_labels: Input[Dataset],
    impressions: Input[Dataset],
    config_yaml: str,
    features: Output[Dataset],
) -> None:
    """Item feature store + the student's training rows (a directory)."""
    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "features", "build",
        "--items", items.path,
        "--judgments", judgments.path,
        "--teacher-labels", teacher_labels.path,
        "--impressions", impressions.path,
        "--out", features.path,
        "--config", config_file(config_yaml),
    )  # fmt: skip


def student_train(features: Input[Dataset], config_yaml: str, student: Output[Model]) -> None:
    """Distil the teacher into the student; the output is the serving bundle."""
    import os

    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "student", "train",
        "--features", os.path.join(features.path, "student_features.parquet"),
        "--store", os.path.join(features.path, "item_store"),
        "--out", student.path,
        "--config", config_file(config_yaml),
    )  # fmt: skip


def student_evaluate(
    student: Input[Model], features: Input[Dataset], metrics: Output[Metrics]
) -> None:
    """Score the student on the held-out queries; headline numbers go to KFP's Metrics."""
    import os

    from searchrel.components.runtime import read_json, run_cli, scalar_metrics

    out = metrics.path  # a directory: metrics.json, metrics.md, PNG plots
    run_cli(
        "student", "evaluate",
        "--model", student.path,
        "--features", os.path.join(features.path, "student_features.parquet"),
        "--out", out,
    )  # fmt: skip
    for name, value in scalar_metrics(read_json(os.path.join(out, "metrics.json"))).items():
        metrics.log_metric(name, value)
