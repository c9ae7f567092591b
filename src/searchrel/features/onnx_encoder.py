"""A sentence-transformers text encoder run by ONNX Runtime on CPU.

Why: one short query through all-MiniLM-L6-v2 is slow in eager PyTorch on a few cores, and
that one embedding is most of the student's cost for a query not in the cache; ONNX Runtime
runs the same graph faster with the same vectors. The graph is exported once per model and
library versions and kept in a cache directory (the student bundle carries one for the
server); every load checks it against PyTorch on probe texts and refuses it when they differ.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from searchrel.atomic_files import write_atomic

log = logging.getLogger(__name__)

# Module layouts this exporter reproduces exactly; anything else stays on PyTorch.
SUPPORTED_LAYOUTS = (("Transformer", "Pooling"), ("Transformer", "Pooling", "Normalize"))
PROBE_TEXTS = [
    "red leather boots",
    "a much longer query about a vintage mid-century modern teak sideboard with brass handles",
    "Crème brûlée 日本語 ümlaut",
]
TOLERANCE = 1e-4  # max abs difference from PyTorch accepted on the probe texts
# What the exported graph depends on (the runtime that loads it is checked at every load).
_LIBRARIES = ("torch", "transformers", "sentence-transformers", "onnxscript", "onnx", "onnx-ir")


class OnnxUnavailable(Exception):
    """This encoder cannot run on ONNX Runtime here (the reason is the message)."""


def _library_versions() -> str:
    parts = []
    for name in _LIBRARIES:
        try:
            parts.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name}=none")
    return ";".join(parts)


def _model_fingerprint(model_dir: Path) -> str:
    """The model's files (names and contents) and the library versions: a new checkpoint or a
    new exporter gives a new cache entry; the same model reinstalled elsewhere reuses one."""
    h = hashlib.sha256(_library_versions().encode())
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(model_dir)).encode())
        with f.open("rb") as stream:
            h.update(hashlib.file_digest(stream, "sha256").digest())
    return h.hexdigest()[:32]


class _Encoder(torch.nn.Module):
    """Transformer, then the model's own Pooling module, then L2 normalisation: the graph that
    is exported (two int64 inputs of shape (batch, tokens), one float32 output)."""

    def __init__(self, st: Any):
        super().__init__()
        self.transformer = st[0].auto_model
        self.pooling = st[1]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask)
        pooled = self.pooling(
            {"token_embeddings": tokens.last_hidden_state, "attention_mask": attention_mask}
        )["sentence_embedding"]
        return torch.nn.functional.normalize(pooled, dim=1)


def _export(st: Any) -> bytes:
    module = _Encoder(st).eval()
    sample = _tokenize(st, PROBE_TEXTS[:2])
    batch = torch.export.Dim("batch", min=1, max=65536)
    limit = int(getattr(st[0].auto_model.config, "max_position_embeddings", 512))
    tokens = torch.export.Dim("tokens", min=1, max=limit)
    args = (torch.from_numpy(sample["input_ids"]), torch.from_numpy(sample["attention_mask"]))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}),
            verbose=False,
        )
    if program is None:
        raise OnnxUnavailable("torch.onnx.export returned no program")
    return bytes(program.model_proto.SerializeToString())


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints progress, logs every optimisation pass at INFO and warns about
    torchvision ops we do not use: none of it is news to whoever loads an embedder."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _tokenize(st: Any, texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The model's own preprocessing (its tokenizer, truncation at ``max_seq_length``)."""
    features = st.preprocess(list(texts))
    return {
        name: features[name].numpy().astype(np.int64) for name in ("input_ids", "attention_mask")
    }


class OnnxSentenceEncoder:
    """``encode(texts)`` like the SentenceTransformer ``st`` (normalised float32 vectors), run by
    ONNX Runtime with ``threads`` intra-op threads. ``cache_dir`` keeps the exported graph
    (None, or a model that is not a local directory: exported in memory on every load)."""

    def __init__(
        self,
        st: Any,
        model_dir: Path,
        cache_dir: Path | None,
        threads: int,
        graph_dirs: Sequence[Path] = (),
    ):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
        layout = tuple(type(m).__name__ for m in st)
        if layout not in SUPPORTED_LAYOUTS:
            raise OnnxUnavailable(
                f"modules {list(layout)} are not Transformer, Pooling[, Normalize]"
            )
        self._st = st
        self._ort = ort
        self._threads = max(1, threads)
        self._dim = int(st.get_embedding_dimension())
        self.path: Path | None = None  # where an exported graph is cached
        self.source: Path | None = None  # the file the running graph was read from, if any
        self._graph: bytes | None = None  # an exported graph kept nowhere on disk
        try:
            candidates = self._candidates(model_dir, cache_dir, graph_dirs)
            for found in candidates:  # the first that loads and agrees with PyTorch
                try:
                    self.session = self._session(str(found))
                    self.max_abs_diff = self._check()
                    self.source = found
                    return
                except Exception as exc:  # truncated, foreign or disagreeing: try the next
                    log.warning("not using the ONNX encoder %s: %s", found, exc)
            self._export_checked()
        except OnnxUnavailable:
            raise
        except Exception as exc:  # an unreadable cache, a graph ORT cannot run: never fatal
            raise OnnxUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _candidates(
        self, model_dir: Path, cache_dir: Path | None, graph_dirs: Sequence[Path]
    ) -> list[Path]:
        """Graph files to try, in order: this model's name in ``graph_dirs`` (a bundle), any
        other graph there (exported by other library versions: the check decides), then the
        cache. A hub id has no local files to key a cache entry on: no cache for it."""
        names: list[Path] = []
        if model_dir.is_dir():
            name = f"{_model_fingerprint(model_dir)}.onnx"
            self.path = cache_dir / name if cache_dir is not None else None
            names = [d / name for d in graph_dirs]
        others = [g for d in graph_dirs if d.is_dir() for g in sorted(d.glob("*.onnx"))]
        ordered = [*names, *others, *([self.path] if self.path else [])]
        return [c for i, c in enumerate(ordered) if c.is_file() and c not in ordered[:i]]

    def _export_checked(self) -> None:
        """Export, load and check the graph; only a graph that passed is written to the cache."""
        try:
            graph = _export(self._st)
        except OnnxUnavailable:
            raise
        except Exception as exc:  # the exporter's own errors are many and unstable
            raise OnnxUnavailable(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
        try:
            self.session = self._session(graph)
        except Exception as exc:  # ONNX Runtime rejects what the exporter wrote
            raise OnnxUnavailable(f"ONNX Runtime cannot load the export: {exc}") from exc
        self.max_abs_diff = self._check()
        if self.path is not None:
            try:
                write_atomic(self.path, lambda tmp: tmp.write_bytes(graph))
                self.source = self.path
                log.info("exported the ONNX encoder to %s", self.path)
                return
            except OSError as exc:  # a read-only home: run from memory
                log.warning("ONNX encoder not cached (%s)", exc)
        self._graph = graph  # kept, so that save_into can still put it in a bundle

    def save_into(self, directory: Path) -> Path | None:
        """Write the running graph into ``directory`` (a student bundle), where a loader given
        ``directory`` in ``graph_dirs`` finds it; None when there is no graph to write."""
        source = self.source
        if source is not None and source.is_file():
            target = directory / source.name
            write_atomic(target, lambda tmp: shutil.copyfile(source, tmp))
            return target
        if self._graph is not None:
            target = directory / "query_encoder.onnx"
            graph = self._graph
            write_atomic(target, lambda tmp: tmp.write_bytes(graph))
            return target
        return None

    def _session(self, graph: bytes | str) -> Any:
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        # Idle worker threads sleep instead of spinning: spinning threads took the cores from
        # the torch ops that follow each query.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return self._ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def _check(self) -> float:
        """Probe texts, one at a time and as one padded batch, against PyTorch."""
        expected = self._st.encode(
            PROBE_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        got = [self.encode(PROBE_TEXTS), *(self.encode([t]) for t in PROBE_TEXTS)]
        diff = max(
            float(np.abs(g - (expected if len(g) > 1 else expected[i - 1 : i])).max())
            for i, g in enumerate(got)
        )
        if not diff <= TOLERANCE:
            raise OnnxUnavailable(f"ONNX vectors differ from PyTorch by {diff:.2g} > {TOLERANCE}")
        return diff

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Vectors in the order of ``texts``; batches of similar length, as sentence-transformers
        forms them, so that little padding is computed."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        from tqdm import tqdm

        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
            idx = order[start : start + batch_size]
            feed = _tokenize(self._st, [texts[i] for i in idx])
            out[idx] = self.session.run(None, feed)[0]
        return out
