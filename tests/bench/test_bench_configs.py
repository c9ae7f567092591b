"""The bench's YAML configs are strict searchrel configs: a misspelt key fails here, in
seconds, rather than an hour into a bench run."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchrel.config import load_config

BENCH_CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bench" / "configs").glob("*.yaml"))


def test_the_bench_has_configs_to_check() -> None:
    assert len(BENCH_CONFIGS) >= 10


@pytest.mark.parametrize("path", BENCH_CONFIGS, ids=lambda path: path.stem)
def test_every_bench_config_loads_as_a_strict_config(path: Path) -> None:
    load_config(path)  # raises on an unknown key or a value of the wrong type
