"""The demo's daily run: the last day's impressions through daily_distillation (kfp.local), its
gate against the student being served, and its deploy as a commit to a GitOps repository.

The GitOps repository is a bare git repository under the demo's output, holding this checkout's
manifests/ with the dev overlay serving the relevance loop's student, as Argo CD would see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from searchrel.checkout import checkout_path
from searchrel.config import DeployConfig
from searchrel.gitops import MODEL_FILE, served_uri, write_model_uri

if TYPE_CHECKING:
    from searchrel.demo_console import StepConsole

OVERLAY = "manifests/overlays/dev"


def _git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=searchrel-demo", "-c", "user.email=demo@localhost", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def seed_gitops_repo(out: Path, served_student: Path) -> Path:
    """A bare repository with manifests/, the dev overlay serving ``served_student``."""
    bare, seed = out / "gitops.git", out / "gitops-seed"
    for old in (bare, seed):
        shutil.rmtree(old, ignore_errors=True)
    _git(out, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    _git(out, "clone", "--quiet", str(bare), str(seed))
    shutil.copytree(checkout_path("manifests"), seed / "manifests")
    write_model_uri(seed / OVERLAY / MODEL_FILE, str(served_student))
    _git(seed, "add", "manifests")
    _git(seed, "commit", "--quiet", "-m", "serve the relevance loop's student")
    _git(seed, "push", "--quiet", "origin", "HEAD:main")
    shutil.rmtree(seed)
    return bare


def last_day_source(sample_dir: Path, out: Path) -> Path:
    """The sample's items and judgments with only its last day of impressions: a daily run."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("items", "judgments"):
        shutil.copy(sample_dir / f"{name}.parquet", out / f"{name}.parquet")
    impressions = pq.read_table(sample_dir / "impressions.parquet")
    last = pc.max(impressions.column("date"))
    day = impressions.filter(pc.equal(impressions.column("date"), last))
    pq.write_table(day, out / "impressions.parquet")
    return out


def run_daily(
    out: Path,
    config: Path,
    sample_dir: Path,
    teacher: Path,
    served_student: Path,
    steps: StepConsole | None = None,
) -> dict[str, Any]:
    from searchrel.pipelines.run_local import run_pipeline_local

    step: AbstractContextManager[dict[str, str]] = (
        steps.step("GitOps repository") if steps else nullcontext({})
    )
    with step as seeded:
        repo = seed_gitops_repo(out, served_student)
        seeded["figure"] = f"{repo}: {OVERLAY} serves the loop's student"
    deploy_cfg = DeployConfig(repo=str(repo), overlay=OVERLAY)
    served_before = served_uri(deploy_cfg)
    settings = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    settings["deploy"] = {**settings.get("deploy", {}), "overlay": OVERLAY}
    daily_config = out / "daily_config.yaml"
    daily_config.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    before = _git(repo, "rev-parse", "main")
    params = {
        "source": str(last_day_source(sample_dir, out / "daily_source")),
        "teacher_uri": str(teacher),
        "gitops_repo": str(repo),
    }
    root = out / "daily"
    earlier = set(root.glob("*")) if root.is_dir() else set()  # runs of an earlier `make demo`
    run = run_pipeline_local("daily_distillation", params, daily_config, root)
    (gate_file,) = (p for p in root.glob("*/gate-student/report/gate.json")
                    if p.parents[2] not in earlier)  # fmt: skip
    gate = json.loads(gate_file.read_text(encoding="utf-8"))
    after = _git(repo, "rev-parse", "main")
    return {
        "gate": gate,
        "deployed": after != before,
        "commit": _git(repo, "log", "-1", "--format=%h %s", "main") if after != before else None,
        "served_uri_before": served_before,
        "served_uri": served_uri(deploy_cfg),
        "gitops_repo": str(repo),
        "seconds": run["seconds"],
        "pipeline_root": run["pipeline_root"],
    }
