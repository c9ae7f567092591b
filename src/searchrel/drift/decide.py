"""When drift triggers relabeling: thresholds, a minimum window and a cooldown.

The verdict must say drift (the feature-share rule, with enough rows on both sides), or the
query embeddings or the score distribution must have drifted when ``drift.trigger_on`` names
them; and the last trigger must be older than ``drift.cooldown_hours``, so that one seasonal
shift starts one relabel + distillation run, not one an hour. The last trigger time lives in a
small state file beside the drift outputs (on a cluster: the drift job's volume).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from searchrel.atomic_files import write_text_atomic
from searchrel.config import DriftConfig

STATE_FILE = "drift_state.json"


def decide(
    verdict: dict[str, Any], cfg: DriftConfig, state_path: Path, now: float | None = None
) -> dict[str, Any]:
    """{"relabel": bool, "reason": str}; records the trigger time when it says relabel."""
    now = time.time() if now is None else now
    signals = {
        "features": bool(verdict.get("drift_detected")),
        "embeddings": bool((verdict.get("embedding_drift") or {}).get("drift_detected")),
        "score": bool((verdict.get("score_drift") or {}).get("drift_detected")),
    }
    fired = [name for name in cfg.trigger_on if signals[name]]
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    last = state.get("last_trigger")
    if not verdict.get("enough_data"):
        return {"relabel": False, "reason": verdict.get("reason", "not enough data"), **signals}
    if not fired:
        return {"relabel": False, "reason": "no drift signal", **signals}
    if last is not None and now - last < cfg.cooldown_hours * 3600:
        left = (cfg.cooldown_hours * 3600 - (now - last)) / 3600
        why = f"drift ({', '.join(fired)}) but in cooldown for {left:.1f} more hour(s)"
        return {"relabel": False, "reason": why, **signals}
    write_text_atomic(state_path, json.dumps({"last_trigger": now, "signals": fired}))
    return {"relabel": True, "reason": f"drift: {', '.join(fired)}", **signals}
