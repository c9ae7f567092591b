"""The student server's two request formats, parsed and checked before anything is scored.

V1:  POST /v1/models/<name>:predict
     {"instances": [{"query": "...", "locale": "en-US", "item_ids": ["a", "b"]}]}
V2:  POST /v2/models/<name>/infer with BYTES tensors "query" [1], "locale" [1] (optional),
     "item_ids" [n], and an optional request "id" that the answer echoes.

``RequestParser.parse`` is what ``StudentModel.preprocess`` (KServe's hook between decoding and
``predict``) calls. Every problem is an ``InvalidInput`` (a 400) whose message says what is
wrong and echoes client text only cut short and escaped (``shown``). Every string that is
scored, logged or echoed must be encodable as UTF-8: JSON allows lone surrogates (``"\\ud800"``)
that no UTF-8 writer (the response encoder, the request log, the tokenizer) accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from searchrel.config import ServeConfig
from searchrel.serving.logs import escape_controls

DEFAULT_LOCALE = "und"  # BCP 47 "undetermined", when a request names no locale
SHOWN_CHARS = 64  # client text echoed in an error message is cut to this many characters
MAX_LOCALE_CHARS = 35  # the longest BCP 47 tag worth accepting
MAX_REQUEST_ID_CHARS = 256  # a V2 request id longer than this is refused (it is echoed)
MAX_INLINE_FIELD_STRINGS = 100  # most strings in one list-valued inline item field

INLINE_FIELDS = ("title", "description", "caption", "board_titles", "engaged_queries",
                 "link_title", "link_description")  # fmt: skip


def shown(text: str) -> str:
    """Client text as echoed in an error message: cut short (a huge id makes no huge answer)
    and with control characters and lone surrogates escaped (no forged log line, and an
    answer that can be encoded)."""
    return escape_controls(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…")


def encodable(*texts: str) -> bool:
    """Whether every text can be written as UTF-8 (no lone surrogates)."""
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class ScoringRequest:
    query: str
    locale: str
    item_ids: list[str]
    inline: dict[str, dict[str, Any]] | None = None  # item_id -> fields, for unknown ids


@dataclass
class Parsed:
    """What ``preprocess`` hands to ``predict``: the protocol to answer in, the queries, and
    the V2 request id to echo."""

    protocol: Literal["v1", "v2"]
    requests: list[ScoringRequest]
    request_id: str | None = None
    pairs: int = field(init=False)

    def __post_init__(self) -> None:
        self.pairs = sum(len(r.item_ids) for r in self.requests)


class RequestParser:
    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg

    def parse(self, payload: Any) -> Parsed:
        if isinstance(payload, InferRequest):
            return self.v2(payload)
        return self.v1(payload)

    def check(self, query: Any, locale: Any, item_ids: Any) -> ScoringRequest:
        """One query and its candidates; shared by both protocols and the deploy gate."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("'query' must be a non-empty string")
        if len(query) > self.cfg.max_query_chars:
            raise InvalidInput(f"'query' is longer than {self.cfg.max_query_chars} characters")
        if locale is None:
            locale = DEFAULT_LOCALE
        if not isinstance(locale, str) or len(locale) > MAX_LOCALE_CHARS:
            raise InvalidInput("'locale' must be a language tag such as en-US (a string)")
        if not isinstance(item_ids, list) or not item_ids:
            raise InvalidInput("'item_ids' must be a non-empty list of item ids")
        if len(item_ids) > self.cfg.max_candidates:
            raise InvalidInput(
                f"{len(item_ids)} candidates: at most {self.cfg.max_candidates} per request"
            )
        if not all(isinstance(i, str) for i in item_ids):
            raise InvalidInput("'item_ids' must hold strings")
        if not encodable(query, locale, *item_ids):
            raise InvalidInput("'query', 'locale' and 'item_ids' must be valid Unicode text")
        return ScoringRequest(query, locale, item_ids)

    def inline(self, items: Any) -> dict[str, dict[str, Any]] | None:
        """Inline items: [{"item_id", "title", optional text fields}], when enabled."""
        if items is None:
            return None
        cfg = self.cfg
        if not cfg.inline_items:
            raise InvalidInput("inline 'items' are turned off on this server (serve.inline_items)")
        if not isinstance(items, list) or len(items) > cfg.max_candidates:
            raise InvalidInput(f"'items' must be a list of at most {cfg.max_candidates}")
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("item_id"), str):
                raise InvalidInput("each inline item needs a string 'item_id'")
            if not encodable(item["item_id"]):
                raise InvalidInput("an inline 'item_id' is not valid Unicode text")
            title = item.get("title")
            if not isinstance(title, str) or not title.strip():
                raise InvalidInput(f"inline item {shown(item['item_id'])!r} needs a 'title'")
            fields: dict[str, Any] = {"item_id": item["item_id"]}
            for name in INLINE_FIELDS:
                value = item.get(name)
                if value is None:
                    fields[name] = None
                    continue
                parts = value if isinstance(value, list) else [value]
                if not all(isinstance(v, str) for v in parts):
                    raise InvalidInput(
                        f"inline item field {name!r} must be a string or a list of strings"
                    )
                if len(parts) > MAX_INLINE_FIELD_STRINGS:
                    raise InvalidInput(
                        f"inline item field {name!r} holds {len(parts)} strings: "
                        f"at most {MAX_INLINE_FIELD_STRINGS}"
                    )
                if sum(len(v) for v in parts) > cfg.max_item_text_chars:
                    raise InvalidInput(
                        f"inline item field {name!r} is longer than "
                        f"{cfg.max_item_text_chars} characters"
                    )
                if not encodable(*parts):
                    raise InvalidInput(f"inline item field {name!r} is not valid Unicode text")
                fields[name] = value
            out[item["item_id"]] = fields
        return out

    def v1(self, payload: Any) -> Parsed:
        if isinstance(payload, bytes | bytearray):
            # A body sent without a JSON content type (KServe passes it on undecoded). orjson,
            # as KServe decodes JSON bodies: it refuses lone surrogates and nesting deeper than
            # 1,024 and huge integers with a JSONDecodeError (a ValueError), where ``json``
            # would raise RecursionError or accept them.
            try:
                payload = orjson.loads(payload)
            except (ValueError, RecursionError) as exc:
                raise InvalidInput(f"the request body is not JSON: {shown(str(exc))}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("instances"), list):
            raise InvalidInput('expected {"instances": [{"query", "locale", "item_ids"}]}')
        instances = payload["instances"]
        if not instances:
            raise InvalidInput("'instances' is empty")
        if len(instances) > self.cfg.max_instances:
            raise InvalidInput(
                f"{len(instances)} instances: at most {self.cfg.max_instances} per request "
                "(serve.max_instances)"
            )
        out = []
        for inst in instances:
            if not isinstance(inst, dict):
                raise InvalidInput("each instance must be an object with query and item_ids")
            req = self.check(inst.get("query"), inst.get("locale"), inst.get("item_ids"))
            req.inline = self.inline(inst.get("items"))
            out.append(req)
        parsed = Parsed("v1", out)
        if parsed.pairs > self.cfg.max_pairs:
            raise InvalidInput(
                f"{parsed.pairs} (query, item) pairs: at most {self.cfg.max_pairs} per request "
                "(serve.max_pairs); send them in several requests"
            )
        return parsed

    def v2(self, request: InferRequest) -> Parsed:
        request_id = request.id
        if request_id is not None and (
            not isinstance(request_id, str)
            or len(request_id) > MAX_REQUEST_ID_CHARS
            or not encodable(request_id)
        ):
            raise InvalidInput(
                f"the request 'id' must be valid Unicode text of at most "
                f"{MAX_REQUEST_ID_CHARS} characters"
            )
        tensors: dict[str, list[Any]] = {}
        for tensor in request.inputs:
            name = shown(str(tensor.name))  # as echoed in an error
            if tensor.datatype != "BYTES":
                raise InvalidInput(
                    f"input {name!r} must be BYTES, got {shown(str(tensor.datatype))}"
                )
            values = []
            for v in _flat(tensor.data):
                if isinstance(v, bytes):
                    try:
                        v = v.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise InvalidInput(f"input {name!r} is not valid UTF-8") from exc
                values.append(v)
            shape = tensor.shape
            if not isinstance(shape, list | tuple) or not all(
                isinstance(d, int) and d >= 0 for d in shape
            ):
                raise InvalidInput(
                    f"input {name!r} needs a shape of non-negative sizes, got {shown(str(shape))}"
                )
            size = math.prod(shape)
            if size != len(values):
                raise InvalidInput(
                    f"input {name!r} has shape {shown(str(list(shape)))} "
                    f"({size if size < 10**12 else 'too many'} values) "
                    f"but holds {len(values)}"
                )
            tensors[str(tensor.name)] = values
        if "query" not in tensors or "item_ids" not in tensors:
            raise InvalidInput("V2 request needs BYTES inputs 'query' [1] and 'item_ids' [n]")
        if len(tensors["query"]) != 1:
            raise InvalidInput("input 'query' must hold exactly one string")
        locale = tensors.get("locale", [DEFAULT_LOCALE])
        req = self.check(tensors["query"][0], locale[0] if locale else None, tensors["item_ids"])
        return Parsed("v2", [req], request_id)


def _flat(data: Any) -> list[Any]:
    """A tensor's data as one flat list (V2 allows nested lists in row-major order)."""
    if not isinstance(data, list):
        return []
    out: list[Any] = []
    stack = [iter(data)]  # iterative: a deeply nested list must not exhaust the stack
    while stack:
        for v in stack[-1]:
            if isinstance(v, list):
                stack.append(iter(v))
                break
            out.append(v)
        else:
            stack.pop()
    return out
