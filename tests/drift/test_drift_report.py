"""Evidently drift of served rows against training rows, on synthetic data with known shifts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from searchrel.config import DriftConfig
from searchrel.drift import report
from searchrel.drift.report import SCORE_COLUMN, _sample, run_drift
from searchrel.schema import REQUEST_LOG, SCALAR_FEATURES, STUDENT_FEATURES

LEVELS = 5
DIM = 16
# Small windows keep this fast: Evidently's EmbeddingsDrift runs a t-SNE (for its plot) on every
# row up to 2,500 a side, about 10 ms a row on 2 cores. At most 1,000 reference rows, Evidently
# picks K-S (p-values) for continuous columns and a Z-test for 0/1 ones.
REF_ROWS = 480
CUR_ROWS = 240
LOCALES = ("en-US", "de-DE")
# Shifted by about two standard deviations in the "shifted" window (7 of 18 columns: 0.39).
SHIFTED = (
    "cosine",
    "bm25_title",
    "bm25_all",
    "term_coverage_all",
    "query_length",
    "item_click_rate",
    "item_log_impressions",
)
DE_ONLY = "item_save_rate"  # shifted in de-DE rows only
CFG = DriftConfig(min_window=50)  # drift_share 0.3, stattest_threshold 0.05


def features(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Scalar features shaped like the real ones; ``shift`` in standard deviations for SHIFTED."""
    out: dict[str, np.ndarray] = {}
    for name in SCALAR_FEATURES:
        if name == "query_length":
            values = rng.integers(1, 9, n).astype(float)  # sd ~2.3
            sd = 2.3
        elif name.startswith("exact_phrase"):
            values = rng.binomial(1, 0.3, n).astype(float)
            sd = 0.46
        elif name == "bm25_link_text":
            values = np.zeros(n)  # a constant column (no link text anywhere)
            sd = 0.0
        elif name.startswith("bm25"):
            values = rng.gamma(2.0, 1.5, n)
            sd = 2.1
        elif name.startswith("item_") and name.endswith("_rate"):
            values = rng.beta(2, 20, n)
            sd = 0.06
        elif name == "item_log_impressions":
            values = rng.normal(5.0, 1.0, n)
            sd = 1.0
        else:  # cosine, coverage, fuzzy
            values = rng.normal(0.4, 0.15, n)
            sd = 0.15
        if name in SHIFTED:
            values = values + 2.0 * shift * sd
        out[name] = values
    return out


def query_embeddings(rng: np.random.Generator, n: int, shift: float) -> list[list[float]]:
    """One embedding per query, shared by its rows (row i is of query i // 4, as in the tables)."""
    center = np.zeros(DIM)
    center[: DIM // 2] = shift
    per_query = rng.normal(center, 1.0, size=((n + 3) // 4, DIM))
    return per_query[np.arange(n) // 4].astype(np.float32).tolist()


def locales(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.asarray(rng.choice(LOCALES, n, p=[0.6, 0.4]), dtype=object)
    out[:5] = "fr-FR"  # a locale too small to judge on its own
    return out


def reference_table(seed: int = 1, n: int = REF_ROWS) -> pa.Table:
    rng = np.random.default_rng(seed)
    targets = rng.dirichlet(np.ones(LEVELS) * 2, n).astype(np.float32)
    data: dict[str, Any] = {
        "query": [f"q{i // 4}" for i in range(n)],
        "locale": locales(rng, n).tolist(),
        "item_id": [f"i{i}" for i in range(n)],
        "source": ["teacher"] * n,
        "split": ["train"] * n,
        "target": targets.tolist(),
        "weight": np.ones(n, dtype=np.float32),
        "query_embedding": query_embeddings(rng, n, 0.0),
        "item_embedding": rng.normal(size=(n, DIM)).astype(np.float32).tolist(),
        **{k: v.astype(np.float32) for k, v in features(rng, n).items()},
    }
    return pa.Table.from_pydict(data, schema=STUDENT_FEATURES)


def current_table(seed: int, n: int = CUR_ROWS, shift: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(LEVELS) * 2, n)
    if shift:  # the student scores the new traffic lower
        probs = rng.dirichlet([6, 3, 1, 0.5, 0.5], n)
    feats = features(rng, n, shift)
    locs = locales(rng, n)
    if shift:
        feats[DE_ONLY] = np.where(locs == "de-DE", feats[DE_ONLY] + 0.15, feats[DE_ONLY])
    data: dict[str, Any] = {
        "ts": pa.array(np.full(n, 1_714_566_615_000), type=pa.timestamp("ms", tz="UTC")),
        "request_id": [f"r{i // 10}" for i in range(n)],
        "query": [f"served {i // 4}" for i in range(n)],
        "locale": locs.tolist(),
        "item_id": [f"i{i}" for i in range(n)],
        "query_embedding": query_embeddings(rng, n, 1.5 * shift),
        **{k: v.astype(np.float32) for k, v in feats.items()},
        "probs": probs.astype(np.float32).tolist(),
        "expected_score": (probs @ np.arange(1, LEVELS + 1)).astype(np.float32),
        "model_version": ["student-v1"] * n,
    }
    return pa.Table.from_pydict(data, schema=REQUEST_LOG)


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    return reference_table()


@pytest.fixture(scope="module")
def same(reference: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("same")
    return run_drift(reference, current_table(seed=2), CFG, out).to_json()


@pytest.fixture(scope="module")
def shifted_current() -> pa.Table:
    return current_table(seed=3, shift=1.0)


@pytest.fixture(scope="module")
def shifted(
    reference: pa.Table, shifted_current: pa.Table, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("shifted")
    return run_drift(reference, shifted_current, CFG, out).to_json()


def test_same_distribution_is_not_drift(same: dict[str, Any]) -> None:
    assert same["enough_data"] is True
    assert same["drift_detected"] is False
    assert same["drift_share"] < CFG.drift_share
    assert len(same["drifted_columns"]) <= 2  # a false positive or two at p < 0.05 is chance
    assert same["reference_rows"] == REF_ROWS and same["current_rows"] == CUR_ROWS
    assert same["sampling"]["subsampled"] is False
    emb = same["embedding_drift"]
    assert emb["drift_detected"] is False
    assert 0.3 < emb["score"] < emb["threshold"]  # ROC AUC near 0.5: no signal
    assert emb["threshold"] == max(0.55, emb["chance_auc_95"]) > 0.55  # a small window
    assert same["score_drift"]["drift_detected"] is False
    for name, column in same["columns"].items():
        assert column["method"] in {"ks", "z", "chisquare"}, name
    assert set(same["per_locale"]) == set(LOCALES)
    assert set(same["locales_skipped"]) == {"fr-FR"}
    for locale in LOCALES:
        assert same["per_locale"][locale]["drift_detected"] is False


def test_shifted_window_is_drift_with_the_shifted_columns_named(shifted: dict[str, Any]) -> None:
    assert shifted["enough_data"] is True
    assert shifted["drift_detected"] is True
    drifted = set(shifted["drifted_columns"])
    assert set(SHIFTED) <= drifted
    assert len(drifted - set(SHIFTED) - {DE_ONLY}) <= 2
    assert "bm25_link_text" not in drifted  # constant on both sides
    assert shifted["drift_share"] == pytest.approx(len(drifted) / len(SCALAR_FEATURES))
    assert shifted["drift_share"] >= CFG.drift_share
    assert "reason" not in shifted

    emb = shifted["embedding_drift"]
    assert emb["drift_detected"] is True and emb["score"] > 0.8 and emb["dim"] == DIM
    score = shifted["score_drift"]
    assert score["drift_detected"] is True
    assert score["current_mean"] < score["reference_mean"] - 0.8  # 3.0 vs about 1.8

    de, en = shifted["per_locale"]["de-DE"], shifted["per_locale"]["en-US"]
    assert de["drift_detected"] and en["drift_detected"]
    assert DE_ONLY in de["drifted_columns"]
    assert DE_ONLY not in en["drifted_columns"]
    assert de["current_rows"] + en["current_rows"] + 5 == CUR_ROWS


def test_figures_are_computed_not_constant(
    same: dict[str, Any], shifted: dict[str, Any], reference: pa.Table, shifted_current: pa.Table
) -> None:
    # The K-S p-value Evidently reports is the one scipy computes on the same columns.
    for name in ("cosine", "item_click_rate", "fuzzy_title"):
        expected = stats.ks_2samp(
            reference.column(name).to_numpy(), shifted_current.column(name).to_numpy()
        ).pvalue
        assert shifted["columns"][name]["score"] == pytest.approx(expected, rel=1e-3, abs=1e-6)
    for name in SHIFTED:
        assert shifted["columns"][name]["score"] < 1e-6 < same["columns"][name]["score"]
    column = shifted["columns"]["cosine"]
    assert column["current_mean"] - column["reference_mean"] == pytest.approx(0.3, abs=0.05)
    ref_score = np.asarray(reference.column("target").to_pylist()) @ np.arange(1, LEVELS + 1)
    assert shifted["score_drift"]["reference_mean"] == pytest.approx(ref_score.mean(), rel=1e-4)
    assert same["score_drift"]["score"] != shifted["score_drift"]["score"]


def test_outputs_written(shifted: dict[str, Any]) -> None:
    html_path = Path(shifted["report_html"])
    assert html_path.name == "drift_report.html"
    page = html_path.read_text(encoding="utf-8")
    assert len(page) > 50_000 and "<html" in page.lower()
    assert "cosine" in page and "item_log_impressions" in page and SCORE_COLUMN in page
    # One page: the feature report and the embeddings report, each under its title.
    assert "Scalar features and predicted score" in page
    assert "Query embeddings (one row per distinct query)" in page
    assert "Drift in embeddings 'query_embedding'" in page
    assert "embeddings_html" not in shifted
    assert shifted["thresholds"]["drift_share"] == CFG.drift_share


def test_each_signal_carries_the_figure_it_was_decided_on(
    same: dict[str, Any], shifted: dict[str, Any]
) -> None:
    for verdict in (same, shifted):
        signals = {s["name"]: s for s in verdict["signals"]}
        assert set(signals) == {"features", "score", "embeddings"}
        features, score, emb = signals["features"], signals["score"], signals["embeddings"]
        assert features["statistic"] == verdict["drift_share"]
        assert features["threshold"] == CFG.drift_share
        assert features["drifted"] is verdict["drift_detected"]
        assert score["statistic"] == verdict["score_drift"]["score"]
        assert score["drifted"] is verdict["score_drift"]["drift_detected"]
        assert emb["statistic"] == verdict["embedding_drift"]["score"]
        assert emb["threshold"] == verdict["embedding_drift"]["threshold"]
    assert not any(s["drifted"] for s in same["signals"])
    assert all(s["drifted"] for s in shifted["signals"])


def test_too_small_window_gives_no_verdict_but_a_reason(
    reference: pa.Table, tmp_path: Path
) -> None:
    small = current_table(seed=4, n=40, shift=1.0)  # shifted, but too few rows to say so
    verdict = run_drift(reference, small, CFG, tmp_path, max_rows=200).to_json()
    assert verdict["enough_data"] is False
    assert verdict["drift_detected"] is False
    assert "40" in verdict["reason"] and str(CFG.min_window) in verdict["reason"]
    assert verdict["embedding_drift"]["skipped"] == "not enough data"
    assert verdict["per_locale"] == {}
    assert verdict["sampling"] == {
        "max_rows": 200,
        "seed": 0,
        "reference_rows_used": 200,
        "current_rows_used": 40,
        "subsampled": True,
    }
    assert verdict["drift_share"] is not None  # figures still computed, for the HTML
    page = (tmp_path / "drift_report.html").read_text(encoding="utf-8")
    assert len(page) > 50_000


def test_empty_window_writes_a_placeholder(reference: pa.Table, tmp_path: Path) -> None:
    verdict = run_drift(reference, REQUEST_LOG.empty_table(), CFG, tmp_path)
    assert verdict.drift_detected is False and verdict.current_rows == 0
    assert not verdict.enough_data and "0 row(s)" in verdict.reason
    assert [s.name for s in verdict.signals] == ["features"]
    assert verdict.signals[0].statistic is None
    assert "fewer than" in (tmp_path / "drift_report.html").read_text(encoding="utf-8")


def test_embedding_drift_can_be_turned_off(
    reference: pa.Table, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = DriftConfig(min_window=50, embedding_drift=False)
    with caplog.at_level("WARNING", logger="searchrel.drift.report"):
        verdict = run_drift(reference, current_table(seed=5, n=100), cfg, tmp_path).to_json()
    assert verdict["embedding_drift"] is None
    assert "embeddings" not in {s["name"] for s in verdict["signals"]}
    assert verdict["thresholds"]["embedding_auc"] is None
    assert not caplog.records  # Evidently ran the tests planned, and counted as we did


def test_large_reference_uses_distances_with_their_own_threshold(tmp_path: Path) -> None:
    """Above 1,000 reference rows Evidently uses distances: 0.05 is a p-value, not for them."""
    big = reference_table(seed=9, n=1_200)
    # Distances do not shrink with the window: at 300 rows two samples of one distribution are
    # often 0.1 apart (2-3 of 18 columns flag by chance); at 1,000 rows about 0.07.
    cur = current_table(seed=10, n=1_000)
    cfg = DriftConfig(min_window=50, embedding_drift=False)
    verdict = run_drift(big, cur, cfg, tmp_path / "default").to_json()
    methods = {c["method"] for c in verdict["columns"].values()}
    assert methods == {"wasserstein", "jensenshannon"}  # 0/1 and constant columns: JS
    assert {c["threshold"] for c in verdict["columns"].values()} == {0.1}
    assert verdict["drift_detected"] is False and len(verdict["drifted_columns"]) <= 1

    strict = run_drift(big, cur, cfg, tmp_path / "strict", distance_threshold=0.001).to_json()
    assert strict["thresholds"]["distance_threshold"] == 0.001
    assert strict["drift_detected"] is True  # sampling noise alone exceeds 0.001
    assert "bm25_link_text" not in strict["drifted_columns"]  # constant: distance 0
    for name in strict["drifted_columns"]:
        assert strict["columns"][name]["score"] == verdict["columns"][name]["score"] >= 0.001


def test_missing_columns_are_an_error(reference: pa.Table, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected_score"):
        run_drift(reference, reference, CFG, tmp_path)


def test_subsample_is_deterministic_and_sorted() -> None:
    a = _sample(np.arange(10_000), 500, seed=0)
    assert np.array_equal(a, _sample(np.arange(10_000), 500, seed=0))
    assert not np.array_equal(a, _sample(np.arange(10_000), 500, seed=1))
    assert len(a) == 500 and len(set(a.tolist())) == 500 and np.all(np.diff(a) > 0)
    assert np.array_equal(_sample(np.arange(7), 500, seed=0), np.arange(7))


class _FakeSnapshot:
    def __init__(self, text: str) -> None:
        self.text = text

    def get_html_str(self, as_iframe: bool) -> str:
        return self.text


def test_html_falls_back_to_a_page_per_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evidently.core.metric_types as metric_types

    def moved(*args: Any, **kwargs: Any) -> str:
        raise TypeError("renderer moved")

    monkeypatch.setattr(metric_types, "render_widgets", moved)
    parts = [
        ("a", _FakeSnapshot("<html>features</html>")),
        ("b", _FakeSnapshot("<html>emb</html>")),
    ]
    paths = report._write_html(tmp_path, parts)  # a fake snapshot has no widgets either
    assert (tmp_path / "drift_report.html").read_text() == "<html>features</html>"
    assert (tmp_path / "drift_embeddings.html").read_text() == "<html>emb</html>"
    assert paths == {
        "report_html": str(tmp_path / "drift_report.html"),
        "embeddings_html": str(tmp_path / "drift_embeddings.html"),
    }
