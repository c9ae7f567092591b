"""A ``searchrel`` command run as the pipeline runs it: a subprocess of this checkout's code,
its progress on the console and in a log file, its printed JSON summary returned."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("searchrel_cli")


def last_json(text: str) -> dict[str, Any]:
    """The JSON object a ``searchrel`` command prints last (its top-level ``{`` opens a line)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line == "{"]
    if not starts:
        raise ValueError("no JSON summary in the command's output")
    parsed = json.loads("\n".join(lines[starts[-1] :]))
    if not isinstance(parsed, dict):
        raise ValueError("the command's summary is not a JSON object")
    return parsed


def run_cli(argv: list[str], log_path: Path) -> tuple[dict[str, Any], float]:
    """``python -m searchrel ARGV`` with this checkout's code; its stderr (progress, logs) goes
    to the console and to ``log_path``. Returns the printed summary and the wall time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")) if p
    )
    cmd = [sys.executable, "-m", "searchrel", *argv]
    log.info("running: searchrel %s (log: %s)", " ".join(argv), log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("ab") as log_file:
        log_file.write(f"\n$ {' '.join(cmd)}\n".encode())
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert proc.stdout is not None and proc.stderr is not None
        stderr, tail = proc.stderr, bytearray()
        console = getattr(sys.stderr, "buffer", None)

        def tee() -> None:
            for chunk in iter(lambda: os.read(stderr.fileno(), 4096), b""):
                log_file.write(chunk)
                tail[:] = (tail + chunk)[-4096:]
                if console is not None:
                    console.write(chunk)
                    console.flush()

        thread = threading.Thread(target=tee, daemon=True)
        thread.start()
        stdout = proc.stdout.read().decode()
        code = proc.wait()
        thread.join()
        log_file.write(stdout.encode())
    wall = time.perf_counter() - started
    if code != 0:
        lines = [x for x in bytes(tail).decode(errors="replace").splitlines() if x.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise RuntimeError(f"searchrel {argv[0]} failed (exit {code}): {last} (log: {log_path})")
    return last_json(stdout), wall
