"""The student as a KServe model: one query and its candidate items in, relevance out.

Requests are parsed and checked in ``preprocess`` (``searchrel.serving.protocol``); answers:
V1 -> {"predictions": [{"item_ids": [...], "probs": [[p1..pK], ...], "scores": [...],
                        "model_version": "student-..."}]}
V2 -> FP32 "probs" [n, K] and "scores" [n]; the version in parameters, the request id echoed.
Scores are expected relevance levels in [1, K], items in the order sent.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferResponse

from searchrel.config import FeatureConfig, ServeConfig
from searchrel.features.embedder import Embedder
from searchrel.features.pairs import PairFeaturizer, assemble_inputs
from searchrel.features.store import InlineItems, ItemStore
from searchrel.request_log import RequestLogger, ServedRequest
from searchrel.scores import expected_score
from searchrel.serving import prometheus
from searchrel.serving.cloudevents import CloudEventSink
from searchrel.serving.protocol import Parsed, RequestParser, ScoringRequest, shown
from searchrel.student.model import BUNDLE_ENCODER_DIR, BUNDLE_STORE_DIR, ExportedStudent

log = logging.getLogger(__name__)


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
        self.parser = RequestParser(serve_cfg)
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
            self.logger = RequestLogger.bounded(
                self.request_log_dir, self.cfg, self.cfg.log_sample_rate
            )
        created = self.student.meta.created_timestamp()
        if created is None:
            log.warning("%s records no export time: its age is not exported", self.model_dir)
        prometheus.record_model(
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
            prometheus.INLINE_ITEMS.inc(len(new))
        probs = self.student.predict_proba(assemble_inputs(qvec, ivecs, scalars))
        scores = expected_score(probs)
        prometheus.CANDIDATES.observe(len(req.item_ids))
        prometheus.SCORES.observe_many(scores)
        prometheus.CACHE_HIT_RATIO.set(
            self.embedder.cache_hits / max(1, self.embedder.cache_hits + self.embedder.cache_misses)
        )
        if self.logger is not None:
            served = ServedRequest(
                req.query, req.locale, req.item_ids, qvec, scalars, probs, scores, self.version
            )
            self.logger.log_served(served)
        return probs, scores

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Parsed:
        """KServe's hook between decoding and ``predict``: the request parsed and checked
        (``searchrel.serving.protocol``), every problem a 400."""
        return self.parser.parse(payload)

    def validate(self, payload: Any) -> Any:
        """KServe's own check looks for "instances"/"inputs" in a dict; ``preprocess`` has
        already checked everything, and a ``Parsed`` is not a dict."""
        return payload

    async def predict(
        self, payload: Parsed, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        """Score on the scoring thread, so that the event loop stays free for health probes,
        /metrics and the next request's parsing; with ``serve.offload_pairs`` above 0, a
        request of at most that many pairs is scored on the event loop instead (no thread
        hand-off: more requests/s under concurrency, but probes wait behind every such
        request). "Small" is one query, no inline items (each is embedded on the fly) and at
        most ``serve.offload_pairs`` pairs. Requests are counted and timed by the middleware."""
        if self._scorer is None or not self.ready:
            raise ModelNotReady(self.name)
        if self._is_small(payload.requests):
            return self._answer(payload)
        return await asyncio.get_running_loop().run_in_executor(self._scorer, self._answer, payload)

    def _answer(self, parsed: Parsed) -> dict[str, Any] | InferResponse:
        if parsed.protocol == "v2":
            return self._predict_v2(parsed)
        return self._predict_v1(parsed.requests)

    def _is_small(self, reqs: list[ScoringRequest]) -> bool:
        """Cheap enough to score on the event loop (see ``predict``)."""
        return (
            len(reqs) == 1
            and not reqs[0].inline
            and len(reqs[0].item_ids) <= self.cfg.offload_pairs
        )

    def stop(self) -> None:
        """At shutdown (after the last request): finish scoring, send what the request log
        still holds (the CloudEvents sink posts in the background), then stop. Not ready
        from here on (readiness reads it)."""
        self.ready = False
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

    def _predict_v2(self, parsed: Parsed) -> InferResponse:
        probs, scores = self.score(parsed.requests[0])
        outputs = [
            InferOutput("probs", list(probs.shape), "FP32", probs.ravel().tolist()),
            InferOutput("scores", [len(scores)], "FP32", scores.tolist()),
        ]
        return InferResponse(
            response_id=parsed.request_id or uuid.uuid4().hex,
            model_name=self.name,
            infer_outputs=outputs,
            model_version=self.version,
            parameters={"model_version": self.version},
        )
