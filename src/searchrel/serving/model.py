"""The student as a KServe model: one query and its candidate items in, relevance out.

V1:  POST /v1/models/<name>:predict
     {"instances": [{"query": "...", "locale": "en-US", "item_ids": ["a", "b"]}]}
  -> {"predictions": [{"item_ids": [...], "probs": [[p1..pK], ...], "scores": [...],
                        "model_version": "student-..."}]}
V2:  POST /v2/models/<name>/infer with BYTES tensors "query" [1], "locale" [1] (optional),
     "item_ids" [n]  ->  FP32 "probs" [n, K] and "scores" [n]; the version in parameters.
Scores are expected relevance levels in [1, K], items in the order sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from searchrel.config import FeatureConfig, ServeConfig
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer, assemble_inputs
from searchrel.features.store import InlineItems, ItemStore
from searchrel.request_log import RequestLogger
from searchrel.schema import SCALAR_FEATURES
from searchrel.scores import expected_score
from searchrel.serving import metrics
from searchrel.serving.cloudevents import CloudEventSink
from searchrel.student.model import BUNDLE_ENCODER_DIR, BUNDLE_STORE_DIR, ExportedStudent

log = logging.getLogger(__name__)
DEFAULT_LOCALE = "und"  # BCP 47 "undetermined", when a request names no locale


SHOWN_ID_CHARS = 64  # an id echoed in an error message is cut to this many characters


def shown(item_id: str) -> str:
    """An id as echoed in an error message: cut short, so a huge id makes no huge answer."""
    return item_id if len(item_id) <= SHOWN_ID_CHARS else item_id[:SHOWN_ID_CHARS] + "…"


INLINE_FIELDS = ("title", "description", "caption", "board_titles", "engaged_queries",
                 "link_title", "link_description")  # fmt: skip


@dataclass
class ScoringRequest:
    query: str
    locale: str
    item_ids: list[str]
    inline: dict[str, dict[str, Any]] | None = None  # item_id -> fields, for unknown ids


class StudentModel(Model):
    def __init__(
        self,
        model_dir: str | Path,
        serve_cfg: ServeConfig,
        feature_cfg: FeatureConfig,
        request_log_dir: Path | None = None,
    ):
        super().__init__(serve_cfg.model_name)
        self.model_dir = Path(model_dir)
        self.cfg = serve_cfg
        self.feature_cfg = feature_cfg
        self.request_log_dir = request_log_dir
        self.logger: RequestLogger | CloudEventSink | None = None
        self.version = ""
        self.ready = False
        self._scorer: ThreadPoolExecutor | None = None

    def load(self) -> bool:
        """Ready only once the exported student and the item store are both loaded."""
        self.student = ExportedStudent(self.model_dir)
        self.store = ItemStore(self.model_dir / BUNDLE_STORE_DIR)
        self.embedder = Embedder.from_config(
            self.feature_cfg,
            self.store.embedder_source,
            onnx_graph_dirs=[self.model_dir / BUNDLE_ENCODER_DIR],
        )
        self.featurizer = PairFeaturizer(self.store, self.embedder, self.feature_cfg)
        self.version = self.student.meta.version
        # Scoring runs here, one request at a time (torch uses its own threads within one), so
        # the event loop stays free for health probes, /metrics and parsing the next request.
        self._scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="searchrel-score")
        if self.cfg.request_log_url:  # a cluster: CloudEvents to the receiver
            self.logger = CloudEventSink(
                self.cfg.request_log_url, f"/models/{self.name}", self.cfg.log_sample_rate
            )
        elif self.request_log_dir is not None:
            self.logger = RequestLogger(self.request_log_dir, self.cfg.log_sample_rate)
        created = self.student.meta.created_timestamp()
        if created is None:
            log.warning("%s records no export time: its age is not exported", self.model_dir)
        metrics.record_model(
            self.name, self.version, created, len(self.store), self.embedder.runtime
        )
        self.ready = True
        log.info(
            "loaded %s (%d items) from %s; query encoder on %s",
            self.version,
            len(self.store),
            self.model_dir,
            self.embedder.runtime,
        )
        return self.ready

    # ---- request parsing: every problem is a 400 with a message that says what is wrong ----

    def _check(self, query: Any, locale: Any, item_ids: Any) -> ScoringRequest:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("'query' must be a non-empty string")
        if len(query) > self.cfg.max_query_chars:
            raise InvalidInput(f"'query' is longer than {self.cfg.max_query_chars} characters")
        if locale is None:
            locale = DEFAULT_LOCALE
        if not isinstance(locale, str) or len(locale) > 35:
            raise InvalidInput("'locale' must be a language tag such as en-US (a string)")
        if not isinstance(item_ids, list) or not item_ids:
            raise InvalidInput("'item_ids' must be a non-empty list of item ids")
        if len(item_ids) > self.cfg.max_candidates:
            raise InvalidInput(
                f"{len(item_ids)} candidates: at most {self.cfg.max_candidates} per request"
            )
        if not all(isinstance(i, str) for i in item_ids):
            raise InvalidInput("'item_ids' must hold strings")
        return ScoringRequest(query, locale, item_ids)

    def _check_inline(self, items: Any) -> dict[str, dict[str, Any]] | None:
        """Inline items: [{"item_id", "title", optional text fields}], when enabled."""
        if items is None:
            return None
        if not self.cfg.inline_items:
            raise InvalidInput("inline 'items' are turned off on this server (serve.inline_items)")
        if not isinstance(items, list) or len(items) > self.cfg.max_candidates:
            raise InvalidInput(f"'items' must be a list of at most {self.cfg.max_candidates}")
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("item_id"), str):
                raise InvalidInput("each inline item needs a string 'item_id'")
            title = item.get("title")
            if not isinstance(title, str) or not title.strip():
                raise InvalidInput(
                    f"inline item {shown(item['item_id'])!r} needs a non-empty 'title'"
                )
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
                if len(parts) > 100:
                    raise InvalidInput(
                        f"inline item field {name!r} holds {len(parts)} strings: at most 100"
                    )
                if sum(len(v) for v in parts) > self.cfg.max_item_text_chars:
                    raise InvalidInput(
                        f"inline item field {name!r} is longer than "
                        f"{self.cfg.max_item_text_chars} characters"
                    )
                fields[name] = value
            out[item["item_id"]] = fields
        return out

    def _parse_v1(self, payload: Any) -> list[ScoringRequest]:
        if isinstance(payload, bytes | bytearray):  # a JSON body sent without a JSON content type
            try:
                payload = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"the request body is not JSON: {exc}") from exc
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
            req = self._check(inst.get("query"), inst.get("locale"), inst.get("item_ids"))
            req.inline = self._check_inline(inst.get("items"))
            out.append(req)
        pairs = sum(len(req.item_ids) for req in out)
        if pairs > self.cfg.max_pairs:
            raise InvalidInput(
                f"{pairs} (query, item) pairs: at most {self.cfg.max_pairs} per request "
                "(serve.max_pairs); send them in several requests"
            )
        return out

    def _parse_v2(self, request: InferRequest) -> ScoringRequest:
        tensors: dict[str, list[str]] = {}
        for tensor in request.inputs:
            name = shown(str(tensor.name))  # as echoed in an error
            if tensor.datatype != "BYTES":
                raise InvalidInput(f"input {name!r} must be BYTES, got {str(tensor.datatype)[:20]}")
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
                    f"input {name!r} needs a shape of non-negative sizes, got {str(shape)[:100]}"
                )
            shape = list(shape)
            size = math.prod(shape)
            if size != len(values):
                raise InvalidInput(
                    f"input {name!r} has shape {str(shape)[:100]} "
                    f"({size if size < 10**12 else 'too many'} values) "
                    f"but holds {len(values)}"
                )
            tensors[tensor.name] = values
        if "query" not in tensors or "item_ids" not in tensors:
            raise InvalidInput("V2 request needs BYTES inputs 'query' [1] and 'item_ids' [n]")
        if len(tensors["query"]) != 1:
            raise InvalidInput("input 'query' must hold exactly one string")
        locale = tensors.get("locale", [DEFAULT_LOCALE])
        return self._check(tensors["query"][0], locale[0] if locale else None, tensors["item_ids"])

    # ---- scoring ----

    def score(self, req: ScoringRequest) -> tuple[np.ndarray, np.ndarray]:
        rows, missing = self.store.rows_of(req.item_ids)
        inline = req.inline or {}
        unresolved = [i for i in missing if i not in inline]
        if unresolved:
            listed = ", ".join(shown(i) for i in unresolved[:10])
            etc = " ..." if len(unresolved) > 10 else ""
            raise InvalidInput(f"{len(unresolved)} unknown item id(s): {listed}{etc}")
        feats = self.featurizer.featurize(req.query, rows)
        qvec, ivecs, scalars = feats.query_embedding, feats.item_embeddings, feats.scalars
        if missing:  # score the inline items, then put every item back in the order sent
            extra = InlineItems([inline[i] for i in missing], self.store, self.embedder)
            more = PairFeaturizer(extra, self.embedder, self.feature_cfg).featurize(
                req.query, np.arange(len(missing)), query_embedding=qvec
            )
            known = [i for i, item_id in enumerate(req.item_ids) if item_id in self.store.index]
            new = [i for i, item_id in enumerate(req.item_ids) if item_id not in self.store.index]
            ivecs = np.zeros((len(req.item_ids), self.store.dim), dtype=np.float32)
            scalars = np.zeros((len(req.item_ids), feats.scalars.shape[1]), dtype=np.float32)
            ivecs[known], scalars[known] = feats.item_embeddings, feats.scalars
            slot = {item_id: j for j, item_id in enumerate(missing)}
            take = [slot[req.item_ids[i]] for i in new]
            ivecs[new], scalars[new] = more.item_embeddings[take], more.scalars[take]
            metrics.INLINE_ITEMS.inc(len(new))
        probs = self.student.predict_proba(assemble_inputs(qvec, ivecs, scalars))
        scores = expected_score(probs)
        metrics.CANDIDATES.observe(len(req.item_ids))
        for s in scores:
            metrics.SCORES.observe(float(s))
        metrics.CACHE_HIT_RATIO.set(
            self.embedder.cache_hits / max(1, self.embedder.cache_hits + self.embedder.cache_misses)
        )
        if self.logger is not None:
            self._log(req, qvec, scalars, probs, scores)
        return probs, scores

    def _log(
        self,
        req: ScoringRequest,
        qvec: np.ndarray,
        scalars: np.ndarray,
        probs: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        assert self.logger is not None
        request_id, ts, q = uuid.uuid4().hex, time.time(), qvec.tolist()
        self.logger.log(
            [
                {
                    "ts": ts,
                    "request_id": request_id,
                    "query": req.query,
                    "locale": req.locale,
                    "item_id": item_id,
                    "query_embedding": q,
                    **{n: float(scalars[j, k]) for k, n in enumerate(SCALAR_FEATURES)},
                    "probs": probs[j].tolist(),
                    "expected_score": float(scores[j]),
                    "model_version": self.version,
                }
                for j, item_id in enumerate(req.item_ids)
            ]
        )

    async def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """Parse on the event loop (cheap, so a bad request fails at once); score a small
        request right there and a large one on the scoring thread. Requests are counted and
        timed by the HTTP middleware.

        Why the split: handing every request to the thread doubled the p99 of 100-candidate
        requests in bench/serving.py (bench/results/serving_scoring_thread_always.json; the
        likely cause, not measured, is waiting for the GIL, up to ``sys.getswitchinterval()``
        = 5 ms, on each hand-off); a request of at most ``serve.offload_pairs`` pairs takes
        a few ms, so probes and scrapes never wait long behind it, and the large ones (up to
        ``serve.max_pairs``) no longer hold the loop. "Small" is one query, no inline items
        (each is embedded on the fly) and at most ``serve.offload_pairs`` pairs."""
        loop = asyncio.get_running_loop()
        if self._scorer is None:
            raise ModelNotReady(self.name)
        if isinstance(payload, InferRequest):
            req = self._parse_v2(payload)
            if self._is_small([req]):
                return self._predict_v2(payload, req)
            return await loop.run_in_executor(self._scorer, self._predict_v2, payload, req)
        reqs = self._parse_v1(payload)
        if self._is_small(reqs):
            return self._predict_v1(reqs)
        return await loop.run_in_executor(self._scorer, self._predict_v1, reqs)

    def _is_small(self, reqs: list[ScoringRequest]) -> bool:
        """Cheap enough to score on the event loop (see ``predict``)."""
        return (
            len(reqs) == 1
            and not reqs[0].inline
            and len(reqs[0].item_ids) <= self.cfg.offload_pairs
        )

    def stop(self) -> None:
        """At shutdown (after the last request): finish scoring, send what the request log
        still holds (the CloudEvents sink posts in the background), then stop."""
        if self._scorer is not None:
            self._scorer.shutdown(wait=True)
            self._scorer = None
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        super().stop()

    def _predict_v1(self, reqs: list[ScoringRequest]) -> dict[str, Any]:
        predictions = []
        for req in reqs:
            probs, scores = self.score(req)
            predictions.append(
                {
                    "item_ids": req.item_ids,
                    "probs": probs.round(6).tolist(),
                    "scores": scores.round(6).tolist(),
                    "model_version": self.version,
                }
            )
        return {"predictions": predictions}

    def _predict_v2(self, request: InferRequest, req: ScoringRequest) -> InferResponse:
        probs, scores = self.score(req)
        outputs = [
            InferOutput("probs", list(probs.shape), "FP32", probs.ravel().tolist()),
            InferOutput("scores", [len(scores)], "FP32", scores.tolist()),
        ]
        return InferResponse(
            response_id=request.id or uuid.uuid4().hex,
            model_name=self.name,
            infer_outputs=outputs,
            model_version=self.version,
            parameters={"model_version": self.version},
        )


def _flat(data: Any) -> list[Any]:
    """A tensor's data as one flat list (V2 allows nested lists in row-major order)."""
    if not isinstance(data, list):
        return []
    out: list[Any] = []
    for v in data:
        out.extend(_flat(v) if isinstance(v, list) else [v])
    return out
