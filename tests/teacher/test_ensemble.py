"""A teacher ensemble: its soft labels are the members' mean, it labels like a single teacher,
a cut run keeps its finished members, members of other backbones and fields each read their
own item text, and members of other levels are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from searchrel.config import Config, load_config
from searchrel.teacher.ensemble import (
    ENSEMBLE_FILE,
    VIEW_SEPARATOR,
    EnsembleError,
    EnsembleScorer,
    load_scorer,
    write_ensemble,
)
from searchrel.teacher.model import TeacherScorer
from searchrel.teacher.train import train_teacher

pytestmark = pytest.mark.slow
QUERIES = ["garden idea 99", "cake idea 99", "cake idea 98"]
ROWS = [{"title": "roses in a garden bed 1", "description": "roses"}] * 3


def _three_seeds(tiny_bert: Path) -> Config:
    return load_config(
        overrides={
            "data": {"levels": 3, "test_fraction": 0.2, "val_fraction": 0.2},
            "teacher": {"base_model": str(tiny_bert), "finetune": "full", "epochs": 1,
                        "max_length": 32, "members": 3, "fields": ["title", "description"]},
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def ensemble(
    tmp_path_factory: pytest.TempPathFactory, toy_tables: tuple[Path, Path], tiny_bert: Path
) -> tuple[Path, dict[str, object]]:
    cfg = _three_seeds(tiny_bert)
    out = tmp_path_factory.mktemp("ensemble") / "teacher"
    return out, train_teacher(*toy_tables, out, cfg)


def test_an_ensembles_soft_labels_are_the_mean_of_its_members(
    ensemble: tuple[Path, dict[str, object]],
) -> None:
    out, summary = ensemble
    scorer = load_scorer(out, device="cpu")
    assert isinstance(scorer, EnsembleScorer) and len(scorer.members) == 3
    assert scorer.version == summary["teacher_version"]
    texts = scorer.item_texts(ROWS)
    members = [TeacherScorer(out / "members" / f"member-{k}", device="cpu") for k in (1, 2, 3)]
    each = [m.predict_proba(QUERIES, texts) for m in members]
    assert not np.allclose(each[0], each[1])  # different seeds, different teachers
    seen: list[int] = []
    probs = scorer.predict_proba(QUERIES, texts, progress=seen.append)
    np.testing.assert_allclose(probs, np.mean(each, axis=0), atol=1e-6)
    assert sum(seen) == len(QUERIES)  # progress counts pairs, not member passes


def test_a_rerun_keeps_the_finished_members(
    ensemble: tuple[Path, dict[str, object]], toy_tables: tuple[Path, Path], tiny_bert: Path
) -> None:
    out, summary = ensemble
    stamp = (out / "members" / "member-1" / "teacher.json").stat().st_mtime_ns
    cfg = _three_seeds(tiny_bert)
    again = train_teacher(*toy_tables, out, cfg)
    assert again["teacher_version"] == summary["teacher_version"]
    assert (out / "members" / "member-1" / "teacher.json").stat().st_mtime_ns == stamp


def test_members_of_other_backbones_and_fields_each_read_their_own_item_text(
    ensemble: tuple[Path, dict[str, object]],
    tmp_path: Path,
    toy_tables: tuple[Path, Path],
    encoder_config: Callable[..., Config],
    tiny_mpnet: Path,
) -> None:
    out, _ = ensemble
    seed = out / "members" / "member-1"  # BERT on title + description
    mpnet_title = tmp_path / "mpnet_title"  # MPNet on the title alone
    mpnet = encoder_config(epochs=1, fields=["title"], base_model=str(tiny_mpnet))
    train_teacher(*toy_tables, mpnet_title, mpnet)
    write_ensemble(tmp_path / "mixed", [seed, mpnet_title])
    scorer = load_scorer(tmp_path / "mixed", device="cpu")
    assert isinstance(scorer, EnsembleScorer)
    each = []
    for member in (seed, mpnet_title):
        alone = TeacherScorer(member, device="cpu")
        each.append(alone.predict_proba(QUERIES, alone.item_texts(ROWS)))
    texts = scorer.item_texts(ROWS)
    assert all(t.count(VIEW_SEPARATOR) == 1 and "description" in t.lower() for t in texts)
    np.testing.assert_allclose(
        scorer.predict_proba(QUERIES, texts), np.mean(each, axis=0), atol=1e-6
    )
    same_view = load_scorer(out, device="cpu")  # seeds of one config: the text as it was
    assert same_view.item_texts(ROWS) == TeacherScorer(seed, device="cpu").item_texts(ROWS)


def test_members_with_other_levels_or_alone_are_refused(
    ensemble: tuple[Path, dict[str, object]],
    tmp_path: Path,
    toy_tables: tuple[Path, Path],
    tiny_bert: Path,
) -> None:
    out, _ = ensemble
    seed = out / "members" / "member-1"
    four = load_config(
        overrides={
            "data": {"levels": 4, "test_fraction": 0.2, "val_fraction": 0.2},
            "teacher": {"base_model": str(tiny_bert), "finetune": "full", "epochs": 1,
                        "max_length": 32, "fields": ["title", "description"]},
        }
    )  # fmt: skip
    train_teacher(*toy_tables, tmp_path / "four", four)
    with pytest.raises(EnsembleError, match="differ in levels"):
        write_ensemble(tmp_path / "mixed", [seed, tmp_path / "four"])
    with pytest.raises(EnsembleError, match="at least two"):
        write_ensemble(tmp_path / "one", [seed])


def test_the_cli_makes_an_ensemble_of_saved_teachers_and_says_why_it_cannot(
    ensemble: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    out, _ = ensemble
    members = [str(out / "members" / f"member-{k}") for k in (1, 2)]
    cli = [sys.executable, "-m", "searchrel", "teacher", "ensemble"]
    made = subprocess.run([*cli, *members, "--out", str(tmp_path / "pair")], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert json.loads(made.stdout)["members"] == 2
    assert (tmp_path / "pair" / ENSEMBLE_FILE).is_file()
    assert load_scorer(tmp_path / "pair", device="cpu").version.startswith("teacher-ensemble-")
    refused = subprocess.run([*cli, members[0], str(tmp_path / "nothing"), "--out",
                              str(tmp_path / "bad")], capture_output=True, text=True)  # fmt: skip
    assert refused.returncode == 2
    assert "not a saved teacher" in refused.stderr and "Traceback" not in refused.stderr
