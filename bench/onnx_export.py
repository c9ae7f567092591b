"""What the ONNX Runtime query encoder costs a process that starts (a server pod, a KFP task).

    .venv/bin/python bench/onnx_export.py

Each case runs in a fresh Python process (as a pod would), constructing the default embedder
(all-MiniLM-L6-v2, `features.embed_runtime: auto`) and reporting wall time and peak RSS:
* pytorch: `embed_runtime: torch` (the baseline: what loading cost before);
* export: an empty cache directory, so the graph is exported, checked and written;
* cached: the graph from the export case's cache (as from a student bundle's `query_encoder/`).
Writes bench/results/onnx_export.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402

CHILD = """
import json, resource, sys, time
t = time.perf_counter()
from searchrel.config import FeatureConfig
from searchrel.features.embedder import Embedder
cfg = FeatureConfig(embed_runtime=sys.argv[1], onnx_cache_dir=sys.argv[2])
e = Embedder.from_config(cfg)
e.encode_query("red leather boots")
print(json.dumps({
    "runtime": e.runtime,
    "seconds": round(time.perf_counter() - t, 2),
    "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
}))
"""


def child(runtime: str, cache: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, runtime, cache],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/onnx_export.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "pytorch": child("torch", ""),
            "export": child("auto", tmp),
            "cached": child("auto", tmp),
        }
        graphs = list(Path(tmp).glob("*.onnx"))
        graph_mib = round(graphs[0].stat().st_size / 2**20, 1) if graphs else None
    result = {
        "command": "python bench/onnx_export.py",
        "machine": machine_info(),
        "cases": cases,
        "graph_mib": graph_mib,
        "note": "each case: a fresh process from interpreter start to one encoded query",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
