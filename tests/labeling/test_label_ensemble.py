"""A teacher ensemble labels the day through the same sharded job as a single teacher: each
pair's soft label is the members' mean (each member reading its own item text), stamped with the
ensemble's version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from searchrel.config import TeacherConfig, load_config
from searchrel.labeling.job import label_impressions
from searchrel.tables import read_table
from searchrel.teacher.ensemble import write_ensemble
from searchrel.teacher.model import TeacherMeta, build_teacher, save_teacher

pytestmark = pytest.mark.slow
KEY = [("query", "ascending"), ("locale", "ascending"), ("item_id", "ascending")]


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two MiniLM LoRA teachers with other (untrained, seeded) heads; the second reads the
    title alone, so the ensemble joins two views of each item."""
    import torch

    out = []
    for seed, fields in ((0, TeacherConfig().fields), (1, ["title"])):
        cfg = TeacherConfig(max_length=64, field_max_tokens=16, lora_r=4, fields=fields)
        directory = tmp_path_factory.mktemp(f"member{seed}")
        torch.manual_seed(seed)
        model, tokenizer = build_teacher(cfg, 5, torch.device("cpu"))
        meta = TeacherMeta(cfg.base_model, 5, cfg.fields, cfg.field_max_tokens, cfg.max_length)
        save_teacher(model, tokenizer, meta, directory)
        out.append(directory)
    return out


def _labels(out: Path) -> pa.Table:
    return read_table(out, "teacher_labels", 5).table.sort_by(KEY)


def test_an_ensemble_labels_the_day_with_its_members_mean_through_the_sharded_cli(
    members: list[Path], tiny_source: Path, tmp_path: Path
) -> None:
    cfg = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 2}})
    singles = []
    for k, member in enumerate(members):
        label_impressions(member, tiny_source / "items.parquet",
                          tiny_source / "impressions.parquet", tmp_path / f"m{k}", cfg)  # fmt: skip
        singles.append(np.array(_labels(tmp_path / f"m{k}").column("probs").to_pylist()))
    version = write_ensemble(tmp_path / "ensemble", members)
    subprocess.run(
        [sys.executable, "-m", "searchrel", "label", "--teacher", str(tmp_path / "ensemble"),
         "--items", str(tiny_source / "items.parquet"),
         "--impressions", str(tiny_source / "impressions.parquet"),
         "--out", str(tmp_path / "labels"), "--shards", "2"],
        check=True, capture_output=True,
    )  # fmt: skip
    rows = _labels(tmp_path / "labels")
    assert set(rows.column("teacher_version").to_pylist()) == {version}
    probs = np.array(rows.column("probs").to_pylist())
    assert not np.allclose(singles[0], singles[1])
    np.testing.assert_allclose(probs, (singles[0] + singles[1]) / 2, atol=1e-4)
