"""The teacher: a K-class cross-encoder (any Hugging Face backbone), LoRA or fully fine-tuned.

``teacher.finetune: lora`` trains adapters on a frozen (optionally 4-bit) base; the head is in
``modules_to_save`` so that it is trained and saved with them, and the saved directory holds
``adapter/`` (adapters, head, tokenizer) and ``teacher.json``. ``finetune: full`` trains every
weight of a small encoder and saves the whole model once as safetensors in ``model/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedTokenizerBase

from searchrel.config import TeacherConfig
from searchrel.model_source import resolve_model_source
from searchrel.teacher.backbone import (
    autocast,
    autocast_dtype,
    default_device,
    head_modules,
    load_backbone,
    load_tokenizer,
    prepare_for_training,
    target_modules,
)
from searchrel.teacher.batching import pad_batch, token_budget_batches
from searchrel.teacher.encoding import encode_pairs, item_texts

__all__ = ["TeacherMeta", "TeacherScorer", "build_teacher", "load_tokenizer", "save_teacher"]

META_FILE = "teacher.json"
ADAPTER_DIR = "adapter"  # finetune lora: the adapters, the head and the tokenizer
MODEL_DIR = "model"  # finetune full: the whole model (safetensors) and the tokenizer


@dataclass
class TeacherMeta:
    """What a saved teacher needs to be loaded and used exactly as it was trained."""

    base_model: str  # the source as configured (pkg:..., a path or a hub id)
    levels: int
    fields: list[str]
    field_max_tokens: int
    max_length: int
    quantize: str = "none"  # how the base was loaded for training; scoring loads it alike
    precision: str = "auto"
    finetune: str = "lora"  # lora: adapters in adapter/; full: the whole model in model/
    version: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, directory: Path) -> None:
        (directory / META_FILE).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> TeacherMeta:
        return cls(**json.loads((directory / META_FILE).read_text(encoding="utf-8")))

    @property
    def weights_dir(self) -> str:
        """The subdirectory with the trained weights and the tokenizer."""
        return MODEL_DIR if self.finetune == "full" else ADAPTER_DIR


def build_teacher(
    cfg: TeacherConfig, levels: int, device: torch.device | None = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A fresh cross-encoder on the configured backbone, ready to train: LoRA (or qLoRA)
    adapters on a frozen base, or, with ``finetune: full``, the whole model trainable."""
    device = device or default_device()
    path = resolve_model_source(cfg.base_model)
    tokenizer = load_tokenizer(path)
    amp = autocast_dtype(cfg.precision, device)
    base = load_backbone(
        path, levels, tokenizer.pad_token_id, cfg.quantize, device, amp, cfg.attn_implementation
    )
    prepare_for_training(base, cfg.quantize == "4bit", cfg.gradient_checkpointing)
    if cfg.finetune == "full":
        base.requires_grad_(True)
        return base, tokenizer
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=target_modules(base, cfg.target_modules),
        modules_to_save=head_modules(base),
    )
    model = get_peft_model(base, lora)
    for param in model.parameters():
        if param.requires_grad:  # adapters and head train in fp32 under any precision
            param.data = param.data.float()
    return model, tokenizer


def weights_version(directory: Path, meta: TeacherMeta) -> str:
    """A content hash of the saved weights (adapters, or the whole fine-tuned model): the
    teacher version written with every label."""
    digest = hashlib.sha256()
    for path in sorted((directory / meta.weights_dir).glob("*.safetensors")):
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return f"teacher-{digest.hexdigest()[:12]}"


def save_teacher(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    meta: TeacherMeta,
    directory: Path,
) -> TeacherMeta:
    """Write the weights (adapters, or the whole model once as safetensors), the tokenizer and
    ``teacher.json``; the returned meta carries the version."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / meta.weights_dir
    model.save_pretrained(str(weights))  # type: ignore[operator]  # PeftModel or PreTrainedModel
    tokenizer.save_pretrained(str(weights))
    meta.version = weights_version(directory, meta)
    meta.save(directory)
    return meta


def level_probs(logits: torch.Tensor) -> np.ndarray:
    """The K level probabilities a teacher's logits stand for, level 1 first (every objective
    trains its logits to be read this way)."""
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


class TeacherScorer:
    """A saved teacher, ready to score pairs: adapters merged, inference mode, sorted batches."""

    def __init__(
        self,
        directory: str | Path,
        device: str | None = None,
        precision: str | None = None,
        attn_implementation: str = "auto",
    ):
        """``precision`` overrides the training precision for scoring (bf16 on a GPU, or on a
        CPU with AVX512-BF16; "auto" is fp32 on CPU). ``attn_implementation``: auto, sdpa,
        eager or flash_attention_2 (``teacher.attn_implementation``)."""
        self.directory = Path(directory)
        self.meta = TeacherMeta.load(self.directory)
        self.device = torch.device(device) if device else default_device()
        self.amp = autocast_dtype(precision or self.meta.precision, self.device)
        weights = str(self.directory / self.meta.weights_dir)
        self.tokenizer = load_tokenizer(weights)
        full = self.meta.finetune == "full"
        base = load_backbone(
            weights if full else resolve_model_source(self.meta.base_model),
            self.meta.levels,
            self.tokenizer.pad_token_id,
            self.meta.quantize,
            self.device,
            self.amp,
            attn_implementation,
        )
        if full:
            self.model: torch.nn.Module = base.eval()
            return
        peft_model = PeftModel.from_pretrained(base, weights)
        # Adapters merge into full-precision weights; on a 4-bit base they stay beside it.
        model = peft_model if self.meta.quantize == "4bit" else peft_model.merge_and_unload()
        self.model = model.eval()

    @property
    def version(self) -> str:
        return self.meta.version

    def item_texts(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        return item_texts(self.tokenizer, items, self.meta.fields, self.meta.field_max_tokens)

    @torch.inference_mode()
    def predict_proba(
        self,
        queries: Sequence[str],
        texts: Sequence[str],
        batch_size: int = 64,
        progress: Any = None,
        max_batch_tokens: int | None = None,
    ) -> np.ndarray:
        """K probabilities per pair; length-sorted batches under a token budget (little padding)."""
        enc = encode_pairs(self.tokenizer, queries, texts, self.meta.max_length)
        ids: list[list[int]] = enc["input_ids"]
        lengths = [len(x) for x in ids]
        budget = max_batch_tokens or batch_size * self.meta.max_length
        out = np.zeros((len(ids), self.meta.levels), dtype=np.float32)
        pad_id = int(self.tokenizer.pad_token_id)
        for idx in token_budget_batches(lengths, batch_size, budget):
            arrays = pad_batch(enc, idx.tolist(), pad_id, self.tokenizer.padding_side)
            batch = {k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()}
            with autocast(self.device, self.amp):
                logits = self.model(**batch).logits.float()
            out[idx] = level_probs(logits)
            if progress is not None:
                progress(len(idx))
        return out
