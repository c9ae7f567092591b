"""Text cleaning and the item text that models read.

One function builds an item's text from its fields so that the teacher, the student's
features and the server all see the same thing.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Byte sequences that betray UTF-8 read as Latin-1/cp1252 ("â€™" for "'", "Ã©" for "é").
_MOJIBAKE_HINT = re.compile("[ÂÃâ][\u0080-\u00bf€™œ\u2018-\u201e]")

FIELD_LABELS = {
    "title": "title",
    "description": "description",
    "caption": "image",
    "engaged_queries": "searched as",
    "board_titles": "boards",
    "link_title": "link",
    "link_description": "link description",
}


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 text that was decoded as cp1252/Latin-1, when that is what happened."""
    if not _MOJIBAKE_HINT.search(text):
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            repaired = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        return repaired
    return text


def clean_text(value: Any) -> str:
    """HTML tags and entities stripped, mojibake repaired, whitespace folded."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "; ".join(t for t in (clean_text(v) for v in value) if t)
    text = str(value)
    text = html.unescape(_TAG.sub(" ", text))
    text = fix_mojibake(text)
    text = unicodedata.normalize("NFC", text)
    return _SPACE.sub(" ", text).strip()


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (Unicode aware), for BM25 and text match."""
    return _TOKEN.findall(text.lower())


def field_text(item: Mapping[str, Any], name: str) -> str:
    if name == "link_text":  # the student's BM25 treats the link as one field
        return clean_text([item.get("link_title"), item.get("link_description")])
    return clean_text(item.get(name))


def item_text(
    item: Mapping[str, Any],
    fields: Sequence[str],
    max_words_per_field: int | None = None,
) -> str:
    """The item as the teacher reads it: labelled fields in a fixed order, each within a budget.

    The budget is counted in words here; the tokenizer applies its own per-field token budget
    (``searchrel.teacher.encoding``) so a long description cannot crowd out the caption.
    """
    parts = []
    for name in fields:
        text = field_text(item, name)
        if not text:
            continue
        if max_words_per_field is not None:
            text = " ".join(text.split(" ")[:max_words_per_field])
        parts.append(f"{FIELD_LABELS.get(name, name)}: {text}")
    return " | ".join(parts)
