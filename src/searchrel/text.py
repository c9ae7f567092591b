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

_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"\w+", re.UNICODE)
# Byte sequences that betray UTF-8 read as Latin-1/cp1252 ("â€™" for "'", "Ã©" for "é").
_MOJIBAKE_HINT = re.compile("[ÂÃâ][\u0080-\u00bf€™œ\u2018-\u201e\u0153\u0161\u017e]")

FIELD_LABELS = {
    "title": "title",
    "description": "description",
    "caption": "image",
    "engaged_queries": "searched as",
    "board_titles": "boards",
    "link_title": "link",
    "link_description": "link description",
}


def _cp1252_byte(ch: str) -> int | None:
    """The byte a character came from if UTF-8 was misread as cp1252/Latin-1, else None."""
    code = ord(ch)
    if 0x80 <= code <= 0xFF:  # Latin-1 range, C1 controls included (cp1252's holes)
        return code
    try:
        raw = ch.encode("cp1252")
    except UnicodeEncodeError:
        return None
    return raw[0] if raw[0] >= 0x80 else None


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 that was decoded as cp1252/Latin-1, run by run ("sellerâ€™s" -> "seller's").

    Each maximal run of characters that map back to high bytes is re-decoded as UTF-8 and
    replaced only when that succeeds, so genuine accented text is left alone.
    """
    if not _MOJIBAKE_HINT.search(text):
        return text
    out: list[str] = []
    run: list[int] = []
    run_text: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            try:
                out.append(bytes(run).decode("utf-8"))
            except UnicodeDecodeError:
                out.append("".join(run_text))
        else:
            out.append("".join(run_text))
        run.clear()
        run_text.clear()

    for ch in text:
        byte = _cp1252_byte(ch)
        if byte is None:
            flush()
            out.append(ch)
        else:
            run.append(byte)
            run_text.append(ch)
    flush()
    return "".join(out)


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
