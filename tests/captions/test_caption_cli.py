"""`searchrel caption` and the KFP component: the same job through the command line and through
`python -m searchrel caption`; a user's mistake is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from searchrel.cli import main
from searchrel.tables import read_table
from tests.captions.helpers import MAX_BYTES, Images, item, items_table


def write_items(images: Images, path: Path) -> Path:
    rows = [item("c-1", str(images.chelsea_jpg)), item("c-2", str(images.missing))]
    pq.write_table(items_table(rows), path)
    return path


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_searchrel_caption_writes_the_four_outputs_under_out(
    images: Images, tiny_blip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = write_items(images, tmp_path / "items.parquet")
    code, out, err = cli(
        "caption", "--items", str(items), "--out", str(tmp_path / "out"),
        "--model", str(tiny_blip), "--cache-dir", str(tmp_path / "cache"), "--batch-size", "4",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["statuses"] == {"failed": 1, "generated": 1}
    assert summary["failure_reasons"] == {"not_found": 1}
    assert json.loads((tmp_path / "out" / "caption_summary.json").read_text()) == summary
    for name, kind in [("items", "items"), ("captions", "captions"),
                       ("caption_failures", "caption_failures")]:  # fmt: skip
        assert read_table(tmp_path / "out" / f"{name}.parquet", kind).rows_out >= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "OUT", "--backend", "clip"], "captions.backend"),
        (["--items-out", "x.parquet"], "give --out DIR"),
        (["--out", "OUT", "--model", "./no/such/blip"], "model directory not found"),
    ],
)
def test_a_user_mistake_is_one_line(
    args: list[str],
    message: str,
    images: Images,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    items = write_items(images, tmp_path / "items.parquet")
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    code, _, err = cli("caption", "--items", str(items), "--cache-dir", "", *args, capsys=capsys)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_a_missing_items_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(
        "caption", "--items", str(tmp_path / "nope.parquet"), "--out", str(tmp_path),
        capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "no such file" in err and "Traceback" not in err


def test_the_kfp_component_runs_the_job_as_python_m(
    images: Images, tiny_blip: Path, tmp_path: Path
) -> None:
    from searchrel.components.captions import caption_items

    items = write_items(images, tmp_path / "items.parquet")
    config_yaml = f"captions:\n  model: {tiny_blip}\n  max_image_bytes: {MAX_BYTES}\n"

    def artifact(name: str) -> SimpleNamespace:
        return SimpleNamespace(path=str(tmp_path / "artifacts" / name))

    outs = {n: artifact(n) for n in ("captioned_items", "captions", "failures", "summary")}
    caption_items(
        items=SimpleNamespace(path=str(items)),  # type: ignore[arg-type]
        config_yaml=config_yaml,
        cache_dir=str(tmp_path / "pvc"),
        **outs,  # type: ignore[arg-type]
    )
    got = read_table(outs["captioned_items"].path, "items").table.to_pylist()
    assert got[0]["caption"] and got[1]["caption"] is None
    failures = read_table(outs["failures"].path, "caption_failures").table.to_pylist()
    assert failures == [{"item_id": "c-2", "image_uri": str(images.missing), "reason": "not_found"}]
    assert json.loads(Path(outs["summary"].path).read_text())["cache"]["written"] == 1
    assert list((tmp_path / "pvc").glob("captions-*.parquet"))


def test_the_component_compiles_with_its_inputs_and_outputs() -> None:
    from kfp import dsl

    from searchrel.components.captions import caption_items

    spec = dsl.component(caption_items, base_image="searchrel:test").component_spec
    assert set(spec.inputs) == {"items", "config_yaml", "cache_dir"}
    assert set(spec.outputs) == {"captioned_items", "captions", "failures", "summary"}
