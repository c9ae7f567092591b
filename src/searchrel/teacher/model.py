"""The teacher: a K-class cross-encoder (any Hugging Face backbone) with LoRA adapters.

The classification head is in ``modules_to_save`` so that it is trained and saved with the
adapters; the saved directory holds the adapters, the head, the tokenizer and ``teacher.json``.
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
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from searchrel.config import TeacherConfig
from searchrel.model_source import resolve_model_source
from searchrel.teacher.encoding import encode_pairs, item_texts

META_FILE = "teacher.json"
ADAPTER_DIR = "adapter"


@dataclass
class TeacherMeta:
    """What a saved teacher needs to be loaded and used exactly as it was trained."""

    base_model: str  # the source as configured (pkg:..., a path or a hub id)
    levels: int
    fields: list[str]
    field_max_tokens: int
    max_length: int
    version: str = ""
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, directory: Path) -> None:
        (directory / META_FILE).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> TeacherMeta:
        return cls(**json.loads((directory / META_FILE).read_text(encoding="utf-8")))


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:  # decoders (Llama, Gemma, Qwen) ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_teacher(cfg: TeacherConfig, levels: int) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """A fresh LoRA cross-encoder on the configured backbone."""
    path = resolve_model_source(cfg.base_model)
    tokenizer = load_tokenizer(path)
    base: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=levels
    )
    base.config.pad_token_id = tokenizer.pad_token_id  # decoders pool the last non-pad token
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        modules_to_save=_head_modules(base),
    )
    return get_peft_model(base, lora), tokenizer


def _head_modules(model: PreTrainedModel) -> list[str]:
    """The name of the classification head: `classifier` (BERT-like) or `score` (decoders)."""
    names = {n.split(".")[0] for n, _ in model.named_children()}
    return [h for h in ("classifier", "score") if h in names]


def adapter_version(directory: Path) -> str:
    """A content hash of the saved adapters: the teacher version written with every label."""
    digest = hashlib.sha256()
    for path in sorted((directory / ADAPTER_DIR).glob("*.safetensors")):
        digest.update(path.read_bytes())
    return f"teacher-{digest.hexdigest()[:12]}"


def save_teacher(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, meta: TeacherMeta, directory: Path
) -> TeacherMeta:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory / ADAPTER_DIR))
    tokenizer.save_pretrained(str(directory / ADAPTER_DIR))
    meta.version = adapter_version(directory)
    meta.save(directory)
    return meta


class TeacherScorer:
    """A saved teacher, ready to score pairs: adapters merged, inference mode, sorted batches."""

    def __init__(self, directory: str | Path, device: str | None = None):
        self.directory = Path(directory)
        self.meta = TeacherMeta.load(self.directory)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        base_path = resolve_model_source(self.meta.base_model)
        self.tokenizer = load_tokenizer(str(self.directory / ADAPTER_DIR))
        base = AutoModelForSequenceClassification.from_pretrained(
            base_path, num_labels=self.meta.levels
        )
        base.config.pad_token_id = self.tokenizer.pad_token_id
        peft_model = PeftModel.from_pretrained(base, str(self.directory / ADAPTER_DIR))
        self.model = peft_model.merge_and_unload().to(self.device).eval()

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
    ) -> np.ndarray:
        """K probabilities per pair; batches of similar length so padding is small."""
        enc = encode_pairs(self.tokenizer, queries, texts, self.meta.max_length)
        ids: list[list[int]] = enc["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), self.meta.levels), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = self.tokenizer.pad(
                {k: [enc[k][i] for i in idx] for k in enc}, return_tensors="pt"
            ).to(self.device)
            logits = self.model(**batch).logits.float()
            out[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
            if progress is not None:
                progress(len(idx))
        return out
