"""The one source of container image names and tags.

Resolved when a pipeline is compiled (never at import time), so a registry or tag can be
changed with environment variables without touching code:
SEARCHREL_IMAGE_REGISTRY (default ghcr.io/searchrel) and SEARCHREL_IMAGE_TAG (default: the
package version).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from searchrel import __version__

REGISTRY_ENV = "SEARCHREL_IMAGE_REGISTRY"
TAG_ENV = "SEARCHREL_IMAGE_TAG"
DEFAULT_REGISTRY = "ghcr.io/searchrel"

# Image name -> the Dockerfile under images/ that builds it.
DOCKERFILES = {
    "searchrel-python": "images/python/Dockerfile",  # CPU stages, serving and drift
    "searchrel-python-cuda": "images/python-cuda/Dockerfile",  # GPU stages (teacher, labeling)
}


@dataclass(frozen=True)
class Images:
    cpu: str  # features, student, drift, serving
    gpu: str  # teacher training and labeling


def resolve_images(registry: str | None = None, tag: str | None = None) -> Images:
    reg = (registry or os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY).rstrip("/")
    version = tag or os.environ.get(TAG_ENV) or __version__
    return Images(
        cpu=f"{reg}/searchrel-python:{version}", gpu=f"{reg}/searchrel-python-cuda:{version}"
    )
