"""Teacher training speed on CrowdFlower: fp32 vs bf16 autocast, plain vs length-bucketed
batches, the same pairs in one run (issue 16's "before and after").

    .venv/bin/python bench/teacher_training_speed.py                       # MiniLM full
    .venv/bin/python bench/teacher_training_speed.py --config bench/configs/teacher_mpnet_full.yaml

Each setting trains one epoch through ``train_teacher`` on the same ``--pairs`` training pairs
of random fold 0 and reads ``train_pairs_per_s`` (the optimizer loop alone: no validation, no
saving). Settings run in turn, ``--rounds`` times, so that a change in the machine's load hits
them alike; the figure is the median per setting and each ratio is against fp32 + plain
batches (today's default on CPU before this change). bf16 needs a CPU with native bf16
(AVX512-BF16 or AMX): elsewhere it is emulated, and the machine info says which this was.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crowdflower_folds import fold_specs, load_crowdflower, subsample  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import load_config, shared_dir  # noqa: E402
from searchrel.data.crowdflower import CROWDFLOWER_LEVELS, find_crowdflower_csvs  # noqa: E402
from searchrel.schema import JUDGMENTS  # noqa: E402
from searchrel.tables import write_table  # noqa: E402
from searchrel.teacher.backbone import cpu_has_native_bf16  # noqa: E402
from searchrel.teacher.train import train_teacher  # noqa: E402

SETTINGS = {  # name: (precision, bucket_by_length)
    "fp32_plain": ("fp32", False),
    "fp32_bucketed": ("fp32", True),
    "bf16_plain": ("bf16", False),
    "bf16_bucketed": ("bf16", True),
}
BASELINE = "fp32_plain"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "bench/configs/teacher_minilm_full.yaml")
    p.add_argument("--pairs", type=int, default=1024, help="training pairs per epoch")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_teacher_speed")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "teacher_training_speed.json"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    csvs = find_crowdflower_csvs(shared_dir(load_config(args.config)))
    if not csvs:
        print("skip: no CrowdFlower CSVs (set SEARCHREL_SHARED_DIR)")
        return 0
    data = load_crowdflower(csvs, args.work_dir)
    spec = fold_specs(data.judgments, "random")[0]
    # The validation split (10% of queries) comes out of these pairs inside train_teacher.
    pool = subsample(spec.train_idx, int(args.pairs / 0.9), seed=13)
    items_path, judgments_path = args.work_dir / "items.parquet", args.work_dir / "j.parquet"
    write_table(data.items, items_path, "items")
    frame = data.judgments.iloc[pool][list(JUDGMENTS.names)].reset_index(drop=True)
    write_table(frame, judgments_path, "judgments", CROWDFLOWER_LEVELS)

    runs: dict[str, list[float]] = {name: [] for name in SETTINGS}
    train_pairs: dict[str, int] = {}
    for round_ in range(args.rounds):
        for name, (precision, bucketed) in SETTINGS.items():
            cfg = load_config(
                args.config,
                overrides={
                    "data": {"levels": CROWDFLOWER_LEVELS, "test_fraction": 0.0,
                             "val_fraction": 0.1, "split_salt": "speed"},
                    "teacher": {"precision": precision, "bucket_by_length": bucketed,
                                "epochs": 1, "resume": False},
                },
            )  # fmt: skip
            out = args.work_dir / name
            shutil.rmtree(out, ignore_errors=True)
            summary = train_teacher(items_path, judgments_path, out, cfg)
            runs[name].append(summary["train_pairs_per_s"])
            train_pairs.setdefault(name, summary["train_pairs"])
            print(f"round {round_ + 1} {name}: {summary['train_pairs_per_s']} pairs/s", flush=True)
    medians = {name: statistics.median(v) for name, v in runs.items()}
    result: dict[str, Any] = {
        "command": "python bench/teacher_training_speed.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": {**machine_info(), "native_bf16": cpu_has_native_bf16()},
        "config": str(args.config),
        "train_pairs": train_pairs[BASELINE],
        "rounds": args.rounds,
        "pairs_per_s": runs,
        "median_pairs_per_s": medians,
        "ratio_vs_fp32_plain": {n: round(m / medians[BASELINE], 3) for n, m in medians.items()},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds_note": "train_pairs_per_s: optimizer loop only (train_teacher's summary)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["ratio_vs_fp32_plain"]))
    print(args.out)
    return 0 if np.isfinite(list(medians.values())).all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
