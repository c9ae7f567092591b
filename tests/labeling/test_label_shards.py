"""Batch labeling: deterministic shards, atomic files, resumption after kill -9 to exactly
the uninterrupted run's table, reuse of unchanged pairs (through the KFP component too), the
CPU quota as the thread count, and a clear error for a run that cannot be resumed."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from searchrel.atomic_files import TMP_MARK
from searchrel.config import TeacherConfig, load_config
from searchrel.labeling import shards as sh
from searchrel.labeling.collect import collect_shards
from searchrel.labeling.job import label_impressions
from searchrel.tables import ContractError, read_table
from searchrel.teacher.model import TeacherMeta, build_teacher, save_teacher

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-11-01"


@pytest.fixture(scope="module")
def minilm_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MiniLM LoRA teacher (untrained: labeling speed and bookkeeping do not need training)."""
    import torch

    out = tmp_path_factory.mktemp("teacher")
    cfg = TeacherConfig(max_length=64, field_max_tokens=16, lora_r=4)
    torch.manual_seed(0)
    model, tokenizer = build_teacher(cfg, 5, torch.device("cpu"))
    meta = TeacherMeta(cfg.base_model, 5, cfg.fields, cfg.field_max_tokens, cfg.max_length)
    save_teacher(model, tokenizer, meta, out)
    return out


def _cli(teacher: Path, source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "searchrel", "label", "--teacher", str(teacher),
            "--items", str(source / "items.parquet"),
            "--impressions", str(source / "impressions.parquet"),
            "--out", str(out), "--date", DAY, "--shards", "8", *extra]  # fmt: skip


def _rows(out: Path) -> pa.Table:
    table = read_table(out, "teacher_labels", 5).table
    return table.sort_by([("query", "ascending"), ("locale", "ascending"),
                          ("item_id", "ascending")])  # fmt: skip


def test_shard_assignment_is_stable_and_spreads_pairs() -> None:
    pairs = [(f"query {i}", "en-US", f"item-{i % 37}") for i in range(2000)]
    first = [sh.shard_of(*p, 8) for p in pairs]
    assert first == [sh.shard_of(*p, 8) for p in pairs]
    counts = np.bincount(first, minlength=8)
    assert counts.min() > 2000 / 8 * 0.8  # roughly even
    assert sh.shard_of("a", "en-US", "x", 8) == 1  # a fixed value: no per-process hash seed


def test_a_run_killed_mid_way_resumes_to_exactly_the_rows_of_an_uninterrupted_run(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    subprocess.run(_cli(minilm_teacher, tiny_source, whole), check=True, env=env,
                   capture_output=True)  # fmt: skip
    killed = tmp_path / "killed"
    pdir = killed / f"date={DAY}"
    proc = subprocess.Popen(_cli(minilm_teacher, tiny_source, killed), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(pdir.glob("shard-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # kill -9: no cleanup, no flush
    proc.wait()
    done_before = len(list(pdir.glob("shard-*.json")))
    assert 1 <= done_before < 8, "the kill must land mid-run"
    assert not (pdir / sh.MANIFEST).exists()
    (pdir / f".shard-00007-of-00008.parquet{TMP_MARK}999").write_bytes(b"half a file")

    resumed = subprocess.run(_cli(minilm_teacher, tiny_source, killed), check=True, env=env,
                             capture_output=True, text=True)  # fmt: skip
    summary = json.loads(resumed.stdout)
    assert summary["shards_done_earlier"] == done_before
    assert summary["shards_labeled"] == 8 - done_before
    assert summary["temporaries_removed"] == 1
    assert summary["complete"]
    a, b = _rows(whole), _rows(killed)
    assert a.num_rows == b.num_rows == summary["labeled"]
    keys = list(
        zip(*(b.column(c).to_pylist() for c in ("query", "locale", "item_id")), strict=True)
    )
    assert len(set(keys)) == len(keys)  # none twice
    # Exactly the uninterrupted run's table, every column (date, expected_score ...), and the
    # probabilities bit for bit: a shard is always labeled whole, in the same length-sorted
    # batches, so a resumed shard's forward passes are the very ones the whole run made.
    assert a.schema == b.schema
    for name in a.column_names:
        assert a.column(name).equals(b.column(name)), name
    bits = [np.array(t.column("probs").to_pylist(), np.float32).view(np.uint32) for t in (a, b)]
    np.testing.assert_array_equal(*bits)


def test_every_distinct_pair_of_the_day_is_labeled_once(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    cfg = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 3}})
    summary = label_impressions(minilm_teacher, tiny_source / "items.parquet",
                                tiny_source / "impressions.parquet", tmp_path, cfg)  # fmt: skip
    impressions = pq.read_table(tiny_source / "impressions.parquet")
    distinct = {tuple(r.values()) for r in
                impressions.select(["query", "locale", "item_id"]).to_pylist()}  # fmt: skip
    rows = _rows(tmp_path)
    assert rows.num_rows == len(distinct) == summary["pairs"] == summary["labeled"]
    probs = np.array(rows.column("probs").to_pylist())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = (probs * np.arange(1, 6)).sum(axis=1)
    np.testing.assert_allclose(rows.column("expected_score").to_numpy(), expected, atol=1e-4)
    np.testing.assert_array_equal(rows.column("label").to_numpy(), probs.argmax(axis=1) + 1)


def test_a_changed_item_is_relabeled_and_unchanged_pairs_are_copied(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    cfg = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 2}})
    first = tmp_path / "day1"
    label_impressions(minilm_teacher, tiny_source / "items.parquet",
                      tiny_source / "impressions.parquet", first, cfg)  # fmt: skip
    items = pq.read_table(tiny_source / "items.parquet")
    changed_id = _rows(first).column("item_id")[0].as_py()
    titles = [t + " (new edition)" if i == changed_id else t for i, t in
              zip(items.column("item_id").to_pylist(), items.column("title").to_pylist(),
                  strict=True)]  # fmt: skip
    src = tmp_path / "src"
    src.mkdir()
    pq.write_table(items.set_column(items.schema.get_field_index("title"), "title",
                                    pa.array(titles)), src / "items.parquet")  # fmt: skip
    pq.write_table(pq.read_table(tiny_source / "impressions.parquet"), src / "impressions.parquet")
    second = tmp_path / "day2"
    summary = label_impressions(minilm_teacher, src / "items.parquet",
                                src / "impressions.parquet", second, cfg,
                                previous=[first])  # fmt: skip
    old, new = _rows(first), _rows(second)
    n_changed = pc.sum(pc.equal(new.column("item_id"), changed_id)).as_py()
    assert n_changed >= 1
    assert summary["labeled_now"] == n_changed
    assert summary["reused"] == new.num_rows - n_changed
    moved = pc.not_equal(old.column("input_hash"), new.column("input_hash"))
    assert set(new.filter(moved).column("item_id").to_pylist()) == {changed_id}


def test_the_label_shard_component_copies_unchanged_pairs_from_the_previous_days_labels(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    """As the daily pipeline runs it: day 1's shard tasks and collect, then day 2's shard tasks
    given day 1's teacher_labels (previous_labels) and the day to label (date)."""
    from searchrel.components.labeling import label_collect, label_shard

    config_yaml = "data: {levels: 5}\nlabel: {shards: 2}\n"
    day1 = pq.read_table(tiny_source / "impressions.parquet")
    next_day = dt.date.fromisoformat(DAY) + dt.timedelta(days=1)
    date_field = day1.schema.field("date")
    day2 = day1.set_column(day1.schema.get_field_index("date"), date_field,
                           pa.array([next_day] * day1.num_rows, pa.date32()))  # fmt: skip
    pq.write_table(pa.concat_tables([day1, day2]), tmp_path / "two_days.parquet")

    def shards(impressions: Path, name: str, **optional: str) -> list[SimpleNamespace]:
        outs = [SimpleNamespace(path=str(tmp_path / name / f"shard-{k}")) for k in range(2)]
        for k, out in enumerate(outs):
            label_shard(teacher=SimpleNamespace(path=str(minilm_teacher)),
                        items=SimpleNamespace(path=str(tiny_source / "items.parquet")),
                        impressions=SimpleNamespace(path=str(impressions)),
                        config_yaml=config_yaml, shard=k, n_shards=2, shard_labels=out,
                        **optional)  # fmt: skip
        return outs

    first = SimpleNamespace(path=str(tmp_path / "day1-labels"))
    label_collect(shards(tiny_source / "impressions.parquet", "day1"), config_yaml, first)
    second = shards(tmp_path / "two_days.parquet", "day2", previous_labels=first.path,
                    date=next_day.isoformat())  # fmt: skip

    records = [json.loads(f.read_text()) for out in second
               for f in Path(out.path).glob("date=*/shard-*.json")]  # fmt: skip
    assert {r["date"] for r in records} == {next_day.isoformat()}  # only the day it was given
    assert sum(r["reused"] for r in records) == sum(r["rows"] for r in records) > 0
    assert sum(r["labeled_now"] for r in records) == 0  # the teacher ran on no pair again
    old = _rows(Path(first.path))
    new = pa.concat_tables([read_table(out.path, "teacher_labels", 5).table for out in second])
    new = new.sort_by([("query", "ascending"), ("locale", "ascending"), ("item_id", "ascending")])
    assert set(new.column("date").to_pylist()) == {next_day}
    for name in ("query", "locale", "item_id", "probs", "input_hash", "teacher_version"):
        assert new.column(name).equals(old.column(name)), name


def test_zero_threads_labels_with_as_many_threads_as_the_cpu_quota_allows(
    minilm_teacher: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from searchrel.labeling import threads
    from searchrel.labeling.teacher_labeler import TeacherLabeler

    quota = tmp_path / "cpu.max"
    quota.write_text("100000 100000\n")  # a pod with limits.cpu: 1
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", quota)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        labeler = TeacherLabeler(minilm_teacher, load_config(overrides={"label": {"threads": 0}}))
        assert labeler.threads == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_different_shard_count_in_the_same_directory_is_one_clear_error(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    cfg = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 2}})
    label_impressions(minilm_teacher, tiny_source / "items.parquet",
                      tiny_source / "impressions.parquet", tmp_path, cfg, shards=[0])  # fmt: skip
    other = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 3}})
    with pytest.raises(ContractError, match="same --shards"):
        label_impressions(minilm_teacher, tiny_source / "items.parquet",
                          tiny_source / "impressions.parquet", tmp_path, other)  # fmt: skip


def test_collecting_fanned_out_shards_needs_every_shard(
    minilm_teacher: Path, tiny_source: Path, tmp_path: Path
) -> None:
    cfg = load_config(overrides={"data": {"levels": 5}, "label": {"shards": 3}})
    parts = []
    for k in range(3):  # as three KFP tasks would: one output directory each
        parts.append(tmp_path / f"task{k}")
        label_impressions(minilm_teacher, tiny_source / "items.parquet",
                          tiny_source / "impressions.parquet", parts[-1], cfg,
                          shards=[k])  # fmt: skip
    with pytest.raises(ContractError, match=r"shards \[2\] of 3 were never labeled"):
        collect_shards(parts[:2], tmp_path / "partial")
    summary = collect_shards(parts, tmp_path / "all")
    day = summary["dates"][DAY]
    assert day["complete"] and day["n_shards"] == 3
    assert _rows(tmp_path / "all").num_rows == day["rows"]


def test_previous_labels_given_as_a_bucket_uri_fail_with_one_clear_line() -> None:
    from searchrel.labeling.job import load_previous

    with pytest.raises(
        ContractError, match=r"gs://bucket/labels/2026-11-25: a URI; the labeler reads a local path"
    ):
        load_previous([Path("gs://bucket/labels/2026-11-25")], 5)
