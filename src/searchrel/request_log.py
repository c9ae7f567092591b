"""The sampled request log: what the server served, one row per (request, item).

The server writes it (``RequestLogger``) and the drift job reads it back
(``read_request_log``). A row has the columns of ``schema.REQUEST_LOG``: ``ts``, ``request_id``,
``query``, ``locale``, ``item_id``, ``query_embedding``, every scalar feature of
``schema.SCALAR_FEATURES``, the served ``probs`` and ``expected_score``, and ``model_version``.

Locally the log is a directory of JSON Lines files, one row per line, ``ts`` as ISO-8601 UTC,
named ``requests-<YYYYMMDD>-<pid>-<n>.jsonl``. Sampling is per request: either every row of a
request is written or none, so a sampled request can always be looked at whole.

On a cluster the same rows travel as CloudEvents to a receiver that writes them out
(``searchrel.serving.cloudevents``), in exactly this row schema, so that ``read_request_log``
and the drift job do not change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from searchrel import tables
from searchrel.config import ServeConfig
from searchrel.schema import REQUEST_LOG, SCALAR_FEATURES

log = logging.getLogger(__name__)

FILE_PREFIX = "requests-"
FILE_SUFFIX = ".jsonl"
TRUNCATED_LINE = "truncated_line"  # the last line of a file cut short (a crash mid-write)
BAD_JSON = "bad_json"  # a line inside a file that is not a JSON object
_TS_TYPE = REQUEST_LOG.field("ts").type
_COLUMNS = tuple(REQUEST_LOG.names)
_COLUMN_SET = frozenset(_COLUMNS)


def _iso_utc(value: Any) -> Any:
    """A timestamp as ISO-8601 UTC with milliseconds (the column's unit); other values as given.

    Takes a datetime (naive means UTC), a ``pd.Timestamp``, or a number of seconds since the
    epoch (``time.time()``, what the server passes); a string is written as it is.
    """
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        if not math.isfinite(value):
            return str(value)
        value = datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value  # the reader validates it


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return str(obj)


def _strict(value: Any) -> Any:
    """NaN and infinities as strings, so every line is strict JSON (the reader quarantines them)."""
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


_JSON_ARGS: dict[str, Any] = {
    "ensure_ascii": False,
    "separators": (",", ":"),
    "default": _json_default,
}


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, **_JSON_ARGS, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere: rare, so the slow path is fine
        return json.dumps(_strict(value), **_JSON_ARGS)


def encode_rows(rows: list[dict[str, Any]]) -> list[str]:
    """One JSON line per row, with one ``json.dumps`` per row for its scalars; a list shared by
    several rows (the query embedding is the same for every item of a request) is encoded once.
    A row without ``ts`` gets the time it was logged."""
    cache: dict[int, str] = {}
    keep_alive: list[Any] = []  # ids are only unique while the objects live
    now = _iso_utc(datetime.now(UTC))
    lines = []
    for row in rows:
        scalars: dict[str, Any] = {} if "ts" in row else {"ts": now}
        lists: list[tuple[str, str]] = []
        for key, value in row.items():
            if key == "ts":
                scalars[key] = _iso_utc(value)
            elif isinstance(value, list | tuple | np.ndarray):
                text = cache.get(id(value))
                if text is None:
                    plain = value.tolist() if isinstance(value, np.ndarray) else value
                    text = cache[id(value)] = _dumps(plain)
                    keep_alive.append(value)
                lists.append((str(key), text))
            elif isinstance(value, np.generic):
                scalars[key] = value.item()
            else:
                scalars[key] = value
        head = _dumps(scalars)
        tail = "".join(f",{json.dumps(key)}:{text}" for key, text in lists)
        if len(head) == 2 and tail:  # "{}": no scalar columns at all
            tail = tail[1:]
        lines.append(f"{head[:-1]}{tail}}}\n")
    return lines


@dataclass(frozen=True)
class ServedRequest:
    """One scored request as the server logs it: columnar, so that a request that is not
    sampled is never turned into rows, and one that is takes one pass of ``encode_served``."""

    query: str
    locale: str
    item_ids: list[str]
    query_embedding: np.ndarray  # [D]
    scalars: np.ndarray  # [n, len(SCALAR_FEATURES)], in that order
    probs: np.ndarray  # [n, K]
    expected_score: np.ndarray  # [n]
    model_version: str
    digits: int = 5  # decimals of each float written (float32 carries about 7)
    ts: float = field(default_factory=time.time)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def rows(self) -> list[dict[str, Any]]:
        """The request as ``schema.REQUEST_LOG`` rows (the query embedding on the first only)."""
        d = self.digits
        feats = self.scalars.round(d).tolist()
        probs = self.probs.round(d).tolist()
        expected = self.expected_score.round(d).tolist()
        head = {"ts": self.ts, "request_id": self.request_id, "query": self.query,
                "locale": self.locale}  # fmt: skip
        return [
            {
                **head,
                "item_id": item_id,
                "query_embedding": self.query_embedding.round(d).tolist() if j == 0 else None,
                **dict(zip(SCALAR_FEATURES, feats[j], strict=True)),
                "probs": probs[j],
                "expected_score": expected[j],
                "model_version": self.model_version,
            }
            for j, item_id in enumerate(self.item_ids)
        ]


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_FEATURES_TEMPLATE = ",".join(f"{orjson.dumps(name).decode()}:{{}}" for name in SCALAR_FEATURES)


def _numbers_by_row(values: np.ndarray) -> list[str]:
    """Each row of a 2-D float array as its JSON numbers, comma-separated, no brackets: one
    ``orjson`` call for the whole array instead of one ``json.dumps`` per row. Float32 stays
    float32, written in its shortest form. orjson takes only C-contiguous, native-order arrays."""
    text = orjson.dumps(np.ascontiguousarray(values, values.dtype.newbyteorder("=")),
                        option=_NUMPY).decode()  # fmt: skip
    return text[2:-2].split("],[")


def encode_served(served: ServedRequest) -> list[str]:
    """The JSON lines of ``served.rows()``, written straight from the arrays rather than a dict
    and a ``json.dumps`` per candidate. A value that is not finite once rounded (NaN, an
    infinity, a float32 that rounding overflows), which the reader must quarantine, takes
    ``encode_rows``, which writes it as a string."""
    n = len(served.item_ids)
    if served.scalars.shape != (n, len(SCALAR_FEATURES)):
        raise ValueError(
            f"scalars of shape {served.scalars.shape}, not ({n}, {len(SCALAR_FEATURES)})"
        )
    d = served.digits
    query_embedding, scalars, probs, expected = (
        a.round(d)
        for a in (served.query_embedding, served.scalars, served.probs, served.expected_score)
    )
    arrays = (query_embedding, scalars, probs, expected)
    if n == 0 or not all(np.isfinite(a).all() for a in arrays):
        return encode_rows(served.rows())
    head_fields = {
        "ts": _iso_utc(served.ts),
        "request_id": served.request_id,
        "query": served.query,
        "locale": served.locale,
        "model_version": served.model_version,
    }
    head = orjson.dumps(head_fields).decode()[:-1]
    embeddings = [f"[{_numbers_by_row(query_embedding.reshape(1, -1))[0]}]"] + ["null"] * (n - 1)
    features = _numbers_by_row(scalars)
    prob_rows = _numbers_by_row(probs)
    expected_values = _numbers_by_row(expected.reshape(1, -1))[0].split(",")
    return [
        f'{head},"item_id":{orjson.dumps(item_id).decode()},"query_embedding":{emb},'
        f'{_FEATURES_TEMPLATE.format(*feats.split(","))},"probs":[{p}],"expected_score":{e}}}\n'
        for item_id, emb, feats, p, e in zip(
            served.item_ids, embeddings, features, prob_rows, expected_values, strict=True
        )
    ]


class RequestLogger:
    """Write a sample of served requests to JSON Lines files; thread-safe, cheap per request.

    ``log`` takes the rows of one request and writes all of them or none (probability
    ``sample_rate``); each request is appended and flushed at once, so a crash loses at most the
    line being written (the reader quarantines it as ``truncated_line``). A file is closed after
    ``max_rows_per_file`` rows or ``max_file_bytes`` bytes (a request is never split across
    files) and when the UTC day changes. Each time a file is opened, the directory's log files
    older than ``max_age_s`` are deleted, then the oldest until all of them together take at
    most ``max_total_bytes``: the log is bounded in size and age whatever the traffic. Writing
    never raises into the request path: an I/O error is logged and counted.

    Counters (for metrics): ``requests_logged``, ``requests_skipped``, ``rows_logged``,
    ``rows_skipped``, ``rows_failed``, ``files_opened``.
    """

    def __init__(
        self,
        directory: Path,
        sample_rate: float,
        seed: int | None = None,
        max_rows_per_file: int = 50_000,
        max_file_bytes: int | None = None,
        max_total_bytes: int | None = None,
        max_age_s: float | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
        if max_rows_per_file < 1:
            raise ValueError(f"max_rows_per_file must be at least 1, got {max_rows_per_file}")
        self.directory = Path(directory)
        self.sample_rate = float(sample_rate)
        self.max_rows_per_file = int(max_rows_per_file)
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_age_s = max_age_s
        self._file_bytes = 0
        self.files_deleted = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._file_day = ""
        self._file_pid = 0
        self._file_rows = 0
        self._next_index = 0
        self.path: Path | None = None  # the file being written, if any
        self.requests_logged = 0
        self.requests_skipped = 0
        self.rows_logged = 0
        self.rows_skipped = 0
        self.rows_failed = 0
        self.files_opened = 0

    @classmethod
    def bounded(cls, directory: Path, serve_cfg: ServeConfig, sample_rate: float) -> RequestLogger:
        """A logger with the size and age bounds of ``serve_cfg`` (the server, the receiver)."""
        return cls(
            directory,
            sample_rate,
            max_file_bytes=serve_cfg.request_log_max_file_bytes,
            max_total_bytes=serve_cfg.request_log_max_total_bytes,
            max_age_s=serve_cfg.request_log_max_age_hours * 3600,
        )

    def _sampled(self) -> bool:
        if self.sample_rate >= 1.0:
            return True
        if self.sample_rate <= 0.0:
            return False
        with self._lock:  # one seeded sequence of decisions, whatever the threads
            return self._rng.random() < self.sample_rate

    def log(self, rows: list[dict[str, Any]]) -> bool:
        """Log one request's rows if it is sampled; return whether it was written."""
        return self._log(len(rows), lambda: encode_rows(rows))

    def log_served(self, served: ServedRequest) -> bool:
        """Log one scored request (as its rows) if it is sampled; return whether it was written."""
        return self._log(len(served.item_ids), lambda: encode_served(served))

    def _log(self, n_rows: int, encode: Callable[[], list[str]]) -> bool:
        if not n_rows:
            return False
        if not self._sampled():
            with self._lock:
                self.requests_skipped += 1
                self.rows_skipped += n_rows
            return False
        try:
            lines = encode()  # outside the lock: the costly part
        except (TypeError, ValueError) as exc:  # e.g. a key that is not a string
            with self._lock:
                self.rows_failed += n_rows
            log.warning("request log: could not encode %d row(s): %s", n_rows, exc)
            return False
        text = "".join(lines)
        with self._lock:
            try:
                handle = self._handle()
                handle.write(text)
                handle.flush()
            except OSError as exc:
                self.rows_failed += n_rows
                log.warning("request log: could not write %d row(s): %s", n_rows, exc)
                self._close_locked()
                return False
            self._file_rows += n_rows
            self._file_bytes += len(text.encode("utf-8"))
            self.requests_logged += 1
            self.rows_logged += n_rows
            if self._file_rows >= self.max_rows_per_file or (
                self.max_file_bytes is not None and self._file_bytes >= self.max_file_bytes
            ):
                self._close_locked()
        return True

    def _handle(self) -> IO[str]:
        day = datetime.now(UTC).strftime("%Y%m%d")
        pid = os.getpid()
        if self._file is not None and (self._file_day != day or self._file_pid != pid):
            self._close_locked()  # a new day, or a forked child: a file of its own
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            while True:
                path = self.directory / f"{FILE_PREFIX}{day}-{pid}-{self._next_index}{FILE_SUFFIX}"
                self._next_index += 1
                try:
                    self._file = path.open("x", encoding="utf-8")  # never append to another's
                except FileExistsError:
                    continue
                break
            self.path = path
            self._file_day, self._file_pid, self._file_rows, self._file_bytes = day, pid, 0, 0
            self.files_opened += 1
            self._prune_locked()
        return self._file

    def _prune_locked(self) -> None:
        """Delete this directory's log files past ``max_age_s``, then the oldest until they
        fit in ``max_total_bytes`` (never the file being written)."""
        if self.max_age_s is None and self.max_total_bytes is None:
            return
        files = []
        for p in self.directory.iterdir():
            if p == self.path or not (
                p.name.startswith(FILE_PREFIX) and p.name.endswith(FILE_SUFFIX)
            ):
                continue
            try:
                st = p.stat()
            except OSError:
                continue  # deleted meanwhile (another process pruning)
            files.append((st.st_mtime, st.st_size, p))
        files.sort()
        now = time.time()
        total = sum(size for _, size, _ in files)
        for mtime, size, p in files:
            too_old = self.max_age_s is not None and now - mtime > self.max_age_s
            too_big = self.max_total_bytes is not None and total > self.max_total_bytes
            if not (too_old or too_big):
                break
            try:
                p.unlink()
            except OSError as exc:
                log.warning("request log: could not delete %s: %s", p, exc)
                continue
            total -= size
            self.files_deleted += 1

    def _close_locked(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                log.warning("request log: could not close %s: %s", self.path, exc)
            self._file = None
            self.path = None

    def close(self) -> None:
        """Close the current file; a later ``log`` opens a new one."""
        with self._lock:
            self._close_locked()

    def __enter__(self) -> RequestLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests_logged": self.requests_logged,
                "requests_skipped": self.requests_skipped,
                "rows_logged": self.rows_logged,
                "rows_skipped": self.rows_skipped,
                "rows_failed": self.rows_failed,
                "files_opened": self.files_opened,
                "files_deleted": self.files_deleted,
            }


def _log_files(directory: Path) -> list[Path]:
    files = [
        p
        for p in directory.iterdir()
        if p.is_file()
        and (
            p.name.endswith(FILE_SUFFIX)
            or (p.name.endswith(".parquet") and not p.name.endswith(".quarantine.parquet"))
        )
    ]
    return sorted(files)


def _ts_problem(value: Any) -> str | None:
    """What ``tables.validate`` would get wrong about a logged ``ts``, checked before it sees it.

    An empty string or "NaT" coerces to NaT without a reason and then breaks ``validate``; a
    number would be read as nanoseconds since 1970. The logger writes ISO strings, so anything
    else is not a timestamp of ours.
    """
    if value is None:
        return None  # validate reports it as missing:ts
    if not isinstance(value, str):
        return "bad_type:ts"
    cell, reason = tables._coerce_cell(value, _TS_TYPE)
    if reason:
        return f"{reason}:ts"
    return "bad_type:ts" if cell is pd.NaT or cell is None else None


def read_request_log(directory: Path, levels: int) -> tables.Validated:
    """Read every request-log file in ``directory`` and validate it against ``REQUEST_LOG``.

    Reads ``*.jsonl`` (the logger's files) and any ``*.parquet`` (not ``*.quarantine.parquet``),
    in name order. Problems go to the quarantine, never raise: the last line of a file cut short
    by a crash, with no newline (``truncated_line``; also the line being written when the
    server is still writing the file), any other line that is not a JSON object (``bad_json``), a
    field that is not a column (``unexpected_field:<name>``), a bad timestamp (``bad_type:ts``),
    and whatever ``tables.validate`` finds. ``row_index`` is the row's position among all rows
    read (lines of every file in order, then Parquet rows); for a line-level problem
    ``row_json`` holds the file, the line number and the text. A Parquet file whose columns are
    wrong raises ``tables.ContractError``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise tables.ContractError(f"request_log: no such directory {directory}")
    records: list[dict[str, Any]] = []
    positions: list[int] = []  # position of each record among all rows read
    early: list[tuple[int, str, str]] = []  # (position, reason, row_json) found before validate
    parquet_parts: list[pa.Table] = []
    position = 0
    for path in _log_files(directory):
        if path.name.endswith(".parquet"):
            try:
                part = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise tables.ContractError(
                    f"request_log: {path} is not a readable Parquet file ({exc})"
                ) from exc
            missing = [c for c in _COLUMNS if c not in part.column_names]
            unexpected = [c for c in part.column_names if c not in _COLUMN_SET]
            if missing or unexpected:
                raise tables.ContractError(
                    f"request_log: {path.name}: missing column(s) {missing or 'none'}, "
                    f"unexpected column(s) {unexpected or 'none'}"
                )
            parquet_parts.append(part.select(list(_COLUMNS)))
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        lines = text.split("\n")  # a last line without its newline was cut short
        for lineno, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                reason = TRUNCATED_LINE if lineno == len(lines) - 1 else BAD_JSON
                where = {"file": path.name, "line": lineno + 1, "text": line[:2000]}
                early.append((position, reason, tables._row_json(where)))
            else:
                extra = sorted(str(k) for k in row if k not in _COLUMN_SET)
                problem = f"unexpected_field:{extra[0]}" if extra else _ts_problem(row.get("ts"))
                if problem:
                    early.append((position, problem, tables._row_json(row)))
                else:
                    records.append(row)
                    positions.append(position)
            position += 1

    frames = [pd.DataFrame.from_records(records, columns=list(_COLUMNS))] if records else []
    for part in parquet_parts:
        frame = part.to_pandas()
        frames.append(frame)
        positions.extend(range(position, position + len(frame)))
        position += len(frame)
    data = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({name: [] for name in _COLUMNS}, columns=list(_COLUMNS))
    )
    result = tables.validate(data, "request_log", levels)

    entries = [
        (positions[i], reason, row_json)
        for i, reason, row_json in zip(
            result.quarantine.column("row_index").to_pylist(),
            result.quarantine.column("reason").to_pylist(),
            result.quarantine.column("row_json").to_pylist(),
            strict=True,
        )
    ]
    entries = sorted(early + entries)
    quarantine = pa.table(
        {
            "table": ["request_log"] * len(entries),
            "row_index": [e[0] for e in entries],
            "reason": [e[1] for e in entries],
            "row_json": [e[2] for e in entries],
        },
        schema=tables.QUARANTINE_SCHEMA,
    )
    reasons = Counter(result.reasons)
    reasons.update(e[1] for e in early)
    return tables.Validated(
        table=result.table, quarantine=quarantine, rows_in=position, reasons=dict(reasons)
    )
