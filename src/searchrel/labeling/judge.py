"""A remote LLM as the teacher: relevance judged by a served model (TGI, vLLM, llama.cpp, KServe).

The judge is asked, with the rating guidelines, for one digit 1..K. Its soft label is read
from the first token's top log-probabilities: the probability mass of the tokens "1".."K",
renormalised over the levels. Requests go through ``huggingface_hub.InferenceClient`` (TGI's
and OpenAI's chat-completions API), at most ``concurrency`` in flight, each with a timeout;
timeouts, connection errors, 408, 429 and 5xx are retried with exponential backoff, jittered
so that the workers do not retry in lockstep, and never sooner than a 429's or 503's
Retry-After header asks (``searchrel.endpoints``). A pair that still fails is reported as
failed with its reason (the labeling job records it and retries it on the next run); it is
never given a made-up label.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from searchrel.config import JudgeConfig
from searchrel.endpoints import (
    EndpointError,
    backoff_delay,
    classify,
    let_endpoints_through_offline_mode,
)
from searchrel.labeling.labeler import LabelOutcome, Progress
from searchrel.text import FIELD_LABELS, clean_text, field_text

log = logging.getLogger(__name__)

SCALES = {  # level descriptions, most relevant first (Pinterest rates on 5 levels)
    2: ["relevant to the query", "irrelevant"],
    3: ["highly relevant: what the searcher wants", "partially relevant", "irrelevant"],
    4: ["highly relevant: exactly what the searcher wants", "relevant, with minor differences",
        "partially relevant: related, but not what was asked", "irrelevant"],
    5: ["highly relevant: exactly what the searcher wants", "relevant, with minor differences",
        "somewhat relevant", "marginally related", "irrelevant: unrelated to the query"],
}  # fmt: skip


def guidelines(levels: int) -> str:
    """The system prompt: the task, the scale and the answer format."""
    words = SCALES.get(levels)
    if words is None:  # any other K: the ends named, the middle ordered
        scale = [f"{levels} = highly relevant", "1 = irrelevant (higher means more relevant)"]
    else:
        scale = [f"{levels - i} = {w}" for i, w in enumerate(words)]
    return (
        "You rate search results. Given a search query and an item (its title, description, "
        f"image caption and boards), rate how relevant the item is to the query on a scale of "
        f"1 to {levels}:\n" + "\n".join(scale) + f"\nAnswer with a single digit from 1 to "
        f"{levels} and nothing else."
    )


def level_probs(output: Any, levels: int) -> np.ndarray:
    """K probabilities from a chat completion's first-token log-probabilities."""
    choice = output.choices[0]
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    mass = np.zeros(levels, dtype=np.float64)
    if content:
        first = content[0]
        candidates = list(getattr(first, "top_logprobs", None) or []) or [first]
        for cand in candidates:
            token = str(cand.token).strip()
            if token.isdigit() and 1 <= int(token) <= levels:
                mass[int(token) - 1] += math.exp(float(cand.logprob))
    if mass.sum() <= 0:
        raise EndpointError("no_level_in_top_tokens", retryable=False)
    return mass / mass.sum()


class RemoteJudge:
    """A served LLM that rates (query, item) pairs; implements the labeler protocol."""

    def __init__(self, cfg: JudgeConfig, levels: int, client: Any = None):
        from huggingface_hub import InferenceClient

        self.cfg = cfg
        if not 2 <= levels <= 9:
            raise ValueError(f"the judge answers with one digit: K must be 2..9, not {levels}")
        self.levels = levels
        self.system = guidelines(levels)
        if client is None:
            let_endpoints_through_offline_mode()
        self.rng = random.Random()  # backoff jitter
        self.client = client or InferenceClient(
            base_url=cfg.url, timeout=cfg.timeout_s, api_key=os.environ.get(cfg.api_key_env)
        )
        prompt_id = hashlib.sha256(self.system.encode()).hexdigest()[:12]
        # The model and the prompt make the labels; the URL (one of many replicas) does not.
        self.version = f"judge:{cfg.model or 'default'}#{prompt_id}"

    def item_texts(self, items: Sequence[Mapping[str, Any]]) -> list[str]:
        texts = []
        for item in items:
            parts = []
            for name in self.cfg.fields:
                text = field_text(item, name)[: self.cfg.field_max_chars]
                if text:
                    parts.append(f"{FIELD_LABELS.get(name, name)}: {text}")
            texts.append("\n".join(parts))
        return texts

    def user_message(self, query: str, text: str) -> str:
        return f"Query: {clean_text(query)}\nItem:\n{text}\nRelevance (1-{self.levels}):"

    def input_text(self, query: str, text: str) -> str:
        return f"{self.system}\x1f{self.user_message(query, text)}"

    def judge_one(self, query: str, text: str) -> tuple[np.ndarray | None, str | None, int]:
        """(probabilities, None, attempts) or (None, reason, attempts)."""
        messages = [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user_message(query, text)},
        ]
        failure = EndpointError("not_attempted", False)
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                time.sleep(
                    backoff_delay(self.cfg.backoff_s, attempt, failure.retry_after, self.rng)
                )
            try:
                output = self.client.chat_completion(
                    messages,
                    model=self.cfg.model or None,
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=True,
                    top_logprobs=self.cfg.top_logprobs,
                )
                return level_probs(output, self.levels), None, attempt + 1
            except Exception as exc:
                failure = classify(exc)
                log.debug("judge request failed (%s): %r", failure.reason, exc)
                if not failure.retryable:
                    return None, failure.reason, attempt + 1
        return None, failure.reason, self.cfg.retries + 1

    def label(
        self, queries: Sequence[str], texts: Sequence[str], progress: Progress
    ) -> LabelOutcome:
        probs = np.full((len(queries), self.levels), np.nan, dtype=np.float64)
        failures: list[str | None] = [None] * len(queries)
        attempts = [0] * len(queries)

        def one(i: int) -> int:
            p, reason, n = self.judge_one(queries[i], texts[i])
            if p is not None:
                probs[i] = p
            failures[i], attempts[i] = reason, n
            progress(1)
            return i

        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            list(pool.map(one, range(len(queries))))
        return LabelOutcome(probs, failures, attempts)
