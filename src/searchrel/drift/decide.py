"""When drift triggers relabeling: the signals, a minimum window and a cooldown.

A signal that ``drift.trigger_on`` names must have fired (the features by default, or the query
embeddings; the score when named), on a window with enough rows on both sides; and the last
trigger must be older than ``drift.cooldown_hours``, so that one seasonal shift starts one
relabel + distillation run, not one an hour. The last trigger time lives in a small state file
beside the drift outputs (on a cluster: the drift job's volume).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, get_args

from searchrel.atomic_files import write_text_atomic
from searchrel.config import DriftConfig, DriftSignal
from searchrel.drift.verdict import Verdict

STATE_FILE = "drift_state.json"
SIGNAL_NAMES: tuple[str, ...] = get_args(DriftSignal)


def decide(
    verdict: Verdict, cfg: DriftConfig, state_path: Path, now: float | None = None
) -> dict[str, Any]:
    """{"relabel": bool, "reason": str, and each signal's outcome}; records the trigger time
    when it says relabel."""
    now = time.time() if now is None else now
    drifted: dict[str, bool] = {s.name: s.drifted for s in verdict.signals}
    signals = {name: drifted.get(name, False) for name in SIGNAL_NAMES}
    fired = [name for name in cfg.trigger_on if signals[name]]
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last = state.get("last_trigger")
    if not verdict.enough_data:
        return {"relabel": False, "reason": verdict.reason or "not enough data", **signals}
    if not fired:
        return {"relabel": False, "reason": "no drift signal", **signals}
    if last is not None and now - last < cfg.cooldown_hours * 3600:
        left = (cfg.cooldown_hours * 3600 - (now - last)) / 3600
        why = f"drift ({', '.join(fired)}) but in cooldown for {left:.1f} more hour(s)"
        return {"relabel": False, "reason": why, **signals}
    write_text_atomic(state_path, json.dumps({"last_trigger": now, "signals": fired}))
    return {"relabel": True, "reason": f"drift: {', '.join(fired)}", **signals}
