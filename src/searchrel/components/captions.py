"""Component: synthetic image captions for the items (BLIP on a GPU node, or a VLM endpoint)."""

from kfp.dsl import Artifact, Dataset, Input, Output


def caption_items(
    items: Input[Dataset],
    config_yaml: str,
    captioned_items: Output[Dataset],
    captions: Output[Dataset],
    failures: Output[Dataset],
    summary: Output[Artifact],
    cache_dir: str = "",
) -> None:
    """Caption the items' images; the items come back with the caption field filled.

    ``cache_dir`` (a mounted PVC) overrides ``captions.cache_dir``, so that a daily run
    captions only images it has not seen; "" keeps the config's.
    """
    from searchrel.components.runtime import config_file, run_cli

    cache = ["--cache-dir", cache_dir] if cache_dir else []
    run_cli(
        "caption",
        "--items", items.path,
        "--items-out", captioned_items.path,
        "--captions", captions.path,
        "--failures", failures.path,
        "--summary", summary.path,
        "--config", config_file(config_yaml),
        *cache,
    )  # fmt: skip
