"""The ordinal objective: cross-entropy plus the squared error of the expected level."""

from __future__ import annotations

import math

import torch

from searchrel.config import TeacherConfig
from searchrel.teacher.losses import expected_level_error, pair_losses

# Three levels; softmax of log([0.2, 0.3, 0.5]) is exactly [0.2, 0.3, 0.5].
PROBS = torch.tensor([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
LOGITS = PROBS.log()
LABELS = torch.tensor([0, 2])  # levels 1 and 3, 0-based


def test_the_expected_level_error_is_the_squared_distance_of_the_mean_level() -> None:
    # E[level] = 0*0.2 + 1*0.3 + 2*0.5 = 1.3: (1.3 - 0)^2 = 1.69, (1.3 - 2)^2 = 0.49
    torch.testing.assert_close(expected_level_error(LOGITS, LABELS), torch.tensor([1.69, 0.49]))


def test_ordinal_adds_the_weighted_level_error_to_cross_entropy_and_ce_is_plain() -> None:
    ce = torch.tensor([-math.log(0.2), -math.log(0.5)])
    torch.testing.assert_close(pair_losses(LOGITS, LABELS, TeacherConfig()), ce)
    ordinal = TeacherConfig(objective="ordinal", ordinal_weight=0.5)
    expected = ce + 0.5 * torch.tensor([1.69, 0.49])
    torch.testing.assert_close(pair_losses(LOGITS, LABELS, ordinal), expected)


def test_ordinal_costs_more_for_mass_far_from_the_label_than_next_to_it() -> None:
    # Same probability on the true level (0.5); the rest one level away or two levels away.
    near = torch.tensor([[0.0, 0.5, 0.5]]).clamp_min(1e-9).log()
    far = torch.tensor([[0.5, 0.0, 0.5]]).clamp_min(1e-9).log()
    label = torch.tensor([2])
    ce, ordinal = TeacherConfig(), TeacherConfig(objective="ordinal")
    torch.testing.assert_close(pair_losses(near, label, ce), pair_losses(far, label, ce))
    assert pair_losses(far, label, ordinal) > pair_losses(near, label, ordinal)


def test_the_ordinal_loss_has_gradients_that_move_mass_towards_the_label() -> None:
    logits = torch.zeros(1, 4, requires_grad=True)
    pair_losses(logits, torch.tensor([3]), TeacherConfig(objective="ordinal")).sum().backward()
    assert logits.grad is not None
    assert logits.grad[0, 3] < 0 < logits.grad[0, 0]  # descent raises level 4, lowers level 1
