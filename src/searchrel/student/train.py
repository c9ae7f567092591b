"""Distil the teacher into the student: soft labels from the teacher, hard labels from humans.

Loss = (1 - h) * CE(teacher distribution) + h * CE(human label), h = student.human_weight;
batches are index slices of tensors, so an epoch costs a handful of matrix multiplications.
The teacher's part can use hard labels (its most likely level) and weight each pair by the
teacher's confidence (``student.teacher_targets``, ``student.teacher_confidence_weight``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from searchrel.atomic_files import write_atomic
from searchrel.config import Config, StudentConfig
from searchrel.features.embedder import USE_MULTILINGUAL, Embedder
from searchrel.features.store import ENCODER_GRAPH_DIR, ItemStore
from searchrel.schema import SCALAR_FEATURES
from searchrel.student.dataset import FeatureRows, load_feature_rows, with_teacher_options
from searchrel.student.model import (
    BUNDLE_ENCODER_DIR,
    BUNDLE_STORE_DIR,
    ExportedStudent,
    StudentMeta,
    StudentNet,
    export_student,
)

log = logging.getLogger(__name__)


def row_weights(rows: FeatureRows, human_weight: float) -> np.ndarray:
    """Per-row loss weights giving humans and teacher their configured shares of the loss.

    Normalised by each source's *sum* of row weights, not its row count: human rows carry
    rater-agreement weights (mean ~0.8 on CrowdFlower), and dividing by the count would hand
    the humans less than ``human_weight``."""
    human = rows.source == "human"
    w = rows.weight.astype(np.float64)
    w_h, w_t = float(w[human].sum()), float(w[~human].sum())
    if w_h == 0 or w_t == 0:  # one source only: it takes the whole loss
        return (w / max(w.sum(), 1e-12)).astype(np.float32)
    share = np.where(human, human_weight / w_h, (1 - human_weight) / w_t)
    return (w * share).astype(np.float32)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1)


def fit_student(
    train: FeatureRows, val: FeatureRows, scfg: StudentConfig, levels: int
) -> tuple[StudentNet, list[dict[str, float]], float]:
    """Train on arrays (index slices of tensors: no per-row Python); early stopping on
    ``val``'s loss keeps the best epoch. Returns the network, the history and the best loss.
    The teacher options apply to ``train`` only: ``val`` is scored as it is given."""
    torch.manual_seed(scfg.seed)
    train = with_teacher_options(train, scfg.teacher_targets, scfg.teacher_confidence_weight)
    net = StudentNet(train.x.shape[1], list(scfg.hidden), levels, scfg.dropout)
    net.set_normalisation(train.x)
    x = torch.from_numpy(train.x)
    y = torch.from_numpy(train.target)
    w = torch.from_numpy(row_weights(train, scfg.human_weight))
    xv, yv = torch.from_numpy(val.x), torch.from_numpy(val.target)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=scfg.learning_rate, weight_decay=scfg.weight_decay
    )
    gen = torch.Generator().manual_seed(scfg.seed)
    history: list[dict[str, float]] = []
    best, best_state, bad = float("inf"), None, 0
    bar = tqdm(range(scfg.epochs), desc="student", unit="epoch")
    for epoch in bar:
        net.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in range(0, len(x), scfg.batch_size):
            idx = order[start : start + scfg.batch_size]
            wb = w[idx]
            loss = (soft_cross_entropy(net.logits(x[idx]), y[idx]) * wb).sum() / wb.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        net.eval()
        with torch.inference_mode():
            val_loss = float(soft_cross_entropy(net.logits(xv), yv).mean())
        history.append({"epoch": epoch + 1, "train_loss": total / len(x), "val_loss": val_loss})
        bar.set_postfix(val_loss=f"{val_loss:.3f}")
        if val_loss < best - 1e-4:
            best, bad = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= scfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    return net, history, best


def _copy_from(source: Path) -> Callable[[Path], object]:
    return lambda tmp: shutil.copyfile(source, tmp)


def bundle_query_encoder(
    cfg: Config, embedder_source: str, out_dir: Path, built: Path | None = None
) -> Path | None:
    """Put the query encoder's ONNX graph in the bundle, so that a new server pod need not
    export it (seconds and a memory peak at start-up). ``built``: the graph directory the
    features step wrote beside the item store; copied as it is (it passed its check against
    PyTorch there, and the server checks it again), else the encoder is loaded here.
    Optional: without it the server exports its own, so nothing here may fail the step."""
    if cfg.features.embed_runtime == "torch" or embedder_source == USE_MULTILINGUAL:
        return None  # the server will not run an ONNX graph
    graphs = sorted(built.glob("*.onnx")) if built is not None and built.is_dir() else []
    if graphs:
        try:
            for graph in graphs:
                write_atomic(out_dir / BUNDLE_ENCODER_DIR / graph.name, _copy_from(graph))
            return out_dir / BUNDLE_ENCODER_DIR / graphs[0].name
        except OSError as exc:
            log.warning("no ONNX query encoder in the bundle: %s", exc)
            return None
    if torch.cuda.is_available():
        log.info("no ONNX query encoder in the bundle: trained on a GPU, where PyTorch encodes")
        return None
    try:
        embedder = Embedder.from_config(cfg.features, embedder_source)
        return embedder.save_onnx_graph(out_dir / BUNDLE_ENCODER_DIR)
    except Exception as exc:  # the server can still export one itself
        log.warning("no ONNX query encoder in the bundle: %s", exc)
        return None


def train_student(
    features_path: Path, store_dir: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    scfg, levels = cfg.student, cfg.data.levels
    started = time.perf_counter()
    torch.manual_seed(scfg.seed)
    rows = load_feature_rows(features_path, levels)
    train = rows.subset(rows.split == "train")
    val = rows.subset((rows.split == "val") & (rows.source == "human"))
    if len(val) == 0:
        val = rows.subset(rows.split == "val")
    if len(train) == 0 or len(val) == 0:
        raise ValueError("the student needs rows in both the train and the val split")

    net, history, best = fit_student(train, val, cfg.student, levels)
    xv = torch.from_numpy(val.x)

    store = ItemStore(store_dir)
    meta = StudentMeta(
        levels=levels,
        in_dim=train.x.shape[1],
        embedding_dim=train.embedding_dim,
        scalar_features=list(SCALAR_FEATURES),
        hidden=list(scfg.hidden),
        embedder=store.embedder_source,
        history=history,
    )
    meta = export_student(net, meta, out_dir)

    # The serving bundle is self-contained: the student and the item store it reads.
    # Its encoder graph goes to the bundle's own place, once.
    def graph_dir(directory: str, names: list[str]) -> list[str]:
        return [ENCODER_GRAPH_DIR] if Path(directory) == store_dir else []

    shutil.copytree(store_dir, out_dir / BUNDLE_STORE_DIR, dirs_exist_ok=True, ignore=graph_dir)
    encoder_graph = bundle_query_encoder(
        cfg, store.embedder_source, out_dir, store_dir / ENCODER_GRAPH_DIR
    )
    # The exported program must give what the trained network gives.
    exported = ExportedStudent(out_dir)
    with torch.inference_mode():
        eager = net(xv).numpy()
    max_diff = float(np.abs(exported.predict_proba(val.x) - eager).max())
    if max_diff > 1e-5:
        raise RuntimeError(f"exported student differs from the trained one by {max_diff}")
    summary = {
        "stage": "student-train",
        "student_version": meta.version,
        "train_rows": len(train),
        "train_rows_by_source": {s: int((train.source == s).sum()) for s in ("human", "teacher")},
        "val_rows": len(val),
        "epochs_run": len(history),
        "best_val_loss": best,
        "export_max_abs_diff": max_diff,
        "query_encoder_graph": encoder_graph.name if encoder_graph else None,
        "in_dim": meta.in_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    log.info("student trained: %s", summary)
    return summary
