"""A teacher made of several trained teachers whose probabilities are averaged.

An ensemble directory holds ``ensemble.json`` (the member directories, relative to it, and the
ensemble's version) and, when ``teacher train`` made it (``teacher.members``), the members under
``members/``. ``load_scorer`` opens a single teacher or an ensemble alike: evaluation, daily
labeling and the benches never need to know which one they hold.

Members must share the relevance levels; they may differ in backbone, fields and budgets (seeds
of one configuration, or teachers trained apart). Members that read the same item text form one
*view*; an ensemble of one view passes that text through unchanged, and one of several views
joins the views' texts with ``VIEW_SEPARATOR`` into one text per item. So the daily job's item
text, and the hash that lets it reuse unchanged pairs, covers everything any member reads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from searchrel.model_source import ModelSourceError
from searchrel.teacher.model import META_FILE, TeacherMeta, TeacherScorer

ENSEMBLE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
# What members must share so that their probabilities can be averaged.
SHARED_META = ("levels",)
# What makes a member's item text: members equal in these read the same text (one view).
VIEW_META = ("fields", "field_max_tokens", "base_model")
# Between the views' texts of one item; clean_text folds it (it is whitespace) out of every field.
VIEW_SEPARATOR = "\x1e"


class EnsembleError(ModelSourceError):
    """Members that cannot form (or no longer form) an ensemble: a teacher source that cannot
    be resolved, so every command reports it as one line for the user."""


def _check_members(metas: Sequence[TeacherMeta], names: Sequence[str]) -> None:
    if len(metas) < 2:
        raise EnsembleError("an ensemble needs at least two teachers")
    for key in SHARED_META:
        values = {name: getattr(m, key) for name, m in zip(names, metas, strict=True)}
        if len({json.dumps(v) for v in values.values()}) > 1:
            raise EnsembleError(f"ensemble members differ in {key}: {values}")


def view_of(meta: TeacherMeta) -> str:
    """The key of the item text a member reads: equal keys, equal texts."""
    return json.dumps([getattr(meta, key) for key in VIEW_META])


def ensemble_version(member_versions: Sequence[str]) -> str:
    digest = hashlib.sha256("\n".join(member_versions).encode()).hexdigest()
    return f"teacher-ensemble-{digest[:12]}"


def write_ensemble(out_dir: Path, members: Sequence[Path]) -> str:
    """Make ``out_dir`` an ensemble of the saved teachers ``members``; returns its version."""
    out_dir.mkdir(parents=True, exist_ok=True)
    missing = [str(m) for m in members if not (m / META_FILE).is_file()]
    if missing:
        raise EnsembleError(f"not a saved teacher (no {META_FILE}): {', '.join(missing)}")
    metas = [TeacherMeta.load(m) for m in members]
    _check_members(metas, [str(m) for m in members])
    root = out_dir.resolve()
    paths = [
        str(m.resolve().relative_to(root)) if m.resolve().is_relative_to(root) else str(m.resolve())
        for m in members
    ]
    version = ensemble_version([m.version for m in metas])
    spec = {"members": paths, "version": version}
    (out_dir / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return version


class EnsembleScorer:
    """The members' mean probabilities; the same interface as ``TeacherScorer``."""

    def __init__(self, directory: str | Path, **scorer_options: Any):
        self.directory = Path(directory)
        spec = json.loads((self.directory / ENSEMBLE_FILE).read_text(encoding="utf-8"))
        self.members = [
            TeacherScorer(self.directory / path, **scorer_options) for path in spec["members"]
        ]
        _check_members([m.meta for m in self.members], spec["members"])
        self.meta = self.members[0].meta  # its levels are every member's
        keys = [view_of(m.meta) for m in self.members]
        views = list(dict.fromkeys(keys))  # distinct, in member order
        self._readers = [self.members[keys.index(v)] for v in views]  # one member per view
        self._view_index = [views.index(k) for k in keys]  # each member's view
        self.device = self.members[0].device
        self._version = ensemble_version([m.version for m in self.members])
        if self._version != spec["version"]:
            raise EnsembleError(f"{self.directory}: a member changed since the ensemble was made")

    @property
    def version(self) -> str:
        return self._version

    def item_texts(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """One view: its text as is. Several: each item's view texts joined, in view order."""
        per_view = [reader.item_texts(items) for reader in self._readers]
        return [VIEW_SEPARATOR.join(texts) for texts in zip(*per_view, strict=True)]

    def _view_texts(self, texts: Sequence[str]) -> list[list[str]]:
        n = len(self._readers)
        split = [t.split(VIEW_SEPARATOR) if n > 1 else [t] for t in texts]
        bad = sum(len(parts) != n for parts in split)
        if bad:
            raise ValueError(f"{bad} item texts do not hold this ensemble's {n} views")
        return [[parts[v] for parts in split] for v in range(n)]

    def predict_proba(
        self,
        queries: Sequence[str],
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Any = None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """The mean of the members' probabilities; progress counts pairs of the whole job."""
        share = len(self.members)
        done = [0.0]

        def member_progress(n: int) -> None:
            done[0] += n / share  # a pair is done when every member scored it
            whole = int(done[0])
            if whole and progress is not None:
                progress(whole)
                done[0] -= whole

        view_texts = self._view_texts(texts)
        total = np.zeros((len(queries), self.meta.levels), dtype=np.float64)
        for member, view in zip(self.members, self._view_index, strict=True):
            total += member.predict_proba(
                queries, view_texts[view], batch_size, member_progress, max_batch_tokens
            )
        if progress is not None and done[0] > 1e-6:
            progress(round(done[0]))
        return (total / share).astype(np.float32)


def load_scorer(directory: str | Path, **scorer_options: Any) -> TeacherScorer | EnsembleScorer:
    """The saved teacher at ``directory``: an ensemble where it holds ``ensemble.json``."""
    if (Path(directory) / ENSEMBLE_FILE).is_file():
        return EnsembleScorer(directory, **scorer_options)
    return TeacherScorer(directory, **scorer_options)
