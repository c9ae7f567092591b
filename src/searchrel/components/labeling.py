"""Components: the daily labeling, one task per shard, and the collect that gathers them."""

from kfp.dsl import Dataset, Input, Model, Output


def label_shard(
    teacher: Input[Model],
    items: Input[Dataset],
    impressions: Input[Dataset],
    config_yaml: str,
    shard: int,
    n_shards: int,
    shard_labels: Output[Dataset],
    previous_labels: str = "",
    date: str = "",
) -> None:
    """Soft-label one shard of the distinct logged (query, item) pairs with the teacher.

    ``previous_labels``: an earlier teacher_labels directory this task can read (e.g. the
    previous day's label-collect output); pairs whose input text and teacher are unchanged
    are copied from it, not relabeled ("": none). ``date``: label only this impressions
    partition, YYYY-MM-DD ("": every date in the impressions)."""
    from searchrel.components.runtime import config_file, run_cli

    extra = []
    if previous_labels:
        extra += ["--previous", previous_labels]
    if date:
        extra += ["--date", date]
    run_cli(
        "label",
        "--teacher", teacher.path,
        "--items", items.path,
        "--impressions", impressions.path,
        "--out", shard_labels.path,
        "--shards", str(n_shards),
        "--shard", str(shard),
        *extra,
        "--config", config_file(config_yaml),
    )  # fmt: skip


def label_collect(
    shard_labels: Input[list[Dataset]], config_yaml: str, teacher_labels: Output[Dataset]
) -> None:
    """Gather every shard's labels into one teacher_labels table; a missing shard fails.
    Label freshness goes to label.pushgateway when the config names one."""
    from searchrel.components.runtime import config_file, run_cli

    args = [a for d in shard_labels for a in ("--shard-dir", d.path)]
    run_cli("label-collect", *args, "--out", teacher_labels.path,
              "--config", config_file(config_yaml))  # fmt: skip
