"""Print the project's requirements from pyproject.toml, one per line, for `pip install -r`.

The image builders install the dependencies from this list before the source is copied, so the
dependency layer is rebuilt only when pyproject.toml changes. Extras named on the command line
are added (the images take `storage`: kserve's object-store downloads for s3:// and gs://
model sources on clusters). Standard library only: it runs before anything is installed.

    python images/pyproject_requirements.py pyproject.toml storage > requirements.txt
"""

from __future__ import annotations

import sys
import tomllib


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"{pyproject}: no such extra(s): {', '.join(unknown)}")
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs.extend(optional[extra])
    return reqs


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: pyproject_requirements.py PYPROJECT [EXTRA ...]")
    print("\n".join(requirements(sys.argv[1], sys.argv[2:])))
