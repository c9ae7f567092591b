"""The demo's console: one line per step with its figure, everything else in the log file —
including what subprocesses and C code write straight to the file descriptors."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from searchrel.demo_console import StepConsole, short_name, step_figure


def steps_into(buffer: io.StringIO, log: Path) -> StepConsole:
    return StepConsole(log, Console(file=buffer, width=120, color_system=None))


def test_kfp_task_lines_become_one_console_line_each_and_the_rest_goes_to_the_log(
    tmp_path: Path,
) -> None:
    run = tmp_path / "root" / "searchrel-relevance-loop-2026"
    (run / "teacher-train" / "teacher").mkdir(parents=True)
    (run / "teacher-train" / "teacher" / "summary.json").write_text(
        json.dumps({"stage": "teacher-train", "epochs_run": 7, "best_val_loss": 1.234})
    )
    buffer, log = io.StringIO(), tmp_path / "demo.log"
    with steps_into(buffer, log) as steps:
        steps.pipeline_root = tmp_path / "root"
        print("07:54:18.965 - INFO - Executing task \x1b[96m'teacher-train'\x1b[0m")
        print('    [KFP Executor] Got executor_input: {"inputs": {}}')
        print(
            "teacher epoch 2/10:  50%|#####     | 8/16 [00:10<00:10, 1.0batch/s]", file=sys.stderr
        )
        os.write(1, b"straight to fd 1\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child stderr\\n')"])
        logging.getLogger("kfp").warning("a library warning")
        print("Task \x1b[96m'teacher-train'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m")
    shown = buffer.getvalue().splitlines()
    assert len(shown) == 1 and steps.lines == 1
    assert "teacher-train" in shown[0] and "ok" in shown[0]
    assert "7 epochs, best validation loss 1.234" in shown[0]
    written = log.read_text()
    for line in ("Got executor_input", "teacher epoch 2/10", "straight to fd 1", "child stderr"):
        assert line in written
    assert steps.steps == [
        {"step": "teacher-train", "status": "ok", "seconds": steps.steps[0]["seconds"],
         "figure": "7 epochs, best validation loss 1.234"}
    ]  # fmt: skip


def test_the_streams_and_descriptors_are_restored_afterwards(tmp_path: Path) -> None:
    before = (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino)
    with steps_into(io.StringIO(), tmp_path / "demo.log"):
        pass
    assert (sys.stdout, sys.stderr, os.fstat(1).st_ino, os.fstat(2).st_ino) == before


def test_a_failed_step_says_so_and_the_exception_still_propagates(tmp_path: Path) -> None:
    buffer = io.StringIO()
    steps = steps_into(buffer, tmp_path / "demo.log")
    with pytest.raises(RuntimeError), steps, steps.step("start the server"):
        raise RuntimeError("port taken")
    assert "FAILED" in buffer.getvalue() and "start the server" in buffer.getvalue()


def test_a_failed_kfp_task_is_shown_as_failed(tmp_path: Path) -> None:
    buffer = io.StringIO()
    with steps_into(buffer, tmp_path / "demo.log"):
        print("Executing task 'ingest'")
        print("Task 'ingest' finished with status FAILURE")
    assert "FAILURE" in buffer.getvalue() and "see the log" in buffer.getvalue()


def test_figures_come_from_the_files_each_step_wrote(tmp_path: Path) -> None:
    gate = tmp_path / "gate-student" / "report"
    gate.mkdir(parents=True)
    (gate / "gate.json").write_text(json.dumps({
        "passed": True, "metric": "ndcg_at_20", "candidate": 0.958, "serving": 0.9581,
        "delta": -0.0001, "confidence": 0.95, "delta_upper": 0.012}))  # fmt: skip
    assert step_figure(tmp_path / "gate-student").startswith("passed: ndcg_at_20 0.9580")
    metrics = tmp_path / "student-evaluate" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "metrics.json").write_text(
        json.dumps({"accuracy": 0.6, "qwk": 0.8, "ndcg_at_20": 0.95, "n": 72})
    )
    assert "accuracy 0.600" in step_figure(tmp_path / "student-evaluate")
    ingest = tmp_path / "ingest"
    ingest.mkdir()
    counts = {"rows_in": 3, "rows_out": 2, "quarantined": 1}
    tables = {"items": counts, "judgments": counts, "impressions": counts}
    (ingest / "summary").write_text(json.dumps({"stage": "ingest", **tables}))
    assert step_figure(ingest) == "2 items, 2 judgments, 2 impressions (3 rows quarantined)"
    tables["impressions"] = {**counts, "pairs": 2, "never_judged": 1}
    (ingest / "summary").write_text(json.dumps({"stage": "ingest", **tables}))
    assert step_figure(ingest) == (
        "2 items, 2 judgments, 2 impressions (1 logged pairs never judged; 3 rows quarantined)"
    )
    shards = tmp_path / "label-shard-iteration-0" / "shard_labels" / "date=2024-05-01"
    shards.mkdir(parents=True)
    (shards / "shard-0-of-2.json").write_text(
        json.dumps({"rows": 500, "labeled_now": 400, "reused": 100})
    )
    assert step_figure(tmp_path / "label-shard-iteration-0") == (
        "500 pairs (400 labeled now, 100 reused)"
    )
    assert step_figure(tmp_path / "nothing-here") == ""
    assert short_name("label-shard-iteration-1") == "label-shard#1"


def test_parallel_iterations_of_one_task_get_a_line_each_with_their_own_figure(
    tmp_path: Path,
) -> None:
    run = tmp_path / "root" / "searchrel-daily-distillation-2026"
    for i, rows in ((0, 300), (1, 200)):
        shard = (
            run / f"for-loop-2-iteration-{i}" / "label-shard" / "shard_labels" / "date=2026-11-01"
        )
        shard.mkdir(parents=True)
        record = shard / f"shard-{i}-of-2.json"
        record.write_text(json.dumps({"rows": rows, "labeled_now": rows, "reused": 0}))
        os.utime(record, (1000 + 10 * (1 - i), 1000 + 10 * (1 - i)))  # iteration 1 ends first
    buffer = io.StringIO()
    with steps_into(buffer, tmp_path / "demo.log") as steps:
        steps.pipeline_root = tmp_path / "root"
        print("Running pipeline: 'searchrel-daily-distillation'")
        print("Executing task 'label-shard'")
        print("Executing task 'label-shard'")
        print("Task 'label-shard' finished with status SUCCESS")
        print("Task 'label-shard' finished with status SUCCESS")
    first, second = buffer.getvalue().splitlines()
    assert first.split()[0] == "label-shard#1" and "200 pairs" in first
    assert second.split()[0] == "label-shard#2" and "300 pairs" in second


def test_an_importer_which_does_no_work_gets_no_line(tmp_path: Path) -> None:
    buffer = io.StringIO()
    with steps_into(buffer, tmp_path / "demo.log"):
        print("Executing task 'importer'")
        print("Task 'importer' finished with status SUCCESS")
    assert buffer.getvalue() == ""
