"""The paper's data-scaling result on real human labels: does a student trained on teacher
labels approach the teacher and beat a student trained on human labels alone? Two protocols
on CrowdFlower's query-grouped folds:

* ``daily-log`` (issue 17; bench/distillation_daily_log.py): a teacher trained on every human
  label of the training queries labels, through ``searchrel label``, a day's impression log
  built by first-stage retrieval over the whole catalogue (pairs no human judged); students
  learn from human labels, the labeled log at several sizes, or both.
* ``human-fraction`` (issue 5; bench/distillation_human_fraction.py): 10% of the training
  pairs keep their human labels, a teacher trained on them labels the other 90%.

    python bench/distillation_scaling.py --protocol daily-log --folds 0 1 2 \\
        --teacher-config bench/configs/teacher_crowdflower.yaml
    python bench/distillation_scaling.py --protocol human-fraction --fold 0
    python bench/distillation_scaling.py --protocol daily-log --help    # a protocol's options

``--protocol`` defaults to ``human-fraction`` so that the commands recorded in earlier result
files still run as they did. bench/plot_distillation_scaling.py plots either result.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from searchrel.config import shared_dir  # noqa: E402
from searchrel.data.crowdflower import find_crowdflower_csvs  # noqa: E402

PROTOCOLS = ("daily-log", "human-fraction")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    head = argparse.ArgumentParser(add_help=False)
    head.add_argument("--protocol", choices=PROTOCOLS, default="human-fraction")
    known, rest = head.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = "python bench/distillation_scaling.py " + shlex.join(argv)
    if known.protocol == "daily-log":
        from bench import distillation_daily_log as protocol
    else:
        from bench import distillation_human_fraction as protocol  # type: ignore[no-redef]
    args = protocol.parse_args(rest)
    csvs = find_crowdflower_csvs(shared_dir())
    if not csvs:
        print(f"skip: no CrowdFlower CSVs under {shared_dir()}/data/crowdflower")
        return 0
    return protocol.run(args, command.strip(), csvs)


if __name__ == "__main__":
    raise SystemExit(main())
