"""The demo's console: one line per step (name, status, seconds, the one figure that matters),
a live bar while a step runs, and everything else — KFP's executor JSON, library warnings,
per-batch bars — in a log file whose path the demo prints.

Every byte the process and its children write to stdout or stderr goes to the log (the file
descriptors themselves are redirected, so C libraries and subprocesses are caught too). The
log is also read as it is written: kfp.local announces each task ("Executing task 'x'",
"Task 'x' finished with status SUCCESS") and each stage draws tqdm bars; those lines drive
the console. A step's figure is read from the files the step wrote (its summary, metrics or
gate decision), never parsed from its log.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PIPELINE_STARTED = re.compile(r"Running pipeline: '([^']+)'")
TASK_STARTED = re.compile(r"Executing task '([^']+)'")
TASK_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")
IMPORTER = re.compile(r"importer(-\d+)?$")  # dsl.importer: registers an artifact, no work to show
TASK_CACHED = re.compile(r"Task (\S+) cache hit")
# tqdm's line: "<desc>:  40%|####      | 4/10 [00:03<00:05, ...]"
TQDM = re.compile(r"^\s*(?P<desc>[^|]*?):\s+\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\b")
OF = re.compile(r"(\d+)/(\d+)\s*$")  # "teacher epoch 3/10": the epoch within the run
NAME_WIDTH = 20


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _f(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def metrics_figure(m: dict[str, Any]) -> str:
    return (
        f"accuracy {_f(m.get('accuracy'))}, QWK {_f(m.get('qwk'))}, nDCG@20 "
        f"{_f(m.get('ndcg_at_20'))} on {m.get('n', '?')} held-out pairs"
    )


def gate_figure(g: dict[str, Any]) -> str:
    verdict = "passed" if g.get("passed") else "held"
    if g.get("delta") is None:
        return f"{verdict}: {g.get('reason', '')}"
    return (
        f"{verdict}: {g.get('metric')} {g.get('candidate', 0):.4f} vs served "
        f"{g.get('serving', 0):.4f} ({g['delta']:+.4f}; {g.get('confidence', 0):.0%} upper "
        f"bound {g.get('delta_upper', 0):+.4f})"
    )


def summary_figure(s: dict[str, Any]) -> str:
    """The figure that matters of a stage's summary.json, by the stage that wrote it."""
    stage = s.get("stage")
    if stage == "ingest":
        tables = [t for t in ("items", "judgments", "impressions") if t in s]
        counts = ", ".join(f"{s[t]['rows_out']:,} {t}" for t in tables)
        quarantined = sum(s[t].get("quarantined", 0) for t in tables)
        never = s.get("impressions", {}).get("never_judged")
        unjudged = "" if never is None else f"{never:,} logged pairs never judged; "
        return f"{counts} ({unjudged}{quarantined} rows quarantined)"
    if stage == "caption":
        statuses = ", ".join(f"{n} {k}" for k, n in s.get("statuses", {}).items())
        return f"{s.get('items', 0)} items: {statuses or 'none'}"
    if stage in ("teacher-train", "student-train"):
        loss = s.get("best_val_loss")
        return f"{s.get('epochs_run')} epochs, best validation loss {_f(loss)}"
    if stage == "features":
        return f"{s.get('rows', 0):,} training rows, {s.get('items', 0)} items in the store"
    return ""


def step_figure(task_dir: Path) -> str:
    """Read the figure of a finished KFP task from the outputs it wrote under ``task_dir``."""
    if not task_dir.is_dir():
        return ""
    for path in sorted(task_dir.glob("*/gate.json")):
        return gate_figure(_json(path))
    for path in sorted(task_dir.glob("*/metrics.json")):
        return metrics_figure(_json(path))
    for path in sorted(task_dir.glob("*/summary.json")) + sorted(task_dir.glob("summary")):
        figure = summary_figure(_json(path))
        if figure:
            return figure
    records = sorted(task_dir.glob("*/date=*/shard-*-of-*.json"))
    if records:
        rows = [_json(r) for r in records]
        labeled = sum(r.get("labeled_now", 0) for r in rows)
        reused = sum(r.get("reused", 0) for r in rows)
        total = sum(r.get("rows", 0) for r in rows)
        return f"{total:,} pairs ({labeled:,} labeled now, {reused:,} reused)"
    output = _json(task_dir / "executor_output.json").get("parameterValues", {}).get("Output")
    return f"commit {str(output)[:12]}" if output else ""


def short_name(task: str) -> str:
    """kfp.local's ``label-shard-iteration-0`` (a ParallelFor iteration) as ``label-shard#0``."""
    return task.replace("-iteration-", "#")


class _Tap(io.TextIOBase):
    """Python's sys.stdout and sys.stderr while the demo runs: into the log, line by line
    through ``on_line``."""

    def __init__(self, log: TextIO, on_line: Callable[[str], None], lock: threading.RLock):
        self._log, self._on_line, self._lock, self._partial = log, on_line, lock, ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        with self._lock:
            self._log.write(s)
            self._log.flush()
            lines = re.split(r"[\r\n]", self._partial + s)
            self._partial = lines.pop()
            for line in lines:
                if line.strip():
                    self._on_line(ANSI.sub("", line))
        return len(s)

    def flush(self) -> None:
        with self._lock:
            self._log.flush()

    def isatty(self) -> bool:
        return False


class StepConsole:
    """One line per step on the terminal; the full output in ``log_path``."""

    def __init__(self, log_path: Path, console: Console | None = None) -> None:
        self.log_path = log_path
        self._given = console
        self.console: Console = console or Console()
        self.pipeline_root: Path | None = None  # where the running pipeline's task dirs are
        self.lines = 0  # printed step and section lines (the summary table is not counted)
        self.steps: list[dict[str, Any]] = []  # name, status, seconds, figure: for summary.json
        self._lock = threading.RLock()
        self._running: dict[str, list[tuple[float, TaskID | None]]] = {}  # by KFP task name
        self._finished: Counter[str] = Counter()  # tasks of each name finished in this run
        self._progress: Progress | None = None
        self._saved: tuple[int, int] | None = None
        self._log: TextIO | None = None
        self._terminal: TextIO | None = None  # our own handle on the terminal, closed at exit
        self._streams: tuple[TextIO, TextIO] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> StepConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        saved_out, saved_err = os.dup(1), os.dup(2)
        self._saved = (saved_out, saved_err)
        if self._given is None:  # the terminal, through the saved descriptor
            self._terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, encoding="utf-8")
            self.console = Console(file=self._terminal)
        self._log = self.log_path.open("a", encoding="utf-8", buffering=1)
        os.dup2(self._log.fileno(), 1)
        os.dup2(self._log.fileno(), 2)
        self._streams = (sys.stdout, sys.stderr)
        tap = _Tap(self._log, self._line, self._lock)
        sys.stdout = sys.stderr = tap
        if self.console.is_terminal:  # a live bar only where it can redraw in place
            self._progress = Progress(
                TextColumn("  {task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
                # Rich would route sys.stdout to the terminal; the log is where it belongs.
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams
        if self._saved is not None:
            os.dup2(self._saved[0], 1)
            os.dup2(self._saved[1], 2)
            os.close(self._saved[0])
            os.close(self._saved[1])
        if self._log is not None:
            self._log.close()
        if self._terminal is not None:
            self._terminal.close()

    # -- what the demo calls -----------------------------------------------------------------

    def section(self, title: str) -> None:
        self.console.print(f"[bold]{title}[/bold]", highlight=False, soft_wrap=True)
        self.lines += 1
        self.log(f"==== {title}")

    def log(self, text: str) -> None:
        """A line for the log file only."""
        if self._log is not None:
            with self._lock:
                self._log.write(text + "\n")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        """A step of the demo's own (not a KFP task): the caller sets ``figure`` in the dict."""
        result = {"figure": ""}
        self._start(name)
        try:
            yield result
        except BaseException:
            self._finish(name, "FAILED", "see the log")
            raise
        self._finish(name, "ok", result["figure"])

    # -- the log, read as it is written ------------------------------------------------------

    def _line(self, line: str) -> None:
        if match := PIPELINE_STARTED.search(line):
            self._finished.clear()  # ParallelFor iterations are numbered per run
        elif (match := TASK_STARTED.search(line)) and not IMPORTER.match(match.group(1)):
            self._start(match.group(1))
        elif (match := TASK_FINISHED.search(line)) and not IMPORTER.match(match.group(1)):
            task, status = match.groups()
            ok = status == "SUCCESS"
            self._finish(task, "ok" if ok else status, self._figure(task) if ok else "see the log")
        elif match := TASK_CACHED.search(line):
            self._start(match.group(1))
            self._finish(match.group(1), "cached", self._figure(match.group(1)))
        elif match := TQDM.match(line):
            self._advance(match.group("desc"), int(match.group("n")), int(match.group("total")))

    def _figure(self, task: str) -> str:
        if self.pipeline_root is None or not self.pipeline_root.is_dir():
            return ""
        runs = sorted(self.pipeline_root.iterdir(), key=lambda d: d.stat().st_mtime)
        if not runs:
            return ""
        run = runs[-1]
        if (run / task).is_dir():
            return step_figure(run / task)
        # A ParallelFor iteration writes under for-loop-N-iteration-I/<task>, in no known
        # order: the k-th iteration to finish is the k-th whose outputs were last written.
        iterations = sorted(run.glob(f"for-loop-*-iteration-*/{task}"), key=_last_written)
        k = self._finished[task]  # iterations of this task that finished before this one
        return step_figure(iterations[k]) if 0 <= k < len(iterations) else ""

    def _start(self, name: str) -> None:
        with self._lock:
            task_id = None
            if self._progress is not None:
                task_id = self._progress.add_task(short_name(name), total=None)
            self._running.setdefault(name, []).append((time.monotonic(), task_id))

    def _advance(self, desc: str, n: int, total: int) -> None:
        """A tqdm line of the running step: overall progress, epochs included."""
        with self._lock:
            running = [t for started in self._running.values() for _, t in started]
            if len(running) != 1 or running[0] is None or self._progress is None or total <= 0:
                return  # parallel steps interleave their bars: their spinners say enough
            done = n / total
            if epoch := OF.search(desc):
                e, epochs = int(epoch.group(1)), int(epoch.group(2))
                done = (e - 1 + done) / max(epochs, 1)
            self._progress.update(running[0], total=100, completed=100 * min(done, 1.0))

    def _finish(self, name: str, status: str, figure: str) -> None:
        with self._lock:
            self._finished[name] += 1
            started, task_id = (self._running.get(name) or [(time.monotonic(), None)]).pop(0)
            if not self._running.get(name):
                self._running.pop(name, None)
            if task_id is not None and self._progress is not None:
                self._progress.remove_task(task_id)
            if self._finished[name] > 1 or name in self._running:
                name = f"{name}#{self._finished[name]}"  # one of several of the same name
            name = short_name(name)
            seconds = time.monotonic() - started
            colour = "green" if status in ("ok", "cached") else "red"
            self.console.print(
                f"  {name:<{NAME_WIDTH}} [{colour}]{status:<6}[/{colour}] {seconds:6.1f}s  "
                f"{figure}",
                highlight=False,
                soft_wrap=True,
            )
            self.lines += 1
            self.steps.append(
                {"step": name, "status": status, "seconds": round(seconds, 1), "figure": figure}
            )
            self.log(f"==== step {name}: {status} in {seconds:.1f}s {figure}")


def _last_written(directory: Path) -> float:
    return max((f.stat().st_mtime for f in directory.rglob("*") if f.is_file()), default=0.0)
