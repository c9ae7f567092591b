"""The deploy step: promote a student by committing its URI to the GitOps repository.

Argo CD watches the repository; the cluster changes only through a commit. The commit rewrites
one value, the STORAGE_URI in ``<overlay>/model.yaml`` (a JSON patch kustomize applies to the
InferenceService), and says which model, which gate decision and which run made it. Rolling back
is ``git revert <commit>``: Argo CD syncs the previous URI back.

The step refuses to run without a passed gate decision, so a failing gate changes nothing even
if the pipeline's ``dsl.If`` were removed. Pushes race with people: a rejected push is rebased
on the new tip and retried (``deploy.push_attempts``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from searchrel.config import DeployConfig
from searchrel.model_source import OBJECT_STORE_PREFIXES

log = logging.getLogger(__name__)
MODEL_FILE = "model.yaml"
GATE_FILE = "gate.json"  # the gate's decision, which the deploy requires
URI_PATH = "/spec/predictor/containers/0/env/0/value"  # STORAGE_URI of the predictor container
AUTHOR = re.compile(r"^(?P<name>[^<]+?)\s*<(?P<email>[^>]+)>$")


class DeployError(RuntimeError):
    """The deploy could not happen; the message is one line for the user."""


def read_model_uri(model_file: Path) -> str:
    """The URI the overlay serves now."""
    for op in _ops(model_file):
        if op.get("path") == URI_PATH and op.get("op") == "replace":
            return str(op["value"])
    raise DeployError(f"{model_file}: no `replace {URI_PATH}` op")


def write_model_uri(model_file: Path, uri: str) -> bool:
    """Point the overlay at ``uri``, keeping the file's header comment; False when unchanged."""
    ops = _ops(model_file)
    targets = [o for o in ops if o.get("path") == URI_PATH and o.get("op") == "replace"]
    if len(targets) != 1:
        raise DeployError(f"{model_file}: needs exactly one `replace {URI_PATH}` op")
    op = targets[0]
    if op["value"] == uri:
        return False
    op["value"] = uri
    text = model_file.read_text(encoding="utf-8")
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    model_file.write_text(header + yaml.safe_dump(ops, sort_keys=False), encoding="utf-8")
    return True


def _ops(model_file: Path) -> list[dict[str, Any]]:
    if not model_file.is_file():
        raise DeployError(f"{model_file}: no such file (is `overlay` right?)")
    ops = yaml.safe_load(model_file.read_text(encoding="utf-8"))
    if not isinstance(ops, list):
        raise DeployError(f"{model_file}: not a JSON patch (a list of ops)")
    return ops


# A committed URI is read twice: by KServe's storage initializer in the predictor, and by the
# next day's gate (searchrel.model_source.local_model_dir, kserve_storage too) to score the
# served student. Only schemes both read are committed: searchrel.model_source's.
KFP_MINIO_SCHEME = "minio://"  # KFP's default artifact store: S3 objects under another name


def serving_uri(uri: str) -> str:
    """The URI to commit for KServe: KFP's ``minio://bucket/key`` becomes ``s3://bucket/key``
    (the predictor's service account, and the gate task, must then carry the MinIO endpoint
    and credentials: README, Deploys); a scheme KServe or the gate cannot download is refused
    here rather than in a crash-looping pod or tomorrow's gate."""
    if not uri or uri != uri.strip() or any(c in uri for c in "\n\r\t "):
        raise DeployError(f"model URI {uri!r} is empty or has whitespace")
    if uri.startswith(KFP_MINIO_SCHEME):
        converted = "s3://" + uri[len(KFP_MINIO_SCHEME) :]
        log.info("model URI %s committed as %s (KServe reads MinIO through S3)", uri, converted)
        return converted
    if "://" not in uri:
        log.warning("model URI %s is a local path: a cluster cannot read it", uri)
        return uri
    if not uri.startswith(OBJECT_STORE_PREFIXES):
        raise DeployError(
            f"model URI {uri}: {uri.split('://')[0]}:// cannot be downloaded by both KServe and "
            f"the gate (they read {', '.join(OBJECT_STORE_PREFIXES)})"
        )
    return uri


class Git:
    """git in one checkout, with the author and an optional HTTPS token set per command (never
    written to the checkout's config or logged)."""

    def __init__(self, cwd: Path, cfg: DeployConfig):
        match = AUTHOR.match(cfg.author)
        if not match:
            raise DeployError(f"deploy.author {cfg.author!r} is not 'Name <email>'")
        self.cwd = cwd
        name, email = match["name"], match["email"]
        self.base = ["git", "-c", f"user.name={name}", "-c", f"user.email={email}"]
        token = os.environ.get(cfg.token_env, "")
        if token and cfg.repo.startswith("https://"):
            basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
            self.base += ["-c", f"http.extraHeader=Authorization: Basic {basic}"]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.base, *args], cwd=self.cwd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise DeployError(f"git {args[0]} failed: {git_reason(result.stderr)}")
        return result


def served_uri(cfg: DeployConfig, workdir: Path | None = None) -> str:
    """The model URI the overlay serves now, read from the GitOps repository (a shallow clone)."""
    if not cfg.repo:
        raise DeployError("deploy.repo is empty: cannot look up the served model")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        git = Git(Path(tmp), cfg)
        repo = cfg.repo if "://" in cfg.repo else Path(cfg.repo).resolve().as_uri()
        git("clone", "--quiet", "--depth", "1", "--branch", cfg.branch, repo, "gitops")
        return read_model_uri(Path(tmp) / "gitops" / cfg.overlay / MODEL_FILE)


def deploy(
    model_uri: str,
    gate_dir: Path,
    cfg: DeployConfig,
    *,
    run: str = "",
    workdir: Path | None = None,
) -> dict[str, Any]:
    """Commit ``model_uri`` to the overlay and push; returns what was done."""
    if not cfg.repo:
        raise DeployError("deploy.repo is empty: set the GitOps repository in the config")
    gate_file = gate_dir / GATE_FILE if gate_dir.is_dir() else gate_dir
    if not gate_file.is_file():
        raise DeployError(f"no gate decision at {gate_file}: nothing deploys without one")
    decision = json.loads(gate_file.read_text(encoding="utf-8"))
    if not decision.get("passed"):
        return {"deployed": False, "reason": f"gate failed: {decision.get('reason')}"}
    version = decision.get("candidate_version", "")
    if version and version == decision.get("serving_version"):  # same bytes, another path
        return {"deployed": False, "reason": f"{version} is already the served model"}
    model_uri = serving_uri(model_uri)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        checkout = Path(tmp) / "gitops"
        git = Git(Path(tmp), cfg)
        git("clone", "--quiet", "--branch", cfg.branch, cfg.repo, str(checkout))
        git.cwd = checkout
        model_file = checkout / cfg.overlay / MODEL_FILE
        previous = read_model_uri(model_file)
        if not write_model_uri(model_file, model_uri):
            return {"deployed": False, "reason": f"{cfg.overlay} already serves {model_uri}"}
        env = Path(cfg.overlay).name
        message = (
            f"deploy({env}): student {version}\n\n"
            f"{previous}\n  -> {model_uri}\n\n"
            f"gate: {decision.get('reason')}\n" + (f"run: {run}\n" if run else "")
        )
        git("add", str(model_file.relative_to(checkout)))
        git("commit", "--quiet", "-m", message)
        _push(git, cfg)
        sha = git("rev-parse", "HEAD").stdout.strip()
    log.info("deployed %s to %s at %s (%s)", model_uri, cfg.overlay, cfg.repo, sha[:12])
    return {"deployed": True, "commit": sha, "overlay": cfg.overlay, "model_uri": model_uri,
            "previous_uri": previous, "version": version}  # fmt: skip


def git_reason(stderr: str) -> str:
    """git's own reason in one line: the remote's words and the refused ref, not the generic
    "failed to push some refs" that ends every failed push."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    useful = [
        line
        for line in lines
        if line.startswith(("remote:", "!", "fatal:", "error:"))
        and "failed to push some refs" not in line
    ]
    chosen = useful[-3:] or lines[-1:]
    return "; ".join(chosen) if chosen else "(no message)"


# git's words for "the branch moved on": another run pushed first; anything else (403, no such
# branch, a protected branch) is not cured by a rebase.
RACE_MARKERS = ("non-fast-forward", "fetch first", "cannot lock ref", "failed to update ref")


def _push(git: Git, cfg: DeployConfig) -> None:
    for attempt in range(1, cfg.push_attempts + 1):
        result = git("push", "--quiet", "origin", f"HEAD:{cfg.branch}", check=False)
        if result.returncode == 0:
            return
        if not any(marker in result.stderr for marker in RACE_MARKERS):
            raise DeployError(
                f"push to {cfg.repo} {cfg.branch} failed: {git_reason(result.stderr)}"
            )
        if attempt == cfg.push_attempts:
            break
        log.warning("push rejected (attempt %d): rebasing on the new %s", attempt, cfg.branch)
        git("pull", "--quiet", "--rebase", "origin", cfg.branch)
    raise DeployError(f"push to {cfg.repo} {cfg.branch} rejected {cfg.push_attempts} times")
