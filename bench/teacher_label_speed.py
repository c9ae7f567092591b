"""Teacher labeling speed through the daily job itself: ``searchrel label`` on CrowdFlower pairs.

    .venv/bin/python bench/teacher_label_speed.py --teacher minilm_full=DIR [--teacher ens=DIR]

For each teacher (a single one or an ensemble directory), one day of ``--pairs`` distinct
(query, item) impressions drawn from CrowdFlower is labeled by the real CLI in a subprocess
(``python -m searchrel label --shards 1``, the config's ``label.threads`` and precision:
every CPU, bf16 where the teacher trained in it), timed from start to the written labels. The
figures: pairs/s including start-up, the job's own labeling pairs/s (its summary, start-up and
model load excluded), and the hours on this machine that a day of 1M impressions' distinct
pairs costs at that rate. Every teacher labels the same pairs in the same run, so their ratio
is their cost ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.crowdflower_folds import load_crowdflower, subsample  # noqa: E402
from bench.machine import machine_info  # noqa: E402
from searchrel.config import load_config, shared_dir  # noqa: E402
from searchrel.data.crowdflower import find_crowdflower_csvs  # noqa: E402
from searchrel.tables import write_table  # noqa: E402

DAY = dt.date(2026, 12, 1)
DAILY_PAIRS = 1_000_000  # the day of impressions, all distinct pairs (the worst case)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--pairs", type=int, default=2000)
    p.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "bench_label_speed")
    p.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "teacher_label_speed.json"
    )
    args = p.parse_args(argv)
    csvs = find_crowdflower_csvs(shared_dir(load_config()))
    if not csvs:
        print("skip: no CrowdFlower CSVs (set SEARCHREL_SHARED_DIR)")
        return 0
    data = load_crowdflower(csvs, args.work_dir)
    rows = data.judgments.iloc[subsample(data.judgments.index.to_numpy(), args.pairs, 13)]
    impressions = pa.table(
        {
            "date": [DAY] * len(rows),
            "query": list(rows["query"]),
            "locale": list(rows["locale"]),
            "item_id": list(rows["item_id"]),
            "impressions": [1] * len(rows),  # each pair shown once, never engaged with
            **{c: [0] * len(rows) for c in ("clicks", "saves", "closeups")},
        }
    )
    items_path, impressions_path = args.work_dir / "items.parquet", args.work_dir / "imp.parquet"
    write_table(data.items, items_path, "items")
    write_table(impressions, impressions_path, "impressions")
    results = {}
    for spec in args.teacher:
        name, _, directory = spec.partition("=")
        out = args.work_dir / f"labels-{name}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        cmd = [sys.executable, "-m", "searchrel", "label", "--teacher", directory,
               "--items", str(items_path), "--impressions", str(impressions_path),
               "--out", str(out), "--shards", "1"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        wall = time.perf_counter() - started
        if done.returncode:
            print(done.stderr[-2000:])
            return 1
        summary = json.loads(done.stdout)
        labeled = summary["labeled"]
        rate = labeled / wall
        results[name] = {
            "teacher": directory,
            "pairs": summary["pairs"],
            "labeled": labeled,
            "wall_seconds": round(wall, 1),
            "pairs_per_s_wall": round(rate, 1),
            "job_summary": {k: v for k, v in summary.items() if "second" in k or "per_s" in k},
            "hours_per_day_1m_pairs_this_machine": round(DAILY_PAIRS / rate / 3600, 2),
        }
        print(name, results[name], flush=True)
    result = {
        "command": "python bench/teacher_label_speed.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "pairs": len(rows),
        "teachers": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
