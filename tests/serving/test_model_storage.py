"""A bundle named by URI is fetched by kserve's storage module (as KServe's storage
initializer does) and served: here over HTTP from 127.0.0.1, a tarball as a release would be."""

from __future__ import annotations

import functools
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from searchrel.demo import stop_server
from searchrel.model_source import ModelSourceError, local_model_dir
from tests.serving.conftest import RunningServer, start_student_server
from tests.serving.test_server_protocols import V1

pytestmark = pytest.mark.slow


@pytest.fixture
def bundle_url(local_run: dict, tmp_path: Path) -> Iterator[str]:
    """The student bundle as student.tar.gz on a loopback HTTP server: its URL."""
    student, www = Path(local_run["outputs"]["student"]), tmp_path / "www"
    www.mkdir()
    with tarfile.open(www / "student.tar.gz", "w:gz") as tar:
        for path in sorted(student.iterdir()):
            tar.add(path, arcname=path.name)
    (www / "README").write_text("not a model\n")
    with tarfile.open(www / "other.tar.gz", "w:gz") as tar:
        tar.add(www / "README", arcname="README")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(www))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/student.tar.gz"
    httpd.shutdown()
    httpd.server_close()


def test_a_bundle_fetched_by_kserve_storage_from_a_uri_is_served(
    bundle_url: str, server: RunningServer, tmp_path: Path
) -> None:
    local = local_model_dir(bundle_url, tmp_path / "download")
    assert (local / "student.json").is_file() and (local / "item_store").is_dir()
    workdir = tmp_path / "cwd"  # the server downloads to ./.model-cache/student
    workdir.mkdir()
    base, proc = start_student_server(bundle_url, cwd=workdir, log_file=tmp_path / "log")
    try:
        body = {"instances": [{"query": "red vase", "item_ids": server.item_ids[:3]}]}
        fetched = httpx.post(base + V1, json=body)
        served = httpx.post(server.base + V1, json=body)
    finally:
        assert stop_server(proc) == 0
    assert (workdir / ".model-cache" / "student" / "student.json").is_file()
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["predictions"][0]["scores"] == served.json()["predictions"][0]["scores"]


def test_a_uri_that_holds_no_bundle_is_refused_with_a_clear_error(
    bundle_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelSourceError, match="not a student bundle"):
        local_model_dir(bundle_url.replace("student.tar.gz", "other.tar.gz"), tmp_path / "dl")
