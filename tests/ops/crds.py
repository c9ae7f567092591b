"""Validation of custom resources against their CRDs (from ../shared/k8s/crds), emulating the
API server with strict field validation: the version's openAPIV3Schema with unknown fields
rejected, plus the uniqueness of list-map keys (env names, ports), which JSON Schema lacks."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from searchrel.config import DEFAULT_SHARED_DIR, Config, shared_dir

from .tools import REPO

CRD_DIR = Path("k8s/crds")


def crd_root() -> Path:
    # ../shared is relative to the repository root (not the working directory); the
    # SEARCHREL_SHARED_DIR variable still wins.
    root = shared_dir(Config(shared_dir=str(REPO / DEFAULT_SHARED_DIR))) / CRD_DIR
    if not root.is_dir():
        pytest.skip(f"CRDs not found at {root} (set SEARCHREL_SHARED_DIR to ../shared)")
    return root


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected, as strict field validation on the API server does
    (structural schemas otherwise prune them silently)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def list_map_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Duplicate keys in x-kubernetes-list-type map/set lists, which jsonschema does not know."""
    errors: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub:
                errors += list_map_errors(sub, item, f"{path}.{key}")
    elif isinstance(value, list):
        items = schema.get("items", {})
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            defaults = {k: items.get("properties", {}).get(k, {}).get("default") for k in keys}
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                ident = tuple(item.get(k, defaults[k]) for k in keys)
                if ident in seen:
                    errors.append(
                        f"{path}[{i}]: duplicate entry for {dict(zip(keys, ident, strict=True))}"
                    )
                seen.add(ident)
        elif list_type == "set":
            dupes = [i for i, item in enumerate(value) if item in value[:i]]
            errors += [f"{path}[{i}]: duplicate entry {value[i]!r}" for i in dupes]
        for i, item in enumerate(value):
            errors += list_map_errors(items, item, f"{path}[{i}]")
    return errors


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every CRD we have."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are large: C if built
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(crd_root().rglob("*.yaml")):
        for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"][
                        "openAPIV3Schema"
                    ]
    return schemas


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema not installed: pip install jsonschema"
    )
    # OpenAPI 3.0 schemas are closest to JSON Schema draft 4 (boolean exclusiveMinimum etc.).
    return jsonschema.Draft4Validator(_strict(crd_schemas()[(api_version, kind)]))


def is_custom(doc: dict[str, Any]) -> bool:
    return (doc["apiVersion"], doc["kind"]) in crd_schemas()


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Everything the API server would reject in a custom resource, by its CRD's schema."""
    key = (doc["apiVersion"], doc["kind"])
    if key not in crd_schemas():
        return [f"no CRD for {key} under {crd_root()}"]
    errors = [f"{e.json_path}: {e.message}" for e in _validator(*key).iter_errors(doc)]
    return errors + list_map_errors(crd_schemas()[key], doc, "$")
