"""The bundled sample: a small, license-clean, Pinterest-shaped data set (the demo's input).

Everything is composed from the structured catalog ``sample_catalog.yaml`` beside this file:
Pins (items) in seven locales, ~50 queries with human judgments on Pinterest's 5-point scale,
and four days of logged impressions whose engagement follows relevance. The relevance of a
(query, Pin) pair is a documented rule over their attributes (``relevance``); human labels
add seeded rater disagreement and carry the raters' agreement as the weight. Given a seed,
the output is identical on every run and machine.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from searchrel import tables

SAMPLE_LEVELS = 5  # 5 highly relevant .. 1 irrelevant (Pinterest's 5-point scale)
CATALOG_NAME = "sample_catalog.yaml"
CAPTION_LOCALE = "en-US"  # captions read as an English captioning model (BLIP) writes them
RATERS = 5  # simulated raters per judged pair
LINK_SHARE = 0.85  # share of Pins that link to a page (the rest were uploaded without a link)


# ---------------------------------------------------------------------------------------------
# Attributes and the relevance rule


@dataclass(frozen=True)
class Spec:
    """What a Pin or a query is about: category, subject and attribute values by dimension."""

    category: str
    subject: str
    attrs: tuple[tuple[str, str], ...] = ()

    def attr(self, dim: str) -> str | None:
        return dict(self.attrs).get(dim)


def relevance(query: Spec, item: Spec) -> int:
    """The label of a (query, Pin) pair on the 5-point scale, from attributes alone.

    5  same subject and every attribute the query names matches (or it names none)
    4  same subject and at least half of the query's attributes match
    3  same subject, fewer than half match
    2  same category, different subject
    1  a different category
    """
    if item.subject == query.subject:
        if not query.attrs:
            return 5
        matched = sum(item.attr(dim) == value for dim, value in query.attrs)
        if matched == len(query.attrs):
            return 5
        return 4 if 2 * matched >= len(query.attrs) else 3
    return 2 if item.category == query.category else 1


def rate(true_label: int, rng: random.Random, levels: int = SAMPLE_LEVELS) -> tuple[int, float]:
    """Simulate ``RATERS`` raters; returns (median vote, share of raters who gave it).

    Each rater gives the rule's label, or with some probability a neighbouring level (rarely
    two away): raters disagree more in the middle of the scale than at its ends. The median
    of the votes is the human label, so it occasionally differs from the rule; the agreement
    share in (0, 1] is the judgment's weight.
    """
    p_err = 0.15 if true_label in (1, levels) else 0.3
    votes = []
    for _ in range(RATERS):
        vote = true_label
        if rng.random() < p_err:
            step = 2 if rng.random() < 0.15 else 1
            vote += step if rng.random() < 0.5 else -step
        votes.append(min(levels, max(1, vote)))
    label = sorted(votes)[len(votes) // 2]
    return label, votes.count(label) / len(votes)


# ---------------------------------------------------------------------------------------------
# The catalog


def load_catalog(path: Path | None = None) -> dict[str, Any]:
    """The sample catalog (the bundled one unless a path is given), locales resolved."""
    if path is None:
        text = resources.files("searchrel.data").joinpath(CATALOG_NAME).read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    catalog = yaml.safe_load(text)
    locales = catalog["locales"]
    for name, loc in list(locales.items()):
        parent = loc.get("inherit")
        if parent:
            own = {k: v for k, v in loc.items() if k != "inherit"}
            base = {k: v for k, v in locales[parent].items() if k in _INHERITED}
            locales[name] = _merge(base, own)
    _check_catalog(catalog)
    return catalog


# What a locale with `inherit: PARENT` takes from its parent (its own plan and queries it
# never inherits).
_INHERITED = (
    "position",
    "joiner",
    "query_joiner",
    "dim_order",
    "categories",
    "subjects",
    "values",
    "patterns",
)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _subject_index(catalog: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    index: dict[str, tuple[str, dict[str, Any]]] = {}
    for category, cat in catalog["categories"].items():
        for subject, sub in cat["subjects"].items():
            if subject in index:
                raise ValueError(f"catalog: subject {subject!r} is in two categories")
            index[subject] = (category, sub or {})
    return index


def _subject_dims(catalog: dict[str, Any], subject: str) -> dict[str, list[str]]:
    """The dimensions a subject's Pins have, each with its allowed values (in catalog order)."""
    category, sub = _subject_index(catalog)[subject]
    dims = catalog["categories"][category]["dims"]
    allowed = sub.get("values", {})
    out = {}
    for dim, values in dims.items():
        chosen = allowed.get(dim, values)
        if chosen:
            unknown = [v for v in chosen if v not in values]
            if unknown:
                raise ValueError(f"catalog: {subject}.{dim} has unknown value(s) {unknown}")
            out[dim] = list(chosen)
    return out


def _check_catalog(catalog: dict[str, Any]) -> None:
    """Fail early, naming the gap, when a locale lacks a word that its plan needs."""
    index = _subject_index(catalog)
    en = catalog["locales"][CAPTION_LOCALE]
    for name, loc in catalog["locales"].items():
        for subject in loc.get("plan", {}):
            if subject not in index:
                raise ValueError(f"catalog: {name} plans unknown subject {subject!r}")
            category, _ = index[subject]
            if subject not in loc.get("subjects", {}):
                raise ValueError(f"catalog: {name} has no words for subject {subject!r}")
            if category not in loc.get("categories", {}):
                raise ValueError(f"catalog: {name} has no name for category {category!r}")
            for dim, values in _subject_dims(catalog, subject).items():
                for value in values:
                    for where, words in ((name, loc), (CAPTION_LOCALE, en)):
                        if value not in words.get("values", {}):
                            raise ValueError(
                                f"catalog: {where} has no word for {dim} value {value!r}"
                            )


# ---------------------------------------------------------------------------------------------
# Wording


@dataclass
class _Locale:
    """One locale's words and patterns, and how it composes phrases."""

    name: str
    words: dict[str, Any]
    catalog: dict[str, Any]

    @property
    def patterns(self) -> dict[str, Any]:
        return dict(self.words["patterns"])

    def subject(self, subject: str) -> dict[str, Any]:
        return dict(self.words["subjects"][subject])

    def ordered(self, spec: Spec) -> list[tuple[str, str]]:
        order = self.words.get("dim_order", {}).get(spec.category)
        if order is None:
            order = list(self.catalog["categories"][spec.category]["dims"])
        attrs = dict(spec.attrs)
        return [(dim, attrs[dim]) for dim in order if dim in attrs]

    def title_form(self, value: str, gender: str | None) -> str:
        word = self.words["values"][value]
        form = word["t"] if isinstance(word, dict) else word
        if isinstance(form, dict):
            for key in (gender, (gender or "m")[0], "m"):
                if key and key in form:
                    return str(form[key])
            return str(next(iter(form.values())))
        return str(form)

    def query_form(self, value: str) -> str:
        word = self.words["values"][value]
        return str(word["q"] if isinstance(word, dict) else word)

    def subject_query(self, subject: str) -> str:
        sub = self.subject(subject)
        return str(sub.get("q") or str(sub["name"]).lower())

    def phrase(self, spec: Spec) -> str:
        """The Pin's noun phrase: the subject with its attributes, in the locale's grammar."""
        sub = self.subject(spec.subject)
        words = [self.title_form(v, sub.get("g")) for _, v in self.ordered(spec)]
        parts = [*words, sub["name"]] if self.words["position"] == "pre" else [sub["name"], *words]
        return str(self.words["joiner"]).join(str(p) for p in parts)

    def query_text(self, spec: Spec) -> str:
        words = [self.query_form(v) for _, v in self.ordered(spec)]
        subject = self.subject_query(spec.subject)
        parts = [*words, subject] if self.words["position"] == "pre" else [subject, *words]
        joiner = self.words.get("query_joiner", self.words["joiner"])
        return str(joiner).join(parts)

    def sites(self, category: str) -> list[str]:
        sites = self.patterns["sites"]
        if isinstance(sites, dict):
            return list(sites.get(category) or next(iter(sites.values())))
        return list(sites)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fill(pattern: str, values: dict[str, str]) -> str:
    """A pattern filled in, its whitespace folded (an empty placeholder leaves no gap)."""
    return " ".join(pattern.format_map(values).split())


# ---------------------------------------------------------------------------------------------
# Composition


@dataclass
class _Pin:
    item_id: str
    locale: str
    spec: Spec
    image: dict[str, Any] | None = None
    row: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Query:
    locale: str
    spec: Spec
    text: str
    judged: bool


def _compose_items(catalog: dict[str, Any], rng: random.Random) -> list[_Pin]:
    index = _subject_index(catalog)
    pins: list[_Pin] = []
    for locale, loc in catalog["locales"].items():
        local: list[_Pin] = []
        for subject, count in loc.get("plan", {}).items():
            category, sub = index[subject]
            dims = _subject_dims(catalog, subject)
            combos = [
                tuple(zip(dims, values, strict=True))
                for values in itertools.product(*dims.values())
            ]
            rng.shuffle(combos)
            # Pins that carry an image come first and take the image's attributes.
            chosen: list[tuple[tuple[tuple[str, str], ...], dict[str, Any] | None]] = []
            for image in sub.get("images", []):
                if locale not in image.get("locales", [CAPTION_LOCALE]):
                    continue
                wanted = image.get("attrs", {})
                taken = [c for c, _ in chosen]
                matches = [
                    c
                    for c in combos
                    if c not in taken and all(dict(c).get(d) == v for d, v in wanted.items())
                ]
                if not matches:
                    raise ValueError(f"catalog: no {subject} Pin can have the attributes {wanted}")
                chosen.append((matches[0], image))
            taken = [c for c, _ in chosen]
            rest = [c for c in combos if c not in taken]
            cycle = itertools.cycle(rest or combos)
            while len(chosen) < count:
                chosen.append((next(cycle), None))
            for attrs, image in chosen[:count]:
                local.append(_Pin("", locale, Spec(category, subject, attrs), image))
        rng.shuffle(local)
        for n, pin in enumerate(local, start=1):
            pin.item_id = f"pin-{locale.lower()}-{n:03d}"
        pins.extend(local)
    for pin in pins:
        pin.row = _item_row(pin, catalog, rng)
    return pins


def _item_row(pin: _Pin, catalog: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    loc = _Locale(pin.locale, catalog["locales"][pin.locale], catalog)
    en = _Locale(CAPTION_LOCALE, catalog["locales"][CAPTION_LOCALE], catalog)
    spec = pin.spec
    pats = loc.patterns
    sub = loc.subject(spec.subject)
    phrase = loc.phrase(spec)
    category_name = str(loc.words["categories"][spec.category])
    values = [loc.query_form(v) for _, v in spec.attrs]
    words = {
        "phrase": phrase,
        "Phrase": _cap(phrase),
        "blurb": str(sub.get("blurb", "")),
        "cta": rng.choice(pats["cta"]),
        "category": category_name,
        "plural": str(sub.get("plural", sub["name"])),
        "value": rng.choice(values) if values else "",
        "site": rng.choice(loc.sites(spec.category)),
    }
    title_patterns = pats.get("title_by_category", {}).get(spec.category, pats["title"])
    title = _cap(_fill(rng.choice(title_patterns), words))
    description = _fill(pats["description"], words)

    if pin.image:
        caption = str(pin.image["caption"])
        image_uri: str | None = str(pin.image["uri"])
    else:
        template = catalog["categories"][spec.category]["subjects"][spec.subject]["caption"]
        caption = template.format_map({d: en.title_form(v, None) for d, v in spec.attrs})
        image_uri = None

    board_patterns = [p for p in pats["boards"] if values or "{value}" not in p]
    boards: list[str] = []
    for pattern in rng.sample(board_patterns, k=min(len(board_patterns), rng.randint(2, 3))):
        board = _cap(_fill(pattern, {**words, "value": rng.choice(values) if values else ""}))
        if board not in boards:
            boards.append(board)

    engaged: list[str] = []
    for _ in range(rng.randint(2, 3)):
        k = rng.randint(0, len(spec.attrs))
        subset = tuple(sorted(rng.sample(list(spec.attrs), k)))
        query = loc.query_text(Spec(spec.category, spec.subject, subset))
        if query not in engaged:
            engaged.append(query)

    has_link = rng.random() < LINK_SHARE
    return {
        "item_id": pin.item_id,
        "locale": pin.locale,
        "title": title,
        "description": description,
        "image_uri": image_uri,
        "caption": caption,
        "board_titles": boards,
        "engaged_queries": engaged,
        "link_title": _fill(pats["link_title"], words) if has_link else None,
        "link_description": _fill(pats["link_description"], words) if has_link else None,
    }


def _draw_queries(
    locale: str,
    loc: dict[str, Any],
    pins: list[_Pin],
    catalog: dict[str, Any],
    rng: random.Random,
) -> list[_Query]:
    """Judged queries, then queries seen only in the impressions log (seasonal ones first)."""
    words = _Locale(locale, loc, catalog)
    by_subject: dict[str, list[_Pin]] = {}
    for pin in pins:
        by_subject.setdefault(pin.spec.subject, []).append(pin)
    # Subjects with the most Pins first (ties in seeded order): their queries have the most
    # Pins of their own subject to judge, so the middle of the scale is well populated.
    plan = {s: int(n) for s, n in loc.get("plan", {}).items()}
    subjects = list(plan)
    rng.shuffle(subjects)
    subjects.sort(key=lambda s: -plan[s])
    cycle = itertools.cycle(subjects)
    seen: set[str] = set()
    out: list[_Query] = []

    def add(spec: Spec, judged: bool) -> bool:
        text = words.query_text(spec)
        if text in seen:
            return False
        seen.add(text)
        out.append(_Query(locale, spec, text, judged))
        return True

    def draw(judged: bool) -> None:
        for _ in range(200):  # a few collisions at most; bounded so a tiny plan cannot spin
            subject = next(cycle)
            pin = rng.choice(by_subject[subject])
            attrs = list(pin.spec.attrs)
            if len(attrs) >= 2:
                k = rng.choices([0, 1, 2], weights=[0.05, 0.35, 0.6])[0]
            else:
                k = rng.choices([0, 1], weights=[0.15, 0.85])[0]
            subset = tuple(sorted(rng.sample(attrs, k)))
            if add(Spec(pin.spec.category, subject, subset), judged):
                return

    for _ in range(int(loc.get("judged_queries", 0))):
        draw(True)
    index = _subject_index(catalog)
    for entry in loc.get("seasonal_queries", []):
        subject = entry["subject"]
        attrs = tuple(sorted(entry.get("attrs", {}).items()))
        add(Spec(index[subject][0], subject, attrs), False)
    for _ in range(int(loc.get("extra_queries", 0))):
        draw(False)
    return out


def _judge(query: _Query, pool: list[_Pin], rng: random.Random) -> list[_Pin]:
    """The Pins raters saw for a query: its subject's, a few of its category's, then others."""
    same = [p for p in pool if p.spec.subject == query.spec.subject]
    near = [p for p in pool if p.spec.category == query.spec.category and p not in same]
    far = [p for p in pool if p.spec.category != query.spec.category]
    for group in (same, near, far):
        rng.shuffle(group)
    chosen = same[:5] + near[:2] + far[:2]
    target = rng.randint(6, 8)
    if len(chosen) < target:
        chosen += [p for p in near[2:] + far[2:]][: target - len(chosen)]
    return chosen


def _results(query: _Query, pool: list[_Pin], judged: list[_Pin], rng: random.Random) -> list[_Pin]:
    """What the production ranker showed: mostly relevant Pins, ranked with noise."""
    weights = {1: 0.4, 2: 1.0, 3: 2.0, 4: 3.0, 5: 4.0}
    others = [p for p in pool if p not in judged]
    shown = list(judged)
    want = rng.randint(1, 3) if judged else rng.randint(7, 9)
    while others and len(shown) < len(judged) + want:
        pick = rng.choices(others, weights=[weights[relevance(query.spec, p.spec)] for p in others])
        shown.append(pick[0])
        others.remove(pick[0])
    score = {p.item_id: relevance(query.spec, p.spec) + rng.gauss(0, 1.0) for p in shown}
    return sorted(shown, key=lambda p: -score[p.item_id])


def _season(query: _Query, catalog: dict[str, Any], days: int) -> list[float]:
    tags = catalog.get("value_seasons", {})
    for _, value in query.spec.attrs:
        if value in tags:
            return [float(x) for x in catalog["seasons"][tags[value]]]
    return [1.0] * days


def build_sample(out_dir: Path, seed: int = 7, catalog_path: Path | None = None) -> dict[str, Any]:
    """Compose the sample and write items, judgments and impressions (K = 5) and summary.json.

    Deterministic given the seed (and catalog). Returns the summary.
    """
    catalog = load_catalog(catalog_path)
    levels = int(catalog.get("levels", SAMPLE_LEVELS))
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    pins = _compose_items(catalog, rng)
    by_locale: dict[str, list[_Pin]] = {}
    for pin in pins:
        by_locale.setdefault(pin.locale, []).append(pin)

    queries: list[_Query] = []
    for locale, loc in catalog["locales"].items():
        if by_locale.get(locale):
            queries += _draw_queries(locale, loc, by_locale[locale], catalog, rng)

    judgments = []
    judged_items: dict[tuple[str, str], list[_Pin]] = {}
    for query in queries:
        if not query.judged:
            continue
        shown = _judge(query, by_locale[query.locale], rng)
        judged_items[(query.locale, query.text)] = shown
        for pin in shown:
            label, agreement = rate(relevance(query.spec, pin.spec), rng, levels)
            judgments.append(
                {
                    "query": query.text,
                    "locale": query.locale,
                    "item_id": pin.item_id,
                    "label": label,
                    "weight": agreement,
                }
            )

    dates = [dt.date.fromisoformat(str(d)) for d in catalog["dates"]]
    day_factor = [float(x) for x in catalog.get("day_factor", [1.0] * len(dates))]
    min_mult = float(catalog.get("min_season_multiplier", 0.0))
    rates = {k: np.asarray(v, dtype=float) for k, v in catalog["engagement"].items()}
    quality = {p.item_id: float(nrng.lognormal(0.0, 0.25)) for p in pins}
    impressions = []
    for query in queries:
        judged = judged_items.get((query.locale, query.text), [])
        shown = _results(query, by_locale[query.locale], judged, rng)
        popularity = float(nrng.lognormal(4.0, 0.6))
        season = _season(query, catalog, len(dates))
        for d, date in enumerate(dates):
            if season[d] < min_mult:
                continue
            for rank, pin in enumerate(shown):
                if nrng.random() > 0.9:  # not every result is served every day
                    continue
                lam = popularity * season[d] * day_factor[d] / (1.0 + 0.3 * rank)
                n = 1 + int(nrng.poisson(lam))
                level = relevance(query.spec, pin.spec) - 1
                q = quality[pin.item_id]
                row = {"date": date, "query": query.text, "locale": query.locale}
                row["item_id"] = pin.item_id
                row["impressions"] = n
                for column, rate_name in (
                    ("clicks", "click_rate"),
                    ("saves", "save_rate"),
                    ("closeups", "closeup_rate"),
                ):
                    p = min(0.9, float(rates[rate_name][level]) * q)
                    row[column] = int(nrng.binomial(n, p))
                impressions.append(row)

    out = Path(out_dir)
    items_t = tables.write_table(
        pd.DataFrame([p.row for p in pins]), out / "items.parquet", "items"
    )
    judg_t = tables.write_table(
        pd.DataFrame(judgments), out / "judgments.parquet", "judgments", levels
    )
    imp_t = tables.write_table(
        pd.DataFrame(impressions), out / "impressions.parquet", "impressions"
    )

    summary = _summary(seed, levels, items_t, judg_t, imp_t, queries, dates)
    (out / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return summary


def _summary(
    seed: int,
    levels: int,
    items: Any,
    judgments: Any,
    impressions: Any,
    queries: list[_Query],
    dates: list[dt.date],
) -> dict[str, Any]:
    items_df = items.to_pandas()
    judg_df = judgments.to_pandas()
    imp_df = impressions.to_pandas()
    locales = sorted(set(items_df["locale"]))
    labels = Counter(int(x) for x in judg_df["label"])
    imp_queries = set(zip(imp_df["locale"], imp_df["query"], strict=True))
    judged = set(zip(judg_df["locale"], judg_df["query"], strict=True))
    per_day = Counter(str(d) for d in imp_df["date"])
    return {
        "source": "searchrel bundled sample",
        "seed": seed,
        "levels": levels,
        "tables": {
            "items": len(items_df),
            "judgments": len(judg_df),
            "impressions": len(imp_df),
        },
        "queries": {
            "judged": len(judged),
            "logged": len(imp_queries),
            "logged_not_judged": len(imp_queries - judged),
            "drawn": len(queries),
        },
        "locales": {
            loc: {
                "items": int((items_df["locale"] == loc).sum()),
                "judgments": int((judg_df["locale"] == loc).sum()),
                "judged_queries": len({q for lo, q in judged if lo == loc}),
                "impressions": int((imp_df["locale"] == loc).sum()),
            }
            for loc in locales
        },
        "label_counts": {str(k): labels.get(k, 0) for k in range(1, levels + 1)},
        "mean_weight": round(float(judg_df["weight"].mean()), 4),
        "images": int(items_df["image_uri"].notna().sum()),
        "dates": [d.isoformat() for d in dates],
        "impressions_per_day": {d.isoformat(): per_day.get(str(d), 0) for d in dates},
    }
