"""Fine-tune the teacher on human judgments: LoRA on a K-class cross-encoder.

Training uses the queries of the train split; early stopping watches the validation queries;
test queries are never seen (they score the teacher and the student alike).
"""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from searchrel.config import Config
from searchrel.pairs import join_items
from searchrel.splits import split_of
from searchrel.tables import read_table, write_quarantine
from searchrel.teacher.encoding import encode_pairs, item_texts
from searchrel.teacher.model import TeacherMeta, build_teacher, save_teacher

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def train_teacher(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """Train, early-stop on validation queries, save adapters + head; return the summary."""
    tcfg, levels = cfg.teacher, cfg.data.levels
    seed_everything(tcfg.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    items = read_table(items_path, "items")
    judgments = read_table(judgments_path, "judgments", levels)
    joined = join_items(judgments.table, items.table, "judgments")
    rows = joined.pairs.to_pylist()
    splits = np.array([split_of(r["query"], cfg.data) for r in rows])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError("too few queries to split into train and validation")

    model, tokenizer = build_teacher(tcfg, levels)
    texts = item_texts(tokenizer, joined.items, tcfg.fields, tcfg.field_max_tokens)
    enc = encode_pairs(tokenizer, [r["query"] for r in rows], texts, tcfg.max_length)
    labels = torch.tensor([r["label"] - 1 for r in rows], dtype=torch.long)
    has_weights = tcfg.use_weights and any(r["weight"] is not None for r in rows)
    weights = torch.tensor(
        [(r["weight"] if r["weight"] is not None else 1.0) if has_weights else 1.0 for r in rows],
        dtype=torch.float32,
    )

    def batch_inputs(idx: np.ndarray) -> dict[str, torch.Tensor]:
        return dict(tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt"))

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=tcfg.learning_rate,
        weight_decay=tcfg.weight_decay,
    )
    rng = np.random.default_rng(tcfg.seed)
    steps_per_epoch = -(-len(train_idx) // tcfg.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=tcfg.learning_rate,
        total_steps=steps_per_epoch * tcfg.epochs,
        pct_start=0.1,
    )
    history: list[dict[str, float]] = []
    best_loss, best_state, bad_epochs = float("inf"), None, 0
    started = time.perf_counter()
    for epoch in range(tcfg.epochs):
        model.train()
        total, seen = 0.0, 0
        batches = _batches(len(train_idx), tcfg.batch_size, rng)
        bar = tqdm(batches, desc=f"teacher epoch {epoch + 1}/{tcfg.epochs}", unit="batch")
        for b in bar:
            idx = train_idx[b]
            logits = model(**batch_inputs(idx)).logits
            loss_each = torch.nn.functional.cross_entropy(logits, labels[idx], reduction="none")
            w = weights[idx]
            loss = (loss_each * w).sum() / w.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += float(loss) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.3f}")
        val_loss, val_acc = _evaluate_loss(model, batch_inputs, labels, val_idx, tcfg.batch_size)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / seen,
                "val_loss": val_loss,
                "val_acc": val_acc,
            }
        )
        log.info("epoch %d: %s", epoch + 1, history[-1])
        if val_loss < best_loss - 1e-4:
            best_loss, bad_epochs = val_loss, 0
            best_state = {
                k: v.detach().clone()
                for k, v in model.state_dict().items()
                if "lora_" in k or "modules_to_save" in k
            }
        else:
            bad_epochs += 1
            if bad_epochs >= tcfg.patience:
                log.info("early stop after epoch %d", epoch + 1)
                break
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)

    meta = TeacherMeta(
        base_model=tcfg.base_model,
        levels=levels,
        fields=list(tcfg.fields),
        field_max_tokens=tcfg.field_max_tokens,
        max_length=tcfg.max_length,
        history=history,
    )
    meta = save_teacher(model, tokenizer, meta, out_dir)
    quarantine = [
        q for q in (items.quarantine, judgments.quarantine, joined.quarantine) if q.num_rows
    ]
    if quarantine:
        import pyarrow as pa

        write_quarantine(pa.concat_tables(quarantine), out_dir / "quarantine.parquet")
    summary = {
        "stage": "teacher-train",
        "teacher_version": meta.version,
        "base_model": tcfg.base_model,
        "levels": levels,
        "train_pairs": len(train_idx),
        "val_pairs": len(val_idx),
        "epochs_run": len(history),
        "best_val_loss": best_loss,
        "history": history,
        "seconds": round(time.perf_counter() - started, 1),
        "inputs": {"items": items.summary(), "judgments": judgments.summary()},
        "unknown_items": joined.quarantine.num_rows,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


@torch.inference_mode()
def _evaluate_loss(
    model: torch.nn.Module,
    batch_inputs: Any,
    labels: torch.Tensor,
    idx: np.ndarray,
    batch_size: int,
) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for start in range(0, len(idx), batch_size):
        b = idx[start : start + batch_size]
        logits = model(**batch_inputs(b)).logits
        total += float(torch.nn.functional.cross_entropy(logits, labels[b], reduction="sum"))
        correct += int((logits.argmax(-1) == labels[b]).sum())
    return total / len(idx), correct / len(idx)


if __name__ == "__main__":
    from searchrel.cli import module_main

    module_main("teacher", "train")
