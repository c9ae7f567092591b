"""Time the first ten minutes: a fresh clone, `make demo` with its own set-up, and record the
figures in bench/results/demo_loop.json (and the console as docs/img/demo_console.svg).

    .venv/bin/python bench/demo_loop.py            # clones HEAD into a temporary directory
    .venv/bin/python bench/demo_loop.py --keep DIR # ... into DIR, kept afterwards

The clone gets ../shared beside it (a link to this checkout's) and nothing else: no .venv, no
caches of the repository's own. Set-up (`make setup`: the virtualenv with the runtime
dependencies) and the demo (`make demo`) are timed apart, from the outside; their sum is what
a new user waits. The console is captured as `make demo` prints it (not a terminal, so without
live bars), and its lines before the summary table are counted. The quality figures are the
teacher's and the student's on the sample's held-out queries (small: a few dozen pairs, a
smoke check of the loop, not a quality benchmark — CrowdFlower benchmarks are separate).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402

KEYS = ("n", "accuracy", "auroc_ge_3", "auroc_ge_4", "auroc_ge_5", "qwk", "ndcg_at_20")
SUMMARY_TITLE = "searchrel demo: held-out human judgments"  # the summary table's first line


def timed(cmd: list[str], cwd: Path, transcript: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with transcript.open("w", encoding="utf-8") as out:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    return round(time.perf_counter() - started, 1), code


def console_svg(text: str, path: Path) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=110, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(Text(text.rstrip("\n")))
    path.write_text(console.export_svg(title="make demo"), encoding="utf-8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--keep", type=Path, help="clone here and keep it (default: a temporary dir)")
    args = p.parse_args()
    parent = args.keep.resolve().parent if args.keep else Path(tempfile.mkdtemp(prefix="demo-"))
    clone = args.keep.resolve() if args.keep else parent / "searchrel"
    parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    shared = parent / "shared"
    if not shared.exists():
        shared.symlink_to((ROOT.parent / "shared").resolve())
    setup_s, code = timed(["make", "setup"], clone, parent / "setup.txt")
    if code:
        print((parent / "setup.txt").read_text(), file=sys.stderr)
        return code
    demo_s, code = timed(["make", "demo"], clone, parent / "console.txt")
    console = (parent / "console.txt").read_text(encoding="utf-8")
    if code:
        print(console, file=sys.stderr)
        return code
    before_summary = console.split(SUMMARY_TITLE)[0].splitlines()
    summary = json.loads((clone / "runs" / "demo" / "summary.json").read_text(encoding="utf-8"))
    daily = summary["daily"]
    result: dict[str, Any] = {
        "command": ".venv/bin/python bench/demo_loop.py",
        "machine": machine_info(),
        "fresh_clone": {
            "setup_seconds": setup_s,
            "demo_seconds": demo_s,
            "total_seconds": round(setup_s + demo_s, 1),
            "console_lines_before_summary": len(before_summary),
        },
        "demo_seconds_inside": summary["seconds"],
        "pipeline_seconds": summary["pipeline"]["seconds"],
        "steps": summary["steps"],
        "teacher": {k: summary["teacher"].get(k) for k in KEYS},
        "student": {k: summary["student"].get(k) for k in KEYS},
        "student_vs_teacher_accuracy": summary["student_vs_teacher_accuracy"],
        "serving": {
            k: summary["serving"][k]
            for k in ("requests", "queries", "candidates", "status_counts", "latency_ms")
        },
        "drift": {
            k: summary["drift"].get(k)
            for k in ("drift_detected", "drift_share", "current_rows", "reference_rows")
        },
        "daily": {
            k: daily.get(k)
            for k in ("gate", "deployed", "commit", "served_uri_before", "served_uri", "seconds")
        },
    }
    path = ROOT / "bench" / "results" / "demo_loop.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (ROOT / "bench" / "results" / "demo_console.txt").write_text(console, encoding="utf-8")
    console_svg(console, ROOT / "docs" / "img" / "demo_console.svg")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
