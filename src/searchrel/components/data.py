"""Component: bring the input tables in, validated."""

from kfp.dsl import Artifact, Dataset, Output


def ingest(
    source: str,
    config_yaml: str,
    items: Output[Dataset],
    judgments: Output[Dataset],
    impressions: Output[Dataset],
    summary: Output[Artifact],
) -> None:
    """Validate items, judgments and impressions from `source` ("sample" or a directory)."""
    from searchrel.components.runtime import config_file, run_cli

    run_cli(
        "data", "ingest",
        "--source", source,
        "--items", items.path,
        "--judgments", judgments.path,
        "--impressions", impressions.path,
        "--summary", summary.path,
        "--config", config_file(config_yaml),
    )  # fmt: skip
