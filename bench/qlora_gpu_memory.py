"""Measured GPU memory of qLoRA training on a model of Llama-3-8B's shape (issue 3, GPU only).

    python bench/qlora_gpu_memory.py --tokenizer DIR --out bench/results/qlora_gpu_memory.json

A randomly initialised LlamaForCausalLM with Meta-Llama-3-8B's config (weights cannot be had
here; memory and speed do not depend on their values) is saved in bf16, then loaded through
the teacher's own ``build_teacher`` with ``quantize: 4bit`` (NF4 + double quantization,
bf16 compute), LoRA r 16 on q/k/v/o, gradient checkpointing, and trained for a few AdamW
steps on random token ids at each (batch, length). Peak ``torch.cuda.max_memory_allocated``
per shape is set beside ``bench/qlora_estimate.py``'s computed figure for the same shape.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from bench.qlora_estimate import LLAMA_3_8B, estimate_qlora_memory  # noqa: E402
from searchrel.config import TeacherConfig  # noqa: E402
from searchrel.teacher.model import build_teacher  # noqa: E402

SHAPES = [(16, 256), (16, 512), (32, 512)]
LEVELS, LORA_R = 5, 16
GIB = 2**30


def save_random_llama(out: Path, tokenizer_dir: Path) -> float:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    s = LLAMA_3_8B
    config = LlamaConfig(
        vocab_size=s.vocab_size, hidden_size=s.hidden_size,
        intermediate_size=s.intermediate_size, num_hidden_layers=s.num_hidden_layers,
        num_attention_heads=s.num_attention_heads, num_key_value_heads=s.num_key_value_heads,
        head_dim=s.head_dim, max_position_embeddings=8192, rope_theta=500000.0,
        tie_word_embeddings=False,
    )  # fmt: skip
    started = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(out))
    del model
    torch.cuda.empty_cache()
    return time.perf_counter() - started


def train_steps(model: Any, batch: int, seq: int, steps: int) -> dict[str, Any]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    model.train()
    times = []
    for _ in range(steps):
        ids = torch.randint(1000, LLAMA_3_8B.vocab_size, (batch, seq), device="cuda")
        labels = torch.randint(0, LEVELS, (batch,), device="cuda")
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    step_s = min(times[1:]) if len(times) > 1 else times[0]
    return {
        "peak_gib": round(torch.cuda.max_memory_allocated() / GIB, 3),
        "reserved_gib": round(torch.cuda.max_memory_reserved() / GIB, 3),
        "step_seconds": round(step_s, 3),
        "train_tokens_per_s": round(batch * seq / step_s, 1),
        "loss_finite": bool(torch.isfinite(loss).item()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tokenizer", type=Path, required=True, help="any HF tokenizer directory")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/llama3_8b_shape"))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "qlora_gpu_memory.json")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("skip: needs a CUDA GPU")
        return 0
    result: dict[str, Any] = {
        "command": "python bench/qlora_gpu_memory.py " + shlex.join(sys.argv[1:]),
        "machine": machine_info(),
        "gpu": torch.cuda.get_device_name(),
        "model": "random LlamaForCausalLM with Meta-Llama-3-8B's config -> 5-class head",
        "lora_r": LORA_R,
        "rows": [],
    }

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    shutil.rmtree(args.work_dir, ignore_errors=True)
    result["save_seconds"] = round(save_random_llama(args.work_dir, args.tokenizer), 1)
    write()
    cfg = TeacherConfig(base_model=str(args.work_dir), quantize="4bit", lora_r=LORA_R,
                        lora_alpha=2 * LORA_R, gradient_checkpointing=True)  # fmt: skip
    started = time.perf_counter()
    model, _ = build_teacher(cfg, LEVELS, torch.device("cuda"))
    result["load_quantize_seconds"] = round(time.perf_counter() - started, 1)
    result["after_load_gib"] = round(torch.cuda.memory_allocated() / GIB, 3)
    result["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    write()
    for batch, seq in SHAPES:
        est = estimate_qlora_memory(
            LLAMA_3_8B,
            levels=LEVELS,
            lora_r=LORA_R,
            batch_size=batch,
            seq_len=seq,
            gradient_checkpointing=True,
            quantize="4bit",
        )
        row = {"batch_size": batch, "seq_len": seq, "computed_gib": round(est.total_gib, 3)}
        try:
            row.update(train_steps(model, batch, seq, args.steps))
            row["measured_over_computed"] = round(row["peak_gib"] / est.total_gib, 3)
        except torch.cuda.OutOfMemoryError as exc:
            row["error"] = f"OOM: {exc}"[:300]
        result["rows"].append(row)
        print(row, flush=True)
        write()
    shutil.rmtree(args.work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
