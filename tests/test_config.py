"""Config is typed and strict: unknown keys and wrong types are errors, never defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchrel.config import ConfigError, load_config, shared_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["local.yaml", "cluster.yaml", "tiny.yaml"])
def test_every_shipped_config_loads(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.levels >= 2


def test_an_unknown_key_is_rejected_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"teacher\.epoch"):
        load_config(path)


def test_a_wrong_type_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("student:\n  hidden: wide\n")
    with pytest.raises(ConfigError, match=r"student\.hidden"):
        load_config(path)


def test_a_missing_config_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_merge_into_sections() -> None:
    cfg = load_config(overrides={"teacher": {"epochs": 9}})
    assert cfg.teacher.epochs == 9
    assert cfg.teacher.batch_size == load_config().teacher.batch_size


def test_shared_dir_comes_from_the_environment_first(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEARCHREL_SHARED_DIR", str(tmp_path))
    assert shared_dir() == tmp_path.resolve()
