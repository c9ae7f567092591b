"""`make test`'s first step (.ci/system-tools): with a tool missing and no way to install it, it
stops before any test with the one command to run, instead of letting the tests skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "system-tools"


def path_with(tmp_path: Path, tools: list[str], uid: int) -> str:
    """A PATH holding bash's basics, a fake `id` and only ``tools`` of the test tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "env", "cat"):
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    (bin_dir / "id").write_text(f"#!/bin/sh\necho {uid}\n")
    for name in tools:
        (bin_dir / name).write_text("#!/bin/sh\nexit 0\n")
    for f in bin_dir.iterdir():
        if not f.is_symlink():
            f.chmod(0o755)
    return str(bin_dir)


def run(tmp_path: Path, tools: list[str], uid: int = 1000) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(tmp_path, tools, uid), "SEARCHREL_SHARED_DIR": str(tmp_path)}
    bash = shutil.which("bash")
    assert bash
    return subprocess.run([bash, str(SCRIPT)], env=env, capture_output=True, text=True, cwd=REPO)


ALL = ["promtool", "prometheus", "amtool", "prometheus-alertmanager", "kubectl"]


def test_with_every_tool_there_it_passes_quietly(tmp_path: Path) -> None:
    done = run(tmp_path, ALL)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_a_missing_debian_tool_without_root_stops_with_the_command_to_run(tmp_path: Path) -> None:
    done = run(tmp_path, ["promtool", "prometheus", "kubectl"])
    assert done.returncode == 1
    assert "sudo apt-get install -y prometheus-alertmanager" in done.stderr
    (tmp_path / "none").mkdir()
    both = run(tmp_path / "none", ["kubectl"])
    assert both.returncode == 1
    assert "sudo apt-get install -y prometheus prometheus-alertmanager" in both.stderr


def test_a_missing_kubectl_is_named(tmp_path: Path) -> None:
    done = run(tmp_path, ALL[:-1])
    assert done.returncode == 1 and "kubectl" in done.stderr


def test_the_script_is_what_make_test_runs_first() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "test: tools lint" in makefile and ".ci/system-tools" in makefile
    assert os.access(SCRIPT, os.X_OK)
