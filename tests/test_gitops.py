"""The GitOps deploy step against a real local bare repository: a passed gate commits the new
model URI (and the overlay builds with it), a failed gate changes nothing, a rejected push is
retried, and `git revert` rolls back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from searchrel.config import DeployConfig
from searchrel.gitops import (
    MODEL_FILE,
    DeployError,
    deploy,
    read_model_uri,
    served_uri,
    write_model_uri,
)

REPO = Path(__file__).resolve().parents[1]
OVERLAY = "manifests/overlays/prod"
NEW_URI = "s3://searchrel-models/student/student-0123456789ab"


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture
def gitops_repo(tmp_path: Path) -> Path:
    """A bare repository holding this checkout's manifests/, as a GitOps repo would."""
    bare = tmp_path / "gitops.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "--quiet", str(bare), str(seed))
    shutil.copytree(REPO / "manifests", seed / "manifests")
    git(seed, "add", "manifests")
    git(seed, "commit", "--quiet", "-m", "manifests")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    return bare


def gate_file(tmp_path: Path, passed: bool) -> Path:
    path = tmp_path / "gate" / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"passed": passed, "candidate_version": "student-0123456789ab",
                                "reason": "ndcg_at_20 0.81 vs serving 0.79 (+0.02)"}))  # fmt: skip
    return path


def head(bare: Path) -> str:
    return git(bare, "rev-parse", "main")


def checkout(bare: Path, where: Path) -> Path:
    git(where.parent, "clone", "--quiet", str(bare), str(where))
    return where


def test_a_passed_gate_commits_the_new_uri_and_the_overlay_builds_with_it(
    gitops_repo: Path, tmp_path: Path
) -> None:
    before = head(gitops_repo)
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    result = deploy(NEW_URI, gate_file(tmp_path, True), cfg, run="daily-2026-11-26")
    assert result["deployed"] and result["commit"] == head(gitops_repo) != before
    assert result["previous_uri"] == "s3://searchrel-models/student/0.1.0"

    work = checkout(gitops_repo, tmp_path / "after")
    assert read_model_uri(work / OVERLAY / MODEL_FILE) == NEW_URI
    assert git(work, "diff", "--name-only", before, "HEAD") == f"{OVERLAY}/{MODEL_FILE}"
    message = git(work, "log", "-1", "--format=%B")
    assert "student-0123456789ab" in message and "daily-2026-11-26" in message
    assert "ndcg_at_20" in message  # the gate's reason travels with the change
    assert git(work, "log", "-1", "--format=%an") == "searchrel-pipeline"
    kubectl = shutil.which("kubectl")
    if kubectl:  # what Argo CD would render
        built = subprocess.run([kubectl, "kustomize", str(work / OVERLAY)], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        (isvc,) = [d for d in yaml.safe_load_all(built) if d and d["kind"] == "InferenceService"]
        env = isvc["spec"]["predictor"]["containers"][0]["env"]
        assert {"name": "STORAGE_URI", "value": NEW_URI} in env


def test_a_failed_gate_changes_nothing(gitops_repo: Path, tmp_path: Path) -> None:
    before = head(gitops_repo)
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    result = deploy(NEW_URI, gate_file(tmp_path, False), cfg)
    assert result == {"deployed": False, "reason": "gate failed: ndcg_at_20 0.81 vs serving "
                      "0.79 (+0.02)"}  # fmt: skip
    assert head(gitops_repo) == before


def test_no_gate_decision_means_no_deploy_and_one_line_for_the_user(
    gitops_repo: Path, tmp_path: Path
) -> None:
    before = head(gitops_repo)
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "deploy", "--model-uri", NEW_URI,
         "--gate", str(tmp_path / "nowhere"), "--repo", str(gitops_repo), "--overlay", OVERLAY],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no gate decision" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert head(gitops_repo) == before


def test_the_cli_deploys_and_git_revert_rolls_back(gitops_repo: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "searchrel", "deploy", "--model-uri", NEW_URI,
         "--gate", str(gate_file(tmp_path, True).parent), "--repo", str(gitops_repo),
         "--overlay", OVERLAY],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    commit = json.loads(proc.stdout)["commit"]
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    assert served_uri(cfg) == NEW_URI
    work = checkout(gitops_repo, tmp_path / "rollback")  # the documented rollback
    git(work, "revert", "--no-edit", commit)
    git(work, "push", "--quiet", "origin", "HEAD:main")
    assert served_uri(cfg) == "s3://searchrel-models/student/0.1.0"


def test_redeploying_the_served_model_makes_no_commit(gitops_repo: Path, tmp_path: Path) -> None:
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    deploy(NEW_URI, gate_file(tmp_path, True), cfg)
    after_first = head(gitops_repo)
    again = deploy(NEW_URI, gate_file(tmp_path, True), cfg)
    assert again["deployed"] is False and "already serves" in again["reason"]
    assert head(gitops_repo) == after_first


def test_a_rejected_push_is_rebased_on_the_new_tip_and_retried(
    gitops_repo: Path, tmp_path: Path
) -> None:
    other = checkout(gitops_repo, tmp_path / "other")
    (other / "README.md").write_text("someone else's change\n")
    git(other, "add", "README.md")
    git(other, "commit", "--quiet", "-m", "unrelated")
    git(other, "push", "--quiet", "origin", "HEAD:refs/heads/colleague")
    colleague = git(other, "rev-parse", "HEAD")
    marker = tmp_path / "raced-once"
    # While our first push is being received, the colleague's commit lands on main (outside
    # the hook's quarantine), so the server cannot move main from the tip we pushed onto:
    # "cannot lock ref", exactly a race between two pushes.
    hook = gitops_repo / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; '
        "env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES "
        f"git update-ref refs/heads/main {colleague}; fi\n"
    )
    hook.chmod(0o755)
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY, push_attempts=3)
    result = deploy(NEW_URI, gate_file(tmp_path, True), cfg)
    assert result["deployed"] and marker.exists()
    work = checkout(gitops_repo, tmp_path / "after")
    assert git(work, "rev-parse", "HEAD~1") == colleague  # ours rebased on top of theirs
    assert (work / "README.md").read_text() == "someone else's change\n"
    assert read_model_uri(work / OVERLAY / MODEL_FILE) == NEW_URI


def test_pushes_that_keep_losing_the_race_raise_after_the_configured_attempts(
    gitops_repo: Path, tmp_path: Path
) -> None:
    hook = gitops_repo / "hooks" / "pre-receive"
    # Every push loses: someone else's commit lands on main while ours is being received.
    hook.write_text(
        "#!/bin/sh\n"
        "unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n"
        "tip=$(git rev-parse refs/heads/main)\n"
        "new=$(git -c user.name=o -c user.email=o@example.com commit-tree -p $tip -m again "
        "$tip^{tree})\n"
        "git update-ref refs/heads/main $new\n"
    )
    hook.chmod(0o755)
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY, push_attempts=2)
    with pytest.raises(DeployError, match="rejected 2 times"):
        deploy(NEW_URI, gate_file(tmp_path, True), cfg)
    work = checkout(gitops_repo, tmp_path / "after")
    assert read_model_uri(work / OVERLAY / MODEL_FILE) != NEW_URI


def test_a_push_refused_for_another_reason_fails_at_once_with_gits_words(
    gitops_repo: Path, tmp_path: Path
) -> None:
    """A protected branch or a bad token is not cured by rebasing: no retries, git's reason."""
    count = tmp_path / "pushes"
    hook = gitops_repo / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\necho x >> '{count}'\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = head(gitops_repo)
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY, push_attempts=3)
    with pytest.raises(DeployError, match=r"failed: .*pre-receive hook declined"):
        deploy(NEW_URI, gate_file(tmp_path, True), cfg)
    assert head(gitops_repo) == before
    assert count.read_text().count("x") == 1


def test_kfps_minio_uris_are_committed_as_s3_and_undownloadable_schemes_refused(
    gitops_repo: Path, tmp_path: Path
) -> None:
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    minio = "minio://mlpipeline/v2/artifacts/daily/run-1/student-train/student"
    result = deploy(minio, gate_file(tmp_path, True), cfg)
    assert result["model_uri"] == "s3://mlpipeline/v2/artifacts/daily/run-1/student-train/student"
    work = checkout(gitops_repo, tmp_path / "after")
    assert read_model_uri(work / OVERLAY / MODEL_FILE) == result["model_uri"]
    before = head(gitops_repo)
    with pytest.raises(DeployError, match="ftp:// cannot be downloaded by both KServe and"):
        deploy("ftp://host/student", gate_file(tmp_path, True), cfg)
    # KServe reads pvc://, but tomorrow's gate could not read it back to score it
    with pytest.raises(DeployError, match="pvc:// cannot be downloaded"):
        deploy("pvc://models/student", gate_file(tmp_path, True), cfg)
    assert head(gitops_repo) == before


def test_write_model_uri_keeps_the_header_and_the_test_op(tmp_path: Path) -> None:
    model = tmp_path / MODEL_FILE
    shutil.copy(REPO / OVERLAY / MODEL_FILE, model)
    assert write_model_uri(model, NEW_URI)
    text = model.read_text()
    assert text.startswith("# The model this environment serves.")
    ops = yaml.safe_load(text)
    assert ops[0] == {"op": "test", "path": "/spec/predictor/containers/0/env/0/name",
                      "value": "STORAGE_URI"}  # fmt: skip
    assert not write_model_uri(model, NEW_URI)


@pytest.mark.parametrize("bad", ["", " s3://x", "s3://a b"])
def test_a_malformed_uri_is_refused(gitops_repo: Path, tmp_path: Path, bad: str) -> None:
    cfg = DeployConfig(repo=str(gitops_repo), overlay=OVERLAY)
    with pytest.raises(DeployError, match="whitespace"):
        deploy(bad, gate_file(tmp_path, True), cfg)


def test_a_candidate_identical_to_the_served_model_is_not_redeployed(
    gitops_repo: Path, tmp_path: Path
) -> None:
    gate = gate_file(tmp_path, True)
    decision = json.loads(gate.read_text())
    gate.write_text(json.dumps({**decision, "serving_version": decision["candidate_version"]}))
    before = head(gitops_repo)
    result = deploy(NEW_URI, gate, DeployConfig(repo=str(gitops_repo), overlay=OVERLAY))
    assert result == {
        "deployed": False,
        "reason": "student-0123456789ab is already the served model",
    }
    assert head(gitops_repo) == before
