"""Fine-tune the teacher on human judgments: (q)LoRA or full fine-tuning of a K-class
cross-encoder, optionally several seeds at once as an ensemble.

Training uses the queries of the train split; early stopping watches the validation queries;
test queries are never seen (they score the teacher and the student alike). With
``teacher.refit`` the teacher then trains again on the train and validation queries.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from sklearn.metrics import cohen_kappa_score
from tqdm.auto import tqdm

from searchrel.config import Config, TeacherConfig
from searchrel.item_join import join_items
from searchrel.splits import split_of
from searchrel.tables import read_table, write_quarantine, write_table
from searchrel.teacher.backbone import autocast, autocast_dtype, default_device
from searchrel.teacher.batching import training_batches
from searchrel.teacher.checkpoint import (
    CHECKPOINT_DIR,
    Trainer,
    TrainState,
    fingerprint,
    load_checkpoint,
    load_trainable,
    save_checkpoint,
    trainable_state,
)
from searchrel.teacher.encoding import encode_pairs, item_texts
from searchrel.teacher.ensemble import MEMBERS_DIR, write_ensemble
from searchrel.teacher.losses import pair_losses
from searchrel.teacher.model import TeacherMeta, build_teacher, level_probs, save_teacher

log = logging.getLogger(__name__)
SUMMARY_FILE = "summary.json"
PREDICTIONS_FILE = "validation_predictions.parquet"  # the kept model on the validation queries
HELD_OUT_DIR = "held_out"  # a refit teacher's run without the validation queries


def seed_everything(seed: int) -> None:
    """Seed every RNG training touches: same seed, same data and CPU run, same adapters."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")  # encoder.layer.3. (BERT, MPNet), layers.3.


def parameter_groups(model: torch.nn.Module, lr: float, layer_decay: float) -> list[dict[str, Any]]:
    """The trainable weights in AdamW groups with layer-wise learning rates.

    The head (and anything above the last layer) learns at ``lr``, each layer below it
    ``layer_decay`` times slower, the embeddings slowest: the layers that hold the most general
    pretrained knowledge move least, which is what keeps a fine-tuned encoder from forgetting.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if layer_decay == 1.0:
        return [{"params": [p for _, p in named], "lr": lr}]
    found = [LAYER_INDEX.search(n) for n, _ in named]
    depth = 1 + max((int(m.group(1)) for m in found if m), default=-1)
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for (name, param), match in zip(named, found, strict=True):
        # Not in a layer: below every layer (the embeddings) or above (the head, the pooler).
        layer = int(match.group(1)) + 1 if match else 0 if "embed" in name else depth + 1
        groups.setdefault(layer, []).append(param)
    return [
        {"params": params, "lr": lr * layer_decay ** (depth + 1 - layer)}
        for layer, params in sorted(groups.items())
    ]


def train_teacher(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """Train, early-stop on validation queries, save the teacher; return the summary.

    With ``teacher.members`` above 1, that many seeds train into ``out_dir/members/`` and
    ``out_dir`` becomes an ensemble of them (see ``teacher.ensemble``); finished members are
    kept when a cut run is started again. With ``teacher.refit`` each trains twice (see
    ``train_refit``).
    """
    if cfg.teacher.members > 1:
        return train_ensemble(items_path, judgments_path, out_dir, cfg)
    if cfg.teacher.refit:
        return train_refit(items_path, judgments_path, out_dir, cfg)
    return train_single(items_path, judgments_path, out_dir, cfg)


def train_ensemble(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """``teacher.members`` teachers that differ only in their seed, then their ensemble."""
    started = time.perf_counter()
    members: list[Path] = []
    summaries: list[dict[str, Any]] = []
    for k in range(cfg.teacher.members):
        teacher = cfg.teacher.model_copy(update={"members": 1, "seed": cfg.teacher.seed + k})
        member_cfg = cfg.model_copy(update={"teacher": teacher})
        member_dir = out_dir / MEMBERS_DIR / f"member-{k + 1}"
        key = fingerprint(member_cfg, items_path, judgments_path)
        done = member_dir / SUMMARY_FILE
        summary = json.loads(done.read_text(encoding="utf-8")) if done.is_file() else {}
        if summary.get("fingerprint") != key:
            log.info("teacher ensemble: training member %d of %d", k + 1, cfg.teacher.members)
            summary = train_teacher(items_path, judgments_path, member_dir, member_cfg)
        members.append(member_dir)
        summaries.append(summary)
    version = write_ensemble(out_dir, members)
    summary = {
        "stage": "teacher-train",
        "teacher_version": version,
        "members": [s["teacher_version"] for s in summaries],
        "base_model": cfg.teacher.base_model,
        "levels": cfg.data.levels,
        "train_pairs": summaries[0]["train_pairs"],
        "val_pairs": summaries[0]["val_pairs"],
        "epochs_run": sum(s["epochs_run"] for s in summaries),
        "member_history": [s["history"] for s in summaries],
        "train_pairs_per_s": round(
            sum(s["train_pairs"] * len(s["epoch_train_seconds"]) for s in summaries)
            / max(sum(sum(s["epoch_train_seconds"]) for s in summaries), 1e-9),
            2,
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def train_refit(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """Early stopping on the validation queries chooses the number of epochs; then the teacher
    trains again, with the same seed and recipe, on the training and validation queries for
    that many epochs: more human labels, and none of their queries left unseen.

    The refit teacher has learned the validation pairs, so its validation figures (and
    anything fitted on them, such as decision cutoffs) come from the first run: ``held_out/``
    keeps that run's summary and validation predictions, not its weights (labeling jobs
    download the teacher directory), and ``validation_predictions.parquet`` is a copy of them.
    A cut run resumes: a finished held-out run is not repeated, an unfinished one and the
    refit resume from their checkpoints.
    """
    started = time.perf_counter()
    held_cfg = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"refit": False})})
    held_dir = out_dir / HELD_OUT_DIR
    done = held_dir / SUMMARY_FILE
    held = json.loads(done.read_text(encoding="utf-8")) if done.is_file() else {}
    if held.get("fingerprint") != fingerprint(held_cfg, items_path, judgments_path):
        log.info("teacher refit: the run on the training queries alone")
        held = train_single(items_path, judgments_path, held_dir, held_cfg)
    for path in held_dir.iterdir():  # the weights go; what describes the run stays
        if path.name not in (SUMMARY_FILE, PREDICTIONS_FILE):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    log.info("teacher refit: %d epochs on the training and validation queries", held["best_epoch"])
    teacher = cfg.teacher.model_copy(update={"epochs": held["best_epoch"]})
    summary = train_single(
        items_path, judgments_path, out_dir, cfg.model_copy(update={"teacher": teacher})
    )
    shutil.copyfile(held_dir / PREDICTIONS_FILE, out_dir / PREDICTIONS_FILE)
    summary.update(
        fingerprint=fingerprint(cfg, items_path, judgments_path),  # the config asked for
        held_out={
            k: held[k]
            for k in ("teacher_version", "train_pairs", "val_pairs", "best_epoch", "history")
        },
        seconds=round(time.perf_counter() - started, 1),
    )
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def train_single(
    items_path: Path, judgments_path: Path, out_dir: Path, cfg: Config
) -> dict[str, Any]:
    """One teacher. After every epoch a checkpoint goes to ``out_dir/checkpoint``; a rerun
    with the same config and data resumes from it (``teacher.resume``). A finished run
    removes it and writes the kept model's validation predictions.

    With ``teacher.refit`` (the second run of ``train_refit``) it trains on the training and
    validation queries for exactly ``teacher.epochs`` epochs and validates nothing."""
    tcfg, levels = cfg.teacher, cfg.data.levels
    seed_everything(tcfg.seed)
    items = read_table(items_path, "items")
    judgments = read_table(judgments_path, "judgments", levels)
    joined = join_items(judgments.table, items.table, "judgments")
    rows = joined.pairs.to_pylist()
    splits = np.array([split_of(r["query"], cfg.data) for r in rows])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError("too few queries to split into train and validation")
    if tcfg.refit:
        train_idx, val_idx = np.flatnonzero(splits != "test"), val_idx[:0]

    device = default_device()
    amp = autocast_dtype(tcfg.precision, device)
    model, tokenizer = build_teacher(tcfg, levels, device)
    texts = item_texts(tokenizer, joined.items, tcfg.fields, tcfg.field_max_tokens)
    enc = encode_pairs(tokenizer, [r["query"] for r in rows], texts, tcfg.max_length)
    labels = torch.tensor([r["label"] - 1 for r in rows], dtype=torch.long, device=device)
    has_weights = tcfg.use_weights and any(r["weight"] is not None for r in rows)
    weights = torch.tensor(
        [(r["weight"] if r["weight"] is not None else 1.0) if has_weights else 1.0 for r in rows],
        dtype=torch.float32,
        device=device,
    )

    def batch_inputs(idx: np.ndarray) -> dict[str, torch.Tensor]:
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    groups = parameter_groups(model, tcfg.learning_rate, tcfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=tcfg.learning_rate, weight_decay=tcfg.weight_decay)
    steps_per_epoch = -(-len(train_idx) // tcfg.batch_size)
    train_lengths = [len(enc["input_ids"][i]) for i in train_idx]
    trainer = Trainer(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in groups],
            total_steps=steps_per_epoch * tcfg.epochs,
            pct_start=tcfg.warmup,
        ),
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        rng=np.random.default_rng(tcfg.seed),
    )
    ckpt_dir, key = out_dir / CHECKPOINT_DIR, fingerprint(cfg, items_path, judgments_path)
    state = (load_checkpoint(ckpt_dir, trainer, key) if tcfg.resume else None) or TrainState()
    resumed_from = state.epoch
    started = time.perf_counter()
    epoch_seconds: list[float] = []  # this run's epochs (a resumed run has not timed the rest)
    while state.epoch < tcfg.epochs and not state.stopped:
        bar = tqdm(
            training_batches(train_lengths, tcfg.batch_size, trainer.rng, tcfg.bucket_by_length),
            desc=f"teacher epoch {state.epoch + 1}/{tcfg.epochs}",
            unit="batch",
        )
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(trainer, bar, train_idx, batch_inputs, labels, weights, tcfg)
        epoch_seconds.append(round(time.perf_counter() - epoch_started, 2))
        state.epoch += 1
        if tcfg.refit:  # nothing is held out: every epoch runs, the last is kept
            state.history.append({"epoch": state.epoch, "train_loss": train_loss})
            save_checkpoint(ckpt_dir, trainer, state, key)
            continue
        logits = _logits(model, batch_inputs, val_idx, tcfg.batch_size, device, amp)
        val_loss, val_acc, val_qwk = _evaluate(logits, labels[val_idx], tcfg)
        state.history.append(
            {
                "epoch": state.epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_acc": val_acc,
                "val_qwk": val_qwk,
            }
        )
        log.info("epoch %d: %s", state.epoch, state.history[-1])
        # The checkpoint's "best_loss" is whatever early stopping minimises.
        watched = val_loss if tcfg.early_stopping == "val_loss" else -val_qwk
        if watched < state.best_loss - 1e-4:
            state.best_loss, state.bad_epochs = watched, 0
            state.best_state = trainable_state(model)
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= tcfg.patience:
                log.info("early stop after epoch %d", state.epoch)
                state.stopped = True
        save_checkpoint(ckpt_dir, trainer, state, key)
    if state.best_state is not None:
        load_trainable(model, state.best_state)
    if len(val_idx):
        logits = _logits(model, batch_inputs, val_idx, tcfg.batch_size, device, amp)
        _write_predictions(out_dir / PREDICTIONS_FILE, rows, val_idx, logits, levels)

    meta = TeacherMeta(
        base_model=tcfg.base_model,
        levels=levels,
        fields=list(tcfg.fields),
        field_max_tokens=tcfg.field_max_tokens,
        max_length=tcfg.max_length,
        quantize=tcfg.quantize,
        precision=tcfg.precision,
        finetune=tcfg.finetune,
        history=state.history,
    )
    meta = save_teacher(model, tokenizer, meta, out_dir)
    # The run is whole: optimizer state and RNGs would only weigh down the teacher artifact
    # that labeling jobs download.
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    quarantine = [
        q for q in (items.quarantine, judgments.quarantine, joined.quarantine) if q.num_rows
    ]
    if quarantine:
        write_quarantine(pa.concat_tables(quarantine), out_dir / "quarantine.parquet")
    best_epoch = (
        len(state.history) if tcfg.refit else _best_epoch(state.history, tcfg.early_stopping)
    )
    summary = {
        "stage": "teacher-train",
        "teacher_version": meta.version,
        "base_model": tcfg.base_model,
        "levels": levels,
        "train_pairs": len(train_idx),
        "val_pairs": len(val_idx),
        "finetune": tcfg.finetune,
        "objective": tcfg.objective,
        "epochs_run": len(state.history),
        "resumed_from_epoch": resumed_from,
        "early_stopping": tcfg.early_stopping,
        "best_epoch": best_epoch,
        "best_val_loss": state.history[best_epoch - 1].get("val_loss") if best_epoch else None,
        "history": state.history,
        "seconds": round(time.perf_counter() - started, 1),
        "epoch_train_seconds": epoch_seconds,
        # pairs per second of the optimizer loop alone (this run's epochs; no validation)
        "train_pairs_per_s": round(len(train_idx) * len(epoch_seconds) / sum(epoch_seconds), 2)
        if epoch_seconds
        else None,
        "fingerprint": key,
        "inputs": {"items": items.summary(), "judgments": judgments.summary()},
        "unknown_items": joined.quarantine.num_rows,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary


def _best_epoch(history: list[dict[str, float]], watched: str) -> int | None:
    """The epoch whose weights were kept (the first of equals, as early stopping keeps it);
    epochs are numbered from 1 and ``history`` holds them in order."""
    if not history:
        return None
    if watched == "val_loss":
        return int(min(history, key=lambda h: h["val_loss"])["epoch"])
    return int(max(history, key=lambda h: h["val_qwk"])["epoch"])


def _train_epoch(
    trainer: Trainer,
    batches: Any,
    train_idx: np.ndarray,
    batch_inputs: Any,
    labels: torch.Tensor,
    weights: torch.Tensor,
    tcfg: TeacherConfig,
) -> float:
    """One pass over the training pairs (mixed precision, clipped grads); the mean loss."""
    model, optimizer, scaler = trainer.model, trainer.optimizer, trainer.scaler
    amp = autocast_dtype(tcfg.precision, labels.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total, seen = 0.0, 0
    for b in batches:
        idx = train_idx[b]
        with autocast(labels.device, amp):
            logits = model(**batch_inputs(idx)).logits.float()
        loss_each = pair_losses(logits, labels[idx], tcfg)
        w = weights[idx]
        loss = (loss_each * w).sum() / w.sum()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients (a no-op unless fp16)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        scaler.step(optimizer)
        scaler.update()
        trainer.scheduler.step()
        total += float(loss.detach()) * len(idx)
        seen += len(idx)
        batches.set_postfix(loss=f"{total / seen:.3f}")
    return total / seen


@torch.inference_mode()
def _logits(
    model: torch.nn.Module,
    batch_inputs: Any,
    idx: np.ndarray,
    batch_size: int,
    device: torch.device,
    amp: torch.dtype | None,
) -> torch.Tensor:
    """The model's logits (fp32) for the pairs ``idx``, in that order."""
    model.eval()
    parts = []
    for start in range(0, len(idx), batch_size):
        with autocast(device, amp):
            parts.append(model(**batch_inputs(idx[start : start + batch_size])).logits.float())
    return torch.cat(parts)


@torch.inference_mode()
def _evaluate(
    logits: torch.Tensor, labels: torch.Tensor, tcfg: TeacherConfig
) -> tuple[float, float, float]:
    """The objective's mean loss (what early stopping watches), accuracy and QWK (argmax) on
    the validation pairs."""
    loss = float(pair_losses(logits, labels, tcfg).mean())
    y_pred, y_true = logits.argmax(-1).cpu().numpy(), labels.cpu().numpy()
    qwk = cohen_kappa_score(y_true, y_pred, weights="quadratic") if len(set(y_true)) > 1 else 0.0
    return loss, float((y_pred == y_true).mean()), float(np.nan_to_num(qwk))


def _write_predictions(
    path: Path, rows: list[dict[str, Any]], idx: np.ndarray, logits: torch.Tensor, levels: int
) -> None:
    """The validation pairs with their human label and the model's K probabilities."""
    probs = level_probs(logits)
    table = pa.Table.from_pylist(
        [
            {k: rows[i][k] for k in ("query", "locale", "item_id", "label")} | {"probs": list(p)}
            for i, p in zip(idx, probs, strict=True)
        ]
    )
    write_table(table, path, "validation_predictions", levels)
