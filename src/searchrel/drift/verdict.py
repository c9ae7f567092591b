"""The drift verdict as data: the signals that decide a relabel, each with its figure.

A ``Signal`` is one test of the served window against the training rows: its ``name`` is what
``drift.trigger_on`` lists, ``statistic`` what it measured, ``threshold`` what the statistic
was held against and ``drifted`` the outcome. The report makes the signals; the decision and
the Prometheus exporter iterate them, so a new signal is a new entry in the report's list (and
its name in ``config.DriftSignal``), not a new key read in three modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from searchrel.config import DriftSignal


@dataclass(frozen=True)
class Signal:
    name: DriftSignal
    statistic: float | None  # None: not computed (too few rows or queries on a side)
    threshold: float | None
    drifted: bool


@dataclass
class Verdict:
    """The signals of one drift check, and the figures behind them (``details``: per column,
    per locale, sampling, thresholds, the report's paths)."""

    reference_rows: int
    current_rows: int
    enough_data: bool  # both sides had ``min_window`` rows; no signal fires without
    signals: list[Signal] = field(default_factory=list)
    locale_shares: dict[str, float] = field(default_factory=dict)  # drifted-feature share
    reason: str = ""  # why there is no verdict ("" when there is one)
    details: dict[str, Any] = field(default_factory=dict)

    def signal(self, name: DriftSignal) -> Signal | None:
        return next((s for s in self.signals if s.name == name), None)

    @property
    def drift_detected(self) -> bool:
        """The headline: the drifted share of the scalar features reached ``drift_share``."""
        features = self.signal("features")
        return features is not None and features.drifted

    def to_json(self) -> dict[str, Any]:
        """drift.json's body: the figures, the headline and the signals."""
        out: dict[str, Any] = {
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "enough_data": self.enough_data,
            "drift_detected": self.drift_detected,
            **self.details,
            "signals": [asdict(s) for s in self.signals],
        }
        if self.reason:
            out["reason"] = self.reason
        return out
