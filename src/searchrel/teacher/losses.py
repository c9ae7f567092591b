"""The teacher's training objectives, per example (the caller weights and averages them).

Cross-entropy treats the K levels as unordered classes: predicting 1 for a 4 costs what
predicting 3 does. Quadratic weighted kappa, and every ranking that reads the expected score,
punish the distance between levels. ``ordinal`` adds the squared error of the expected level
to cross-entropy, so probability mass far from the label costs more than mass next to it,
while the head still emits K probabilities (the soft labels the student learns from).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from searchrel.config import TeacherConfig


def expected_level_error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(E[level] - label)^2 per example, levels counted 0..K-1 (labels are 0-based)."""
    levels = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    expected = (torch.softmax(logits, dim=-1) * levels).sum(dim=-1)
    return (expected - labels.to(logits.dtype)) ** 2


def pair_losses(logits: torch.Tensor, labels: torch.Tensor, cfg: TeacherConfig) -> torch.Tensor:
    """The configured objective for each pair: ``ce`` or ``ordinal`` (ce + weight x error)."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    if cfg.objective == "ordinal":
        return ce + cfg.ordinal_weight * expected_level_error(logits, labels)
    return ce
