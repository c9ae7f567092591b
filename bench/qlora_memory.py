"""GPU memory of qLoRA vs LoRA training of the paper's teacher (Llama-3-8B), from its config.

    .venv/bin/python bench/qlora_memory.py

Computed, not measured (no GPU here): `bench/qlora_estimate.py` counts what bitsandbytes and
peft allocate (its weight and parameter counts are checked exactly against a small quantized
Llama in tests/teacher/test_memory.py); activations follow a per-block tensor count.
Writes bench/results/qlora_memory.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from bench.qlora_estimate import LLAMA_3_8B, estimate_qlora_memory  # noqa: E402

GRID = [(b, s) for s in (256, 512) for b in (8, 16, 32)]  # (batch, tokens per pair)
LEVELS, LORA_R = 5, 16


def main() -> None:
    rows = []
    for batch, seq in GRID:
        row: dict[str, object] = {"batch_size": batch, "seq_len": seq}
        for quantize in ("4bit", "none"):
            for ckpt in (True, False):
                est = estimate_qlora_memory(
                    LLAMA_3_8B,
                    levels=LEVELS,
                    lora_r=LORA_R,
                    batch_size=batch,
                    seq_len=seq,
                    gradient_checkpointing=ckpt,
                    quantize=quantize,
                )
                row[f"{quantize}_{'ckpt' if ckpt else 'no_ckpt'}"] = est.to_dict()
        q, base = row["4bit_ckpt"], row["none_ckpt"]
        row["qlora_over_lora_total"] = round(q["total_gib"] / base["total_gib"], 3)  # type: ignore[index]
        rows.append(row)
    result = {
        "command": "python bench/qlora_memory.py",
        "machine": machine_info(),
        "model": "Llama-3-8B (config of meta-llama/Meta-Llama-3-8B)",
        "levels": LEVELS,
        "lora_r": LORA_R,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "not_modelled": "CUDA context and allocator slack (~1 GiB)",
        "rows": rows,
    }
    out = ROOT / "bench" / "results" / "qlora_memory.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for r in rows:
        gib = {k: v["total_gib"] for k, v in r.items() if isinstance(v, dict)}
        print(
            f"batch {r['batch_size']:>2} x {r['seq_len']} tokens: qLoRA+ckpt "
            f"{gib['4bit_ckpt']:.1f} GiB, LoRA bf16+ckpt {gib['none_ckpt']:.1f} GiB, "
            f"qLoRA no ckpt {gib['4bit_no_ckpt']:.1f} GiB"
        )
    print(out)


if __name__ == "__main__":
    main()
