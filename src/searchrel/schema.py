"""The data contract: explicit pyarrow schemas of every Parquet table that passes between steps.

This is the one place that says what a table holds. Readers validate at the boundary
(``searchrel.tables.read_table``); rows that break the contract are quarantined with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# Scalar student features, in the order the student reads them (after the embedding blocks).
# Named columns so that the drift job and dashboards can speak of each one.
TEXT_FIELDS_FOR_BM25 = (
    "title",
    "description",
    "caption",
    "board_titles",
    "engaged_queries",
    "link_text",
)
SCALAR_FEATURES: tuple[str, ...] = (
    "cosine",
    *(f"bm25_{f}" for f in TEXT_FIELDS_FOR_BM25),
    "bm25_all",
    "term_coverage_title",
    "term_coverage_all",
    "exact_phrase_title",
    "exact_phrase_all",
    "fuzzy_title",
    "query_length",
    "item_click_rate",
    "item_save_rate",
    "item_closeup_rate",
    "item_log_impressions",
)

_str = pa.string()
_f32 = pa.float32()
_list_str = pa.list_(pa.string())
_list_f32 = pa.list_(pa.float32())


def _f(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


# Items (Pins): the text the teacher and the student read.
ITEMS = pa.schema(
    [
        _f("item_id", _str),
        _f("locale", _str),
        _f("title", _str),
        _f("description", _str, True),
        _f("image_uri", _str, True),
        _f("caption", _str, True),  # synthetic image caption (BLIP on a cluster)
        _f("board_titles", _list_str, True),  # titles of boards the Pin was saved to
        _f("engaged_queries", _list_str, True),  # queries with high engagement on this Pin
        _f("link_title", _str, True),
        _f("link_description", _str, True),
    ]
)

# Judgments: human relevance labels, 1..K; weight from rater agreement (optional).
JUDGMENTS = pa.schema(
    [
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("label", pa.int8()),
        _f("weight", _f32, True),
    ]
)

# Impressions: the logged search results of a day, unlabeled.
IMPRESSIONS = pa.schema(
    [
        _f("date", pa.date32()),
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("impressions", pa.int64()),
        _f("clicks", pa.int64()),
        _f("saves", pa.int64()),
        _f("closeups", pa.int64()),
    ]
)

# Teacher labels: soft labels (K probabilities) for each distinct logged pair.
TEACHER_LABELS = pa.schema(
    [
        _f("date", pa.date32()),  # the impressions partition these pairs were logged in
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("probs", _list_f32),  # K probabilities, level 1 first
        _f("label", pa.int8()),  # argmax level, 1..K
        _f("expected_score", _f32),  # sum_k k * p_k, in [1, K]
        _f("teacher_version", _str),
        _f("input_hash", _str),  # sha256 of the exact text the teacher read: relabel on change
    ]
)

# A trained teacher's predictions on its validation queries (the model that early stopping
# kept, trained without them): what later fits decision cutoffs or checks calibration on
# pairs the teacher never learned from, also after a refit on every query.
VALIDATION_PREDICTIONS = pa.schema(
    [
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("label", pa.int8()),  # the human label, 1..K
        _f("probs", _list_f32),  # K probabilities, level 1 first
    ]
)

# Pairs the labeler could not label (a remote judge that kept failing): retried on the next
# run, never given a made-up label.
LABEL_FAILURES = pa.schema(
    [
        _f("date", pa.date32()),
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("input_hash", _str),
        _f("reason", _str),
        _f("attempts", pa.int32()),
    ]
)

# Captions: one row per item of a captioning run, whatever became of it. status: generated
# (by the model in this run), cached (same image bytes and model as an earlier run), kept (the
# item had a caption), no_image, failed (the reason is in caption_failures).
CAPTIONS = pa.schema(
    [
        _f("item_id", _str),
        _f("image_sha256", _str, True),  # of the image bytes: the cache key (with the model)
        _f("caption", _str, True),
        _f("model", _str, True),  # the captioner's version (model and generation settings)
        _f("status", _str),
    ]
)

# Items whose image could not be captioned (missing, unreachable, corrupt, too large, a model
# or endpoint error): retried on the next run, never given a made-up caption.
CAPTION_FAILURES = pa.schema(
    [
        _f("item_id", _str),
        _f("image_uri", _str),
        _f("reason", _str),
    ]
)

# The caption cache: a daily run captions only images (by content) it has not seen.
CAPTION_CACHE = pa.schema(
    [
        _f("image_sha256", _str),
        _f("model", _str),
        _f("caption", _str),
        _f("created", pa.timestamp("ms", tz="UTC")),
    ]
)

# Item feature store: what the server reads at start-up, precomputed per item.
ITEM_FEATURES = pa.schema(
    [
        _f("item_id", _str),
        _f("locale", _str),
        _f("embedding", _list_f32),
        _f("embed_hash", _str),  # sha256 of the embedded text: unchanged items keep their vector
        *(_f(f"tokens_{name}", _list_str) for name in TEXT_FIELDS_FOR_BM25),
        _f("title_text", _str),  # cleaned title, for phrase and fuzzy match
        _f("all_text", _str),  # cleaned text of every field, for phrase match
        _f("click_rate", _f32),
        _f("save_rate", _f32),
        _f("closeup_rate", _f32),
        _f("log_impressions", _f32),
    ]
)

# Student training rows: features of a pair and its target distribution.
STUDENT_FEATURES = pa.schema(
    [
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        _f("source", _str),  # "teacher" (soft labels) or "human" (judgments)
        _f("split", _str),  # train / val / test, by query hash
        _f("target", _list_f32),  # K probabilities (one-hot for human labels)
        _f("weight", _f32),
        _f("query_embedding", _list_f32),
        _f("item_embedding", _list_f32),
        *(_f(name, _f32) for name in SCALAR_FEATURES),
    ]
)

# Served predictions, one row per (request, item): the request log the drift job reads.
REQUEST_LOG = pa.schema(
    [
        _f("ts", pa.timestamp("ms", tz="UTC")),
        _f("request_id", _str),
        _f("query", _str),
        _f("locale", _str),
        _f("item_id", _str),
        # On the first row of each request only (the same for all its items): the log stays
        # small, and drift takes one embedding per distinct query.
        _f("query_embedding", _list_f32, nullable=True),
        *(_f(name, _f32) for name in SCALAR_FEATURES),
        _f("probs", _list_f32),
        _f("expected_score", _f32),
        _f("model_version", _str),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """What a reader checks beyond the column types."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...] = ()  # rows with a repeated key are quarantined (first one kept)
    non_empty_text: tuple[str, ...] = ()  # string columns that must hold text
    label_column: str | None = None  # integer 1..K
    probs_column: str | None = None  # list of K probabilities summing to 1
    non_negative: tuple[str, ...] = ()  # counts


SPECS: dict[str, TableSpec] = {
    "items": TableSpec("items", ITEMS, key=("item_id",), non_empty_text=("item_id", "title")),
    "judgments": TableSpec(
        "judgments",
        JUDGMENTS,
        key=("query", "locale", "item_id"),
        non_empty_text=("query", "item_id"),
        label_column="label",
    ),
    "impressions": TableSpec(
        "impressions",
        IMPRESSIONS,
        key=("date", "query", "locale", "item_id"),
        non_empty_text=("query", "item_id"),
        non_negative=("impressions", "clicks", "saves", "closeups"),
    ),
    "teacher_labels": TableSpec(
        "teacher_labels",
        TEACHER_LABELS,
        key=("date", "query", "locale", "item_id"),
        non_empty_text=("query", "item_id"),
        label_column="label",
        probs_column="probs",
    ),
    "validation_predictions": TableSpec(
        "validation_predictions",
        VALIDATION_PREDICTIONS,
        key=("query", "locale", "item_id"),
        non_empty_text=("query", "item_id"),
        label_column="label",
        probs_column="probs",
    ),
    "label_failures": TableSpec(
        "label_failures",
        LABEL_FAILURES,
        key=("date", "query", "locale", "item_id"),
        non_empty_text=("query", "item_id", "reason"),
    ),
    "captions": TableSpec(
        "captions", CAPTIONS, key=("item_id",), non_empty_text=("item_id", "status")
    ),
    "caption_failures": TableSpec(
        "caption_failures",
        CAPTION_FAILURES,
        key=("item_id",),
        non_empty_text=("item_id", "image_uri", "reason"),
    ),
    "caption_cache": TableSpec(
        "caption_cache",
        CAPTION_CACHE,
        key=("image_sha256", "model"),
        non_empty_text=("image_sha256", "model", "caption"),
    ),
    "item_features": TableSpec("item_features", ITEM_FEATURES, key=("item_id",)),
    "student_features": TableSpec(
        "student_features",
        STUDENT_FEATURES,
        key=("query", "locale", "item_id", "source"),
        non_empty_text=("query",),
        probs_column="target",
    ),
    "request_log": TableSpec("request_log", REQUEST_LOG, probs_column="probs"),
}
