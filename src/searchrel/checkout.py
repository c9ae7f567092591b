"""Files that live in the repository beside the package, not in it: configs/, manifests/,
monitoring/. The commands that read them (compiling the pipelines with configs/cluster.yaml,
rendering the PrometheusRule, the demo's GitOps repository) find them from an editable install.
"""

from __future__ import annotations

from pathlib import Path


class NotACheckoutError(RuntimeError):
    """A command that reads repository files was run from an installed wheel."""


def checkout_path(relative: str | Path) -> Path:
    """``relative`` (e.g. "configs/cluster.yaml") in the checkout that holds this source tree
    (src/searchrel -> the repository); NotACheckoutError where there is none."""
    path = Path(__file__).resolve().parents[2] / relative
    if not path.exists():
        raise NotACheckoutError(
            f"{relative} lives in the searchrel repository: run this command from a checkout "
            "with `pip install -e .`"
        )
    return path
