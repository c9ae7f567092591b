"""The container images: hadolint-clean Dockerfiles that keep the contract the manifests and
pipelines rely on (names from searchrel.images, pinned bases, non-root, the server's CMD)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from searchrel.config import ServeConfig
from searchrel.images import DOCKERFILES

from .tools import REPO, require_tool, run

REQUIREMENTS_SCRIPT = REPO / "images" / "pyproject_requirements.py"


def dockerfile(image: str) -> str:
    return (REPO / DOCKERFILES[image]).read_text(encoding="utf-8")


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]


def pyproject() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_every_image_has_its_dockerfile() -> None:
    assert set(DOCKERFILES) == {"searchrel-python", "searchrel-python-cuda"}
    for path in DOCKERFILES.values():
        assert (REPO / path).is_file(), path


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_is_clean(image: str) -> None:
    hadolint = require_tool("hadolint")
    result = run([hadolint, "--no-color", "--failure-threshold", "style", DOCKERFILES[image]])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_bites(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install torch\n", encoding="utf-8")
    result = run([hadolint, "--no-color", "--failure-threshold", "style", str(bad)])
    assert result.returncode != 0
    for rule in ("DL3006", "DL3013", "DL3042"):  # untagged base, unpinned pip, pip cache
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_base_images_are_pinned(image: str) -> None:
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile(image), flags=re.MULTILINE)
    assert bases
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile(image), flags=re.MULTILINE))
    for base in bases:
        if base in stages:
            continue
        name, _, tag = base.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), base


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_runtime_stage_is_non_root_and_runs_the_server(image: str) -> None:
    stage = final_stage(dockerfile(image))
    (user,) = re.findall(r"^USER (\S+)", stage, flags=re.MULTILINE)
    assert user.split(":")[0] == "10001"
    assert re.findall(r"^EXPOSE (\d+)", stage, flags=re.MULTILINE) == [str(ServeConfig().http_port)]
    (cmd,) = re.findall(r"^CMD (\[.*\])", stage, flags=re.MULTILINE)
    assert cmd == (
        '["python", "-m", "searchrel", "serve", "--model-dir", "/mnt/models", "--host", "0.0.0.0"]'
    )
    assert "PYTHONUNBUFFERED=1" in stage
    # Only the built environment reaches the runtime: no source tree, no build tools.
    copies = re.findall(r"^COPY (.*)", stage, flags=re.MULTILINE)
    assert copies and all(c.startswith("--from=builder /opt/") for c in copies), copies


def test_cpu_image_is_offline_and_gpu_image_may_reach_the_hub() -> None:
    assert re.search(
        r"^\s*HF_HUB_OFFLINE=1\b", final_stage(dockerfile("searchrel-python")), re.MULTILINE
    )
    # The teacher's base model may be a hub id on a cluster (TeacherConfig.base_model).
    assert not re.search(r"^\s*HF_HUB_OFFLINE=", dockerfile("searchrel-python-cuda"), re.MULTILINE)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_torch_pin_satisfies_pyproject(image: str) -> None:
    (pinned,) = re.findall(r"^ARG TORCH_VERSION=(\S+)", dockerfile(image), flags=re.MULTILINE)
    reqs = [Requirement(r) for r in pyproject()["project"]["dependencies"]]
    (torch,) = [r for r in reqs if r.name == "torch"]
    assert torch.specifier.contains(pinned), (pinned, str(torch.specifier))


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_build_context_lets_through_what_the_dockerfile_copies(image: str) -> None:
    path = REPO / DOCKERFILES[image]
    ignore = path.with_name(path.name + ".dockerignore").read_text(encoding="utf-8")
    allowed = [line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")]
    assert "*" in ignore.splitlines(), "the ignore file should be an allow-list"
    sources = []
    for args in re.findall(r"^COPY (?!--from)(.*)", dockerfile(image), flags=re.MULTILINE):
        sources += args.split()[:-1]
    assert sources
    for source in sources:
        source = source.rstrip("/")
        assert any(source == a or source.startswith(a + "/") for a in allowed), source
        assert (REPO / source).exists(), source


def test_requirements_script_reads_dependencies_and_extras() -> None:
    project = pyproject()["project"]
    result = run([sys.executable, str(REQUIREMENTS_SCRIPT), "pyproject.toml", "storage"])
    assert result.returncode == 0, result.stderr
    expected = project["dependencies"] + project["optional-dependencies"]["storage"]
    assert result.stdout.splitlines() == expected
    result = run([sys.executable, str(REQUIREMENTS_SCRIPT), "pyproject.toml", "no-such-extra"])
    assert result.returncode != 0 and "no-such-extra" in result.stderr


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_extras_exist_in_pyproject(image: str) -> None:
    (extras,) = re.findall(r"^ARG EXTRAS=(.*)$", dockerfile(image), flags=re.MULTILINE)
    optional = pyproject()["project"].get("optional-dependencies", {})
    for extra in extras.split():
        assert extra in optional, extra


def test_cpu_image_has_git_for_the_gitops_deploy_step() -> None:
    runtime = final_stage(dockerfile("searchrel-python"))
    assert re.search(r"apt-get install [^\n]*\bgit\b", runtime), "the deploy step runs git"
