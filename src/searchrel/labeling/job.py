"""Daily batch labeling: soft labels for every distinct logged pair, sharded and resumable.

One impressions partition (a date) is deduplicated to distinct (query, locale, item) pairs,
split into shards by hash (``searchrel.labeling.shards``) and labeled shard by shard. Output:

    OUT/date=YYYY-MM-DD/shard-00003-of-00008.parquet   teacher_labels rows (the contract)
    OUT/date=YYYY-MM-DD/shard-00003-of-00008.json      the shard's record, written last
    OUT/date=YYYY-MM-DD/shard-00003-of-00008.failed.parquet   pairs a remote judge failed on
    OUT/date=YYYY-MM-DD/_manifest.json                 all records; complete or not

A rerun skips recorded shards, redoes unrecorded ones and, in shards with failures, labels
only the failed pairs. Each row carries the sha256 of the exact text the teacher read: a pair
whose text and teacher are unchanged since an earlier run (``previous`` label directories) is
copied, not relabeled; a changed item is relabeled.

Backends (``searchrel.labeling.labeler.Labeler``): the fine-tuned teacher
(``teacher_labeler.TeacherLabeler``) or a served LLM judge (``judge.RemoteJudge``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from searchrel.atomic_files import remove_temporaries, write_parquet_atomic
from searchrel.config import Config
from searchrel.data.impression_pairs import distinct_pairs
from searchrel.item_join import join_items
from searchrel.labeling import shards as sh
from searchrel.labeling.judge import RemoteJudge
from searchrel.labeling.labeler import Labeler, Progress
from searchrel.labeling.teacher_labeler import TeacherLabeler
from searchrel.model_source import is_uri
from searchrel.schema import LABEL_FAILURES, TEACHER_LABELS
from searchrel.scores import expected_score
from searchrel.tables import ContractError, read_table, validate, write_quarantine

log = logging.getLogger(__name__)


@dataclass
class PartitionResult:
    date: str
    pairs: int
    records: list[sh.ShardRecord] = field(default_factory=list)  # every wanted shard's
    ran: list[sh.ShardRecord] = field(default_factory=list)  # the shards labeled in this run
    skipped: int = 0  # shards already recorded as complete by an earlier run
    complete: bool = False  # every shard of the date recorded, none with failures
    temporaries_removed: int = 0


LabelKey = tuple[str, str, str, str, str]  # query, locale, item_id, input_hash, teacher version


def load_previous(paths: Sequence[Path], levels: int) -> dict[LabelKey, list[float]]:
    """Earlier labels by (pair, input text, teacher): what may be copied instead of relabeled."""
    cache: dict[LabelKey, list[float]] = {}
    for path in paths:
        if is_uri(path):
            raise ContractError(
                f"previous labels {str(path).replace(':/', '://', 1)}: a URI; the labeler reads "
                "a local path (a volume mounted in the task, e.g. a PVC)"
            )
        cache.update(labels_by_key(read_table(path, "teacher_labels", levels).table))
    return cache


def labels_by_key(table: pa.Table) -> dict[LabelKey, list[float]]:
    """teacher_labels rows as {(pair, input hash, teacher version): probabilities}."""
    return {
        (r["query"], r["locale"], r["item_id"], r["input_hash"], r["teacher_version"]): r["probs"]
        for r in table.to_pylist()
    }


def label_partition(
    labeler: Labeler,
    pairs: list[dict[str, Any]],
    items: Sequence[Mapping[str, Any]],
    date: dt.date,
    out_dir: Path,
    n_shards: int,
    only_shards: Sequence[int] | None = None,
    previous: Mapping[LabelKey, list[float]] | None = None,
) -> PartitionResult:
    """Label one date's distinct pairs (``items[i]`` is the item of ``pairs[i]``) by shard."""
    pdir = sh.partition_dir(out_dir, date)
    result = PartitionResult(date.isoformat(), len(pairs))
    clash = sh.other_shard_counts(pdir, n_shards) if pdir.exists() else set()
    if clash:
        raise ContractError(
            f"{pdir} holds shards of a run with {sorted(clash)} shards, not {n_shards}: "
            "use the same --shards or a new output directory"
        )
    result.temporaries_removed = remove_temporaries(pdir)
    by_shard: dict[int, list[int]] = {k: [] for k in range(n_shards)}
    for i, p in enumerate(pairs):
        by_shard[sh.shard_of(p["query"], p["locale"], p["item_id"], n_shards)].append(i)
    wanted = sorted(set(only_shards)) if only_shards is not None else list(range(n_shards))
    todo: list[tuple[int, sh.ShardRecord | None]] = []
    for k in wanted:
        if not 0 <= k < n_shards:
            raise ContractError(f"shard {k} is not in 0..{n_shards - 1}")
        record = sh.read_record(pdir, k, n_shards)
        if record and record.complete and record.teacher_version == labeler.version:
            result.records.append(record)
            result.skipped += 1
        else:
            todo.append((k, record))
    total = sum(len(by_shard[k]) for k, _ in todo)
    with tqdm(total=total, desc=f"labeling {date}", unit="pair", dynamic_ncols=True) as bar:
        for k, record in todo:
            bar.set_postfix_str(f"shard {k + 1}/{n_shards}")
            idx = by_shard[k]
            carried = _carried_labels(pdir, k, n_shards, record, labeler)
            record = _label_shard(labeler, [pairs[i] for i in idx], [items[i] for i in idx],
                                  date, pdir, k, n_shards, {**(previous or {}), **carried},
                                  bar.update)  # fmt: skip
            result.records.append(record)
            result.ran.append(record)
    # Shards this call did not handle (another task's, in a fan-out) are read from their records.
    known = {r.shard: r for r in result.records}
    records = [known.get(k) or sh.read_record(pdir, k, n_shards) for k in range(n_shards)]
    if all(r is not None for r in records):
        result.complete = sh.write_manifest(pdir, [r for r in records if r is not None])["complete"]
    return result


def _carried_labels(
    pdir: Path, k: int, n: int, record: sh.ShardRecord | None, labeler: Labeler
) -> dict[LabelKey, list[float]]:
    """Rows of a recorded shard with failures: kept, so only the failed pairs are retried."""
    if record is None or record.teacher_version != labeler.version:
        return {}
    return labels_by_key(
        read_table(sh.data_path(pdir, k, n), "teacher_labels", labeler.levels).table
    )


def _label_shard(
    labeler: Labeler,
    pairs: list[dict[str, Any]],
    items: list[Mapping[str, Any]],
    date: dt.date,
    pdir: Path,
    k: int,
    n_shards: int,
    cache: Mapping[LabelKey, list[float]],
    progress: Progress,
) -> sh.ShardRecord:
    started = time.perf_counter()
    order = sorted(range(len(pairs)), key=lambda i: _pair_key(pairs[i]))  # stable file order
    pairs, items = [pairs[i] for i in order], [items[i] for i in order]
    texts = labeler.item_texts(items)
    queries = [p["query"] for p in pairs]
    hashes = [sh.input_hash(labeler.input_text(q, t)) for q, t in zip(queries, texts, strict=True)]
    keys = [(*_pair_key(p), h, labeler.version) for p, h in zip(pairs, hashes, strict=True)]
    probs = np.full((len(pairs), labeler.levels), np.nan, dtype=np.float64)
    reused = [i for i, key in enumerate(keys) if key in cache]
    for i in reused:
        probs[i] = cache[keys[i]]
    progress(len(reused))
    fresh = [i for i, key in enumerate(keys) if key not in cache]
    failures: list[str | None] = [None] * len(pairs)
    attempts = [0] * len(pairs)
    if fresh:
        outcome = labeler.label([queries[i] for i in fresh], [texts[i] for i in fresh], progress)
        for j, i in enumerate(fresh):
            probs[i] = outcome.probs[j]
            failures[i] = outcome.failures[j]
            attempts[i] = outcome.attempts[j]
    ok = [i for i in range(len(pairs)) if failures[i] is None]
    bad = [i for i in range(len(pairs)) if failures[i] is not None]
    good = probs[ok].astype(np.float32)
    labels = pa.table(
        {
            "date": pa.array([date] * len(ok), pa.date32()),
            "query": [queries[i] for i in ok],
            "locale": [pairs[i]["locale"] for i in ok],
            "item_id": [pairs[i]["item_id"] for i in ok],
            "probs": pa.array([row.tolist() for row in good], pa.list_(pa.float32())),
            "label": pa.array((good.argmax(axis=1) + 1) if ok else [], pa.int8()),
            "expected_score": pa.array(expected_score(good) if ok else [], pa.float32()),
            "teacher_version": [labeler.version] * len(ok),
            "input_hash": [hashes[i] for i in ok],
        },
        schema=TEACHER_LABELS,
    )
    checked = validate(labels, "teacher_labels", labeler.levels)
    if checked.quarantine.num_rows:  # our own output: a bad row here is a bug
        raise ContractError(f"teacher_labels: labeler produced bad rows: {checked.reasons}")
    digest = write_parquet_atomic(checked.table, sh.data_path(pdir, k, n_shards))
    failed_path = sh.failures_path(pdir, k, n_shards)
    if bad:
        write_parquet_atomic(
            pa.table(
                {
                    "date": pa.array([date] * len(bad), pa.date32()),
                    "query": [queries[i] for i in bad],
                    "locale": [pairs[i]["locale"] for i in bad],
                    "item_id": [pairs[i]["item_id"] for i in bad],
                    "input_hash": [hashes[i] for i in bad],
                    "reason": [str(failures[i]) for i in bad],
                    "attempts": pa.array([attempts[i] for i in bad], pa.int32()),
                },
                schema=LABEL_FAILURES,
            ),
            failed_path,
        )
    else:
        failed_path.unlink(missing_ok=True)
    record = sh.ShardRecord(
        shard=k,
        n_shards=n_shards,
        date=date.isoformat(),
        teacher_version=labeler.version,
        rows=len(ok),
        failed=len(bad),
        labeled_now=len(fresh) - len(bad),
        reused=len(reused),
        sha256=digest,
        seconds=round(time.perf_counter() - started, 3),
    )
    sh.write_record(pdir, record)  # last: from here on the shard counts as done
    return record


def _pair_key(p: Mapping[str, Any]) -> tuple[str, str, str]:
    return (p["query"], p["locale"], p["item_id"])


def make_labeler(teacher_dir: Path | None, cfg: Config) -> Labeler:
    if cfg.label.backend == "judge":
        return RemoteJudge(cfg.judge, cfg.data.levels)
    if teacher_dir is None:
        raise ContractError("label: --teacher is needed unless label.backend is judge")
    return TeacherLabeler(teacher_dir, cfg)


def label_impressions(
    teacher_dir: Path | None,
    items_path: Path,
    impressions_path: Path,
    out_dir: Path,
    cfg: Config,
    date: str | None = None,
    shards: Sequence[int] | None = None,
    previous: Sequence[Path] = (),
    labeler: Labeler | None = None,
) -> dict[str, Any]:
    """Label each date partition of the impressions (or only ``date``); see the module doc."""
    started = time.perf_counter()
    labeler = labeler or make_labeler(teacher_dir, cfg)
    items = read_table(items_path, "items")
    impressions = read_table(impressions_path, "impressions")
    table = impressions.table
    dates = sorted(set(table.column("date").to_pylist()))
    if date is not None:
        wanted = dt.date.fromisoformat(date)
        if wanted not in dates:
            raise ContractError(f"impressions: no rows on {date} (dates: {_span(dates)})")
        dates = [wanted]
    cache = load_previous(previous, labeler.levels) if previous else {}
    n_shards = cfg.label.shards
    partitions, unknown = [], 0
    quarantine = [q for q in (items.quarantine, impressions.quarantine) if q.num_rows]
    for day in dates:
        day_rows = table.filter(pc.equal(table.column("date"), pa.scalar(day, pa.date32())))
        joined = join_items(distinct_pairs(day_rows), items.table, "impressions")
        unknown += joined.quarantine.num_rows
        if joined.quarantine.num_rows:
            quarantine.append(joined.quarantine)
        part = label_partition(labeler, joined.pairs.to_pylist(), joined.items, day, out_dir,
                               n_shards, shards, cache)  # fmt: skip
        partitions.append(part)
    if quarantine:
        write_quarantine(pa.concat_tables(quarantine), out_dir / "label_quarantine.parquet")
    records = [r for p in partitions for r in p.records]
    ran = [r for p in partitions for r in p.ran]
    seconds = time.perf_counter() - started
    labeled_now = sum(r.labeled_now for r in ran)
    label_counts = _label_counts(out_dir, [p.date for p in partitions])
    return {
        "stage": "label",
        "backend": cfg.label.backend,
        "teacher_version": labeler.version,
        "dates": [p.date for p in partitions],
        "impression_rows": impressions.rows_in,
        "pairs": sum(p.pairs for p in partitions),
        "shards": n_shards,
        "shards_done_earlier": sum(p.skipped for p in partitions),
        "shards_labeled": len(ran),
        "labeled": sum(r.rows for r in records),
        "labeled_now": labeled_now,
        "reused": sum(r.reused for r in ran),
        "failed": sum(r.failed for r in records),
        "complete": all(p.complete for p in partitions),
        "unknown_items": unknown,
        "temporaries_removed": sum(p.temporaries_removed for p in partitions),
        "quarantined": {"items": items.summary(), "impressions": impressions.summary()},
        "label_counts": label_counts,
        "pairs_per_second": round(labeled_now / seconds, 1) if seconds and labeled_now else None,
        "seconds": round(seconds, 2),
    }  # fmt: skip


def _d(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _span(dates: list[dt.date]) -> str:
    return f"{dates[0]}..{dates[-1]}" if dates else "none"


def _label_counts(out_dir: Path, dates: list[str]) -> dict[str, int]:
    import pyarrow.parquet as pq

    counts: dict[str, int] = {}
    for day in dates:
        for f in sorted(sh.partition_dir(out_dir, _d(day)).glob("shard-*-of-*.parquet")):
            if f.name.endswith(".failed.parquet"):
                continue
            for value in pq.read_table(f, columns=["label"]).column("label").to_pylist():
                counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))
