"""daily_distillation under kfp.local against a real (bare) GitOps repository: the new student
is gated against the one the overlay serves, and only a passed gate commits the deploy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from searchrel.demo_daily import OVERLAY, seed_gitops_repo
from searchrel.gitops import read_model_uri
from searchrel.pipelines.run_local import run_pipeline_local
from tests.conftest import TINY_CONFIG

pytestmark = pytest.mark.slow


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def gitops_repo(local_run: dict, tmp_path: Path) -> Path:
    """The GitOps repository, its dev overlay serving the student of the relevance-loop run."""
    return seed_gitops_repo(tmp_path, Path(local_run["outputs"]["student"]))


def daily(local_run: dict, source: Path, repo: Path, root: Path, gate: dict) -> dict:
    config = root.with_suffix(".yaml")
    settings = yaml.safe_load(TINY_CONFIG.read_text())
    settings["student"]["seed"] = 14  # another seed: the candidate differs from the served one
    settings |= {"gate": gate, "deploy": {"overlay": OVERLAY}}
    config.write_text(yaml.safe_dump(settings))
    teacher = Path(local_run["outputs"]["features"]).parent.parent / "teacher-train" / "teacher"
    params = {"source": str(source), "teacher_uri": str(teacher), "gitops_repo": str(repo)}
    return run_pipeline_local("daily_distillation", params, config, root)


def test_a_passed_gate_commits_the_new_student(
    local_run: dict, tiny_source: Path, gitops_repo: Path, tmp_path: Path
) -> None:
    served = local_run["outputs"]["student"]
    before = git(gitops_repo, "rev-parse", "main")
    opened = daily(local_run, tiny_source, gitops_repo, tmp_path / "opened", {"max_regression": 1})
    root = Path(opened["pipeline_root"])
    (decision,) = root.glob("*/gate-student/report/gate.json")
    gate = json.loads(decision.read_text())
    assert gate["passed"] and gate["serving"] is not None  # compared with what the overlay served
    assert gate["serving_version"] != gate["candidate_version"]
    (student,) = root.glob("*/student-train/student")
    work = tmp_path / "after"
    git(tmp_path, "clone", "--quiet", str(gitops_repo), str(work))
    assert read_model_uri(work / OVERLAY / "model.yaml") == str(student)
    assert git(work, "rev-parse", "HEAD~1") == before
    message = git(work, "log", "-1", "--format=%B")
    assert served in message and gate["candidate_version"] in message
    assert f"run: {student.parent.parent.name}" in message  # the KFP run that made it


def test_the_demos_daily_step_reads_its_own_runs_gate_and_a_closed_gate_changes_nothing(
    local_run: dict, sample_dir: Path, tmp_path: Path
) -> None:
    """`make demo` twice on one machine: the second daily run must not pick up (or trip over)
    the first run's gate report in the same output directory. Its gate is closed here
    (gate.min_queries out of reach): no deploy task runs and the repository keeps its commit."""
    from searchrel.demo_daily import run_daily

    earlier = tmp_path / "daily" / "searchrel-daily-distillation-earlier"
    (earlier / "gate-student" / "report").mkdir(parents=True)
    report = earlier / "gate-student" / "report" / "gate.json"
    report.write_text(json.dumps({"passed": True, "reason": "an earlier run"}))
    teacher = Path(local_run["outputs"]["features"]).parent.parent / "teacher-train" / "teacher"
    served = Path(local_run["outputs"]["student"])
    closed = tmp_path / "closed.yaml"
    closed.write_text(TINY_CONFIG.read_text() + "gate:\n  min_queries: 100000\n")
    result = run_daily(tmp_path, closed, sample_dir, teacher, served)
    assert result["gate"]["reason"] != "an earlier run"
    assert result["gate"]["passed"] is False and "min_queries" in result["gate"]["reason"]
    assert "candidate_version" not in result["gate"]  # closed before anything was scored
    assert not list(Path(result["pipeline_root"]).glob("*/deploy-student"))
    assert not result["deployed"] and result["commit"] is None
    assert result["served_uri"] == result["served_uri_before"] == str(served)
