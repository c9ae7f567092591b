"""The student: a small feed-forward network over precomputed features.

Input standardisation lives inside the network (buffers), so the exported program is
self-contained: the server feeds raw features and gets K probabilities back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from searchrel.features.store import ENCODER_GRAPH_DIR

# The serving bundle: what `student train` writes and the server loads.
PROGRAM_FILE = "student.pt2"
META_FILE = "student.json"
BUNDLE_STORE_DIR = "item_store"  # the item store the server featurizes candidates from
BUNDLE_ENCODER_DIR = ENCODER_GRAPH_DIR  # the exported ONNX query encoder, when there is one
MAX_BATCH = 4096  # the exported program accepts 1..MAX_BATCH rows per call


class StudentNet(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, in_dim: int, hidden: list[int], levels: int, dropout: float):
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, levels))
        self.mlp = nn.Sequential(*layers)

    def set_normalisation(self, x: np.ndarray) -> None:
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        std[std < 1e-6] = 1.0  # constant columns pass through unscaled
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(std))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


@dataclass
class StudentMeta:
    levels: int
    in_dim: int
    embedding_dim: int
    scalar_features: list[str]
    hidden: list[int]
    embedder: str
    version: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    # When the bundle was exported, ISO 8601 in UTC; "" in bundles exported before it was
    # recorded. Kept out of `version` (the program's hash), so a re-export of the same network
    # keeps its version. The server publishes it as the model's age.
    created: str = ""

    def created_timestamp(self) -> float | None:
        return dt.datetime.fromisoformat(self.created).timestamp() if self.created else None

    def save(self, directory: Path) -> None:
        (directory / META_FILE).write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> StudentMeta:
        return cls(**json.loads((directory / META_FILE).read_text(encoding="utf-8")))


def export_student(net: StudentNet, meta: StudentMeta, directory: Path) -> StudentMeta:
    """Save a torch.export program (batch dimension dynamic) and the metadata beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    example = (torch.zeros(2, meta.in_dim),)
    program = torch.export.export(net, example, dynamic_shapes=({0: batch},))
    path = directory / PROGRAM_FILE
    torch.export.save(program, str(path))
    meta.version = "student-" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    meta.created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    meta.save(directory)
    return meta


class ExportedStudent:
    """The exported student loaded for inference (no Python model code needed)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.meta = StudentMeta.load(self.directory)
        self.module: Any = torch.export.load(str(self.directory / PROGRAM_FILE)).module()

    @torch.inference_mode()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = [
            self.module(torch.from_numpy(np.ascontiguousarray(x[i : i + MAX_BATCH]))).numpy()
            for i in range(0, len(x), MAX_BATCH)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.meta.levels), np.float32)
