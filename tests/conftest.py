"""Shared fixtures: the bundled sample, a tiny slice of it, and one real kfp.local run whose
student bundle the serving tests then serve."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny.yaml"
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from searchrel.data.sample import build_sample

    out = tmp_path_factory.mktemp("sample")
    build_sample(out)
    return out


@pytest.fixture(scope="session")
def tiny_source(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every item, the judgments, and one day of impressions: enough for every stage."""
    out = tmp_path_factory.mktemp("tiny_source")
    for name in ("items", "judgments"):
        pq.write_table(pq.read_table(sample_dir / f"{name}.parquet"), out / f"{name}.parquet")
    impressions = pq.read_table(sample_dir / "impressions.parquet")
    first_day = pc.min(impressions.column("date"))
    pq.write_table(
        impressions.filter(pc.equal(impressions.column("date"), first_day)),
        out / "impressions.parquet",
    )
    return out


@pytest.fixture(scope="session")
def local_run(tiny_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The relevance-loop pipeline, run once by kfp.local's SubprocessRunner."""
    from searchrel.pipelines.run_local import run_local

    root = tmp_path_factory.mktemp("pipeline_root")
    return run_local(source=str(tiny_source), config_path=TINY_CONFIG, pipeline_root=root)
