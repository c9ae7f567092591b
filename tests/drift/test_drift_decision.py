"""Drift as Prometheus metrics (promtool-valid textfile) and the relabel decision: thresholds,
minimum window, cooldown; through the real drift job on shifted and unshifted windows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from searchrel.config import DriftConfig, load_config
from searchrel.drift.decide import decide
from searchrel.drift.job import drift_job
from searchrel.drift.prometheus import TEXTFILE, drift_registry
from searchrel.drift.verdict import Signal, Verdict
from searchrel.request_log import RequestLogger
from searchrel.tables import write_table
from tests.drift.test_drift_report import LEVELS, current_table, reference_table

HOUR = 3600.0


def verdict(
    features: bool = True,
    embeddings: bool = False,
    enough_data: bool = True,
    reason: str = "",
    locale_shares: dict[str, float] | None = None,
) -> Verdict:
    signals = [Signal("features", 0.5, 0.3, features), Signal("score", 0.2, 0.05, False),
               Signal("embeddings", 0.52, 0.55, embeddings)]  # fmt: skip
    return Verdict(reference_rows=400, current_rows=500, enough_data=enough_data,
                   signals=signals, locale_shares=locale_shares or {}, reason=reason)  # fmt: skip


def test_drift_triggers_once_then_waits_out_the_cooldown(tmp_path: Path) -> None:
    cfg, state = DriftConfig(cooldown_hours=24), tmp_path / "state.json"
    first = decide(verdict(), cfg, state, now=1000.0)
    assert first["relabel"] and first["reason"] == "drift: features"
    again = decide(verdict(), cfg, state, now=1000.0 + 23 * HOUR)
    assert not again["relabel"] and "cooldown" in again["reason"]
    later = decide(verdict(), cfg, state, now=1000.0 + 25 * HOUR)
    assert later["relabel"]


def test_no_signal_or_a_small_window_never_triggers(tmp_path: Path) -> None:
    cfg, state = DriftConfig(), tmp_path / "state.json"
    assert not decide(verdict(features=False), cfg, state)["relabel"]
    small = verdict(enough_data=False, reason="current window has 12 row(s), fewer than 100")
    assert decide(small, cfg, state)["reason"].startswith("current window has 12")
    assert not state.exists()


def test_only_the_configured_signals_trigger(tmp_path: Path) -> None:
    emb_only = verdict(features=False, embeddings=True)
    assert decide(emb_only, DriftConfig(), tmp_path / "a.json")["relabel"]
    assert not decide(emb_only, DriftConfig(trigger_on=["features"]), tmp_path / "b.json")[
        "relabel"
    ]


def test_the_decision_names_every_signal_and_a_missing_one_did_not_fire(tmp_path: Path) -> None:
    only_features = Verdict(100, 100, True, [Signal("features", 0.4, 0.3, True)])
    decision = decide(only_features, DriftConfig(), tmp_path / "s.json")
    assert decision == {"relabel": True, "reason": "drift: features", "features": True,
                        "embeddings": False, "score": False}  # fmt: skip


def test_a_signal_without_a_figure_exports_its_outcome_but_no_statistic() -> None:
    from prometheus_client import generate_latest

    skipped = Verdict(100, 100, True, [Signal("features", 0.1, 0.3, False),
                                       Signal("embeddings", None, None, False)])  # fmt: skip
    body = generate_latest(drift_registry(skipped, now=1.0)).decode()
    names = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert names["searchrel_drift_embedding_detected"] == 0
    assert "searchrel_drift_embedding_auc" not in names
    assert "searchrel_drift_score_detected" not in names  # the score was not tested


def test_a_new_signal_is_exported_without_touching_the_exporter() -> None:
    from prometheus_client import generate_latest

    from searchrel.drift.prometheus import signal_gauges

    novel = Signal("locale_mix", 0.7, 0.5, True)  # a name the exporter has no entry for
    assert signal_gauges(novel)[1][0] == "searchrel_drift_locale_mix_detected"
    body = generate_latest(drift_registry(Verdict(100, 100, True, [novel]), now=1.0)).decode()
    names = {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples}
    assert names["searchrel_drift_locale_mix_statistic"] == 0.7
    assert names["searchrel_drift_locale_mix_detected"] == 1


def test_the_textfile_has_every_gauge_and_passes_promtool(tmp_path: Path) -> None:
    v = verdict(locale_shares={"en-US": 0.25, "de-DE": 0.75})
    text = drift_registry(v, now=1234.0)
    from prometheus_client import generate_latest

    body = generate_latest(text).decode()
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert values[("searchrel_drift_share", ())] == 0.5
    assert values[("searchrel_drift_detected", ())] == 1
    assert values[("searchrel_drift_embedding_auc", ())] == 0.52
    assert values[("searchrel_drift_embedding_detected", ())] == 0
    assert values[("searchrel_drift_score_detected", ())] == 0
    assert values[("searchrel_drift_current_rows", ())] == 500
    assert values[("searchrel_drift_locale_share", (("locale", "de-DE"),))] == 0.75
    assert values[("searchrel_drift_last_run_timestamp_seconds", ())] == 1234.0
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (CI installs Debian's prometheus)")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_the_drift_job_exports_metrics_and_decides_on_real_windows(tmp_path: Path) -> None:
    cfg = load_config(overrides={"data": {"levels": LEVELS},
                                 "drift": {"min_window": 50, "cooldown_hours": 24}})  # fmt: skip
    reference = tmp_path / "reference.parquet"
    write_table(reference_table(), reference, "student_features", LEVELS)

    def window(name: str, shift: float) -> Path:
        logger = RequestLogger(tmp_path / name, 1.0)
        logger.log(current_table(seed=7, shift=shift).to_pylist())
        logger.close()
        return tmp_path / name

    state = tmp_path / "drift_state.json"
    calm = drift_job(reference, window("calm", 0.0), tmp_path / "out1", cfg, state)
    assert calm["decision"]["relabel"] is False
    shifted = drift_job(reference, window("shifted", 1.0), tmp_path / "out2", cfg, state)
    assert shifted["drift_detected"] and shifted["decision"]["relabel"] is True
    again = drift_job(reference, tmp_path / "shifted", tmp_path / "out3", cfg, state)
    assert again["decision"]["relabel"] is False  # the cooldown holds
    prom = (tmp_path / "out2" / TEXTFILE).read_text()
    assert "searchrel_drift_detected 1.0" in prom
    saved = json.loads((tmp_path / "out2" / "drift.json").read_text())
    assert saved == json.loads(json.dumps(shifted, default=str))  # the result, written once
    assert saved["decision"]["relabel"] is True
    assert {s["name"]: s["drifted"] for s in saved["signals"]}["features"] is True


def test_the_drift_window_is_the_last_hours_of_the_log_not_all_of_it() -> None:
    """The log grows forever; a check judges what is served now, not what a replaced
    student served days ago."""
    import datetime as dt

    import pyarrow as pa

    from searchrel.drift.job import recent_rows

    newest = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    hours_back = [0, 1, 23, 24, 25, 72]
    log = pa.table({
        "ts": pa.array([newest - dt.timedelta(hours=h) for h in hours_back],
                       type=pa.timestamp("ms", tz="UTC")),
        "request_id": [f"r{h}" for h in hours_back],
    })  # fmt: skip
    window, older = recent_rows(log, 24.0)
    assert window.column("request_id").to_pylist() == ["r0", "r1", "r23", "r24"]
    assert older == 2
    everything, none_older = recent_rows(log, 0.0)
    assert everything.num_rows == len(hours_back) and none_older == 0


@pytest.mark.slow
def test_shifted_traffic_older_than_the_window_does_not_trigger_a_relabel(tmp_path: Path) -> None:
    """Yesterday's student served the shifted rows three days ago; today's calm traffic is
    what the check judges. The same log read whole (window 0) does show the drift."""
    import datetime as dt

    reference = tmp_path / "reference.parquet"
    write_table(reference_table(), reference, "student_features", LEVELS)
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(hours=72)
    shifted = [{**row, "ts": old} for row in current_table(seed=7, shift=1.0).to_pylist()]
    calm = [{**row, "ts": now} for row in current_table(seed=8, shift=0.0).to_pylist()]
    logger = RequestLogger(tmp_path / "log", 1.0)
    logger.log(shifted)
    logger.log(calm)
    logger.close()

    def run(hours: float, out: str) -> dict[str, Any]:
        drift = {"min_window": 50, "window_hours": hours}
        cfg = load_config(overrides={"data": {"levels": LEVELS}, "drift": drift})
        return drift_job(reference, tmp_path / "log", tmp_path / out, cfg, tmp_path / out / "s")

    recent = run(24.0, "recent")
    assert recent["request_log"]["rows_before_the_window"] == len(shifted)
    assert recent["decision"]["relabel"] is False
    everything = run(0.0, "all")
    assert everything["request_log"]["rows_before_the_window"] == 0
    assert everything["drift_detected"]
